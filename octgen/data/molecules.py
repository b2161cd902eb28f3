"""Molecules in memory and in files: the :class:`Molecule` dataclass, SDF/MOL and
XYZ readers, SDF and XYZ writers.

A molecule is a list of element symbols and an (N, 3) array of Cartesian
positions in Angstrom; nothing else (no charges, no stored bonds). Bonds are a
function of the geometry: the SDF writer perceives them from interatomic
distances with the EDM bond-length tables (:mod:`octgen.metrics.molecules`).

Bad input handling (one rule for every reader):
- A file that cannot be read at all (missing, empty, unknown suffix, no valid
  entry) raises :class:`~octgen.errors.InputError` with one sentence naming the file.
- A multi-molecule file (SDF with ``$$$$`` records, multi-frame XYZ) with some bad
  entries: in the default lenient mode each bad entry is reported on stderr as one
  line ``octgen: warning: FILE entry K: reason; skipped`` and the other entries are
  returned. ``strict=True`` raises on the first bad entry instead. Entries are
  numbered from 1 in file order. An XYZ frame whose atom-count line is broken
  cannot be resynchronised, so reading stops there (reported the same way).
- A malformed record (an atom line cut short, a blank or non-numeric coordinate,
  fewer atom or bond lines than the counts line promises, an unknown element) is a
  bad entry whose reason names the file line; it is never read as a smaller or
  shifted molecule.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .bonds import bond_orders as perceive_bonds

# Element symbols by atomic number (index 0 is a placeholder).
_SYMBOLS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se "
    "Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy "
    "Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf "
    "Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og").split()
SYMBOL_TO_Z = {s: z for z, s in enumerate(_SYMBOLS) if z > 0}
MOLECULE_SUFFIXES = (".sdf", ".mol", ".xyz")
MAX_ATOMS = 2_000  # small molecules; bond perception is dense O(N^2)


def symbol_to_z(symbol: str) -> int:
    """Atomic number of an element symbol (case-insensitive: 'cl', 'CL' -> 17).

    Raises:
        InputError: unknown symbol.
    """
    s = symbol.strip()
    canon = s[:1].upper() + s[1:].lower()
    if canon not in SYMBOL_TO_Z:
        raise InputError(f"unknown element '{symbol}'")
    return SYMBOL_TO_Z[canon]


def z_to_symbol(z: int) -> str:
    if not 1 <= int(z) < len(_SYMBOLS):
        raise InputError(f"unknown atomic number {z}")
    return _SYMBOLS[int(z)]


@dataclass
class Molecule:
    """Atoms of one molecule.

    Attributes:
        elements: N element symbols in canonical case ('C', 'Cl').
        positions: (N, 3) float64 Cartesian coordinates in Angstrom.
        name: title of the entry (SDF title line, XYZ comment, QM9 id), may be ''.
    """

    elements: list[str]
    positions: np.ndarray
    name: str = ""

    def __post_init__(self):
        self.elements = [e if e in SYMBOL_TO_Z else z_to_symbol(symbol_to_z(e)) for e in self.elements]
        pos = np.asarray(self.positions, dtype=np.float64)
        if pos.size % 3 or (pos.ndim == 2 and pos.shape[1] != 3) or pos.ndim > 2:
            raise InputError(f"molecule '{self.name}': positions must have shape (N, 3), got {pos.shape}")
        self.positions = pos.reshape(-1, 3)
        if len(self.elements) != len(self.positions):
            raise InputError(f"molecule '{self.name}': {len(self.elements)} elements but "
                             f"{len(self.positions)} positions")
        if not np.isfinite(self.positions).all():
            raise InputError(f"molecule '{self.name}': NaN or infinite coordinates")

    @classmethod
    def from_atomic_numbers(cls, z: np.ndarray, positions: np.ndarray, name: str = "") -> "Molecule":
        """Molecule from (N,) atomic numbers and (N, 3) positions in Angstrom."""
        return cls([z_to_symbol(int(v)) for v in np.asarray(z).reshape(-1)], positions, name)

    def __len__(self) -> int:
        return len(self.elements)

    @property
    def atomic_numbers(self) -> np.ndarray:
        """(N,) int64 atomic numbers."""
        return np.array([SYMBOL_TO_Z[e] for e in self.elements], dtype=np.int64)

    def formula(self) -> str:
        """Hill-order formula, e.g. 'C6H6'."""
        counts: dict[str, int] = {}
        for e in self.elements:
            counts[e] = counts.get(e, 0) + 1
        first = ["C", "H"] if "C" in counts else []
        order = first + sorted(k for k in counts if k not in first)
        return "".join(f"{e}{counts[e] if counts[e] > 1 else ''}" for e in order if e in counts)


# --------------------------------------------------------------------------- reading

def _stderr_warning(message: str) -> None:
    print(f"octgen: warning: {message}", file=sys.stderr)


def read_molecule_entries(path: str | os.PathLike) -> list[tuple[int, Molecule | str]]:
    """Every entry of an SDF/MOL (RDKit) or XYZ (multi-frame) file, good or bad.

    Args:
        path: a ``.sdf``, ``.mol`` or ``.xyz`` file.
    Returns:
        ``(k, item)`` per entry in file order, ``k`` counting from 1; ``item`` is the
        :class:`Molecule` (named by the entry title, or ``FILE#k`` when that is
        empty) or a one-sentence reason why the entry is bad.
    Raises:
        InputError: missing, empty, non-text or unsupported file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a molecule file")
    suffix = path.suffix.lower()
    if suffix not in MOLECULE_SUFFIXES:
        raise InputError(f"{path}: unsupported molecule format '{path.suffix}' (use .sdf, .mol or .xyz)")
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (could not decode as UTF-8)") from None
    if not text.strip():
        raise InputError(f"{path}: empty file, no molecules")
    entries = _parse_xyz_text(text) if suffix == ".xyz" else _parse_sdf_text(text)
    for k, entry in enumerate(entries, start=1):
        if isinstance(entry, Molecule) and not entry.name:
            entry.name = f"{path.name}#{k}"
    return list(enumerate(entries, start=1))


def read_molecules(path: str | os.PathLike, strict: bool = False,
                   on_skip: Callable[[str], None] | None = _stderr_warning) -> list[Molecule]:
    """Read every molecule of an SDF/MOL (RDKit) or XYZ (multi-frame) file.

    Hydrogens are kept as written; coordinates are taken as Angstrom. A bad entry
    of a multi-molecule file is skipped and reported (one line naming the file and
    the entry) unless ``strict``.

    Args:
        path: a ``.sdf``, ``.mol`` or ``.xyz`` file.
        strict: raise on the first bad entry instead of skipping it.
        on_skip: called with one line ``FILE entry K: reason; skipped`` per skipped
            entry (default: printed to stderr as a warning).
    Returns:
        The good molecules in file order (see :func:`read_molecule_entries` for names).
    Raises:
        InputError: missing/empty/unsupported file, no readable entry, or (strict)
            any bad entry; the message names the file and the entry.
    """
    good, n_bad = [], 0
    entries = read_molecule_entries(path)
    for k, entry in entries:
        if isinstance(entry, Molecule):
            good.append(entry)
            continue
        message = f"{path} entry {k}: {entry}"
        if strict or len(entries) == 1:  # a lone bad entry: one error line, not a warning and an error
            raise InputError(message)
        n_bad += 1
        if on_skip is not None:
            on_skip(f"{message}; skipped")
    if not good:
        raise InputError(f"{path}: no readable molecule ({n_bad} bad entr{'y' if n_bad == 1 else 'ies'})")
    return good


def _entry_molecule(elements, positions, name) -> Molecule | str:
    """A Molecule, or the one-sentence reason the entry is bad."""
    if len(elements) == 0:
        return "molecule has no atoms"
    if len(elements) > MAX_ATOMS:
        return f"{len(elements)} atoms is more than the {MAX_ATOMS} octgen accepts"
    try:
        return Molecule(list(elements), np.asarray(positions, dtype=np.float64), name)
    except InputError as e:
        return str(e).replace(f"molecule '{name}': ", "")


def _parse_xyz_text(text: str) -> list[Molecule | str]:
    """Frames of an XYZ file: count line, comment line, ``El x y z`` lines.

    The element column may hold a symbol or an atomic number; extra columns
    (forces, charges) are ignored. Blank lines between frames are allowed.
    """
    lines = text.splitlines()
    out: list[Molecule | str] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        head = lines[i].split()
        try:
            n = int(head[0])
            if n < 0 or len(head) != 1:
                raise ValueError
        except ValueError:
            out.append(f"line {i + 1}: expected the atom count, got '{lines[i].strip()[:40]}'; "
                       "stopped reading this file here")
            break
        if i + 2 + n > len(lines):
            out.append(f"line {i + 1}: promises {n} atoms but the file ends after {max(0, len(lines) - i - 2)}")
            break
        name = lines[i + 1].strip()
        elements, positions, problem = [], [], None
        for j in range(i + 2, i + 2 + n):
            cols = lines[j].split()
            if len(cols) < 4:
                problem = f"line {j + 1}: expected 'element x y z', got '{lines[j].strip()[:40]}'"
                break
            try:
                xyz = [float(c) for c in cols[1:4]]
            except ValueError:
                problem = f"line {j + 1}: coordinates are not numbers ('{' '.join(cols[1:4])[:40]}')"
                break
            el = cols[0]
            if el.isdigit():
                z = int(el)
                if not 1 <= z < len(_SYMBOLS):
                    problem = f"line {j + 1}: unknown atomic number {z}"
                    break
                el = _SYMBOLS[z]
            elif el[:1].upper() + el[1:].lower() not in SYMBOL_TO_Z:
                problem = f"line {j + 1}: unknown element '{el[:10]}'"
                break
            elements.append(el)
            positions.append(xyz)
        out.append(problem if problem else _entry_molecule(elements, np.array(positions).reshape(-1, 3), name))
        i += 2 + n
    return out


def _parse_sdf_text(text: str) -> list[Molecule | str]:
    """Records of an SDF/MOL text, parsed by RDKit without sanitisation (hydrogens kept).

    V2000 records are first checked column by column (:func:`_v2000_problem`):
    RDKit reads a blank coordinate field as 0 and would silently misplace the atom.
    """
    from rdkit import Chem, RDLogger

    out: list[Molecule | str] = []
    RDLogger.DisableLog("rdApp.*")
    try:
        for first_line, block in _split_sdf_records(text):
            problem = _v2000_problem(block.splitlines(), first_line)
            if problem:
                out.append(problem)
                continue
            try:
                mol = Chem.MolFromMolBlock(block, sanitize=False, removeHs=False, strictParsing=True)
            except Exception as e:  # RDKit raises assorted runtime errors on broken blocks
                mol, err = None, f"{type(e).__name__}"
            else:
                err = None
            if mol is None:
                out.append(f"record from line {first_line}: not a valid MOL record{f' ({err})' if err else ''}")
                continue
            if mol.GetNumAtoms() == 0:
                out.append("molecule has no atoms")
                continue
            if mol.GetNumConformers() == 0:
                out.append("record has no coordinates")
                continue
            elements = [a.GetSymbol() for a in mol.GetAtoms()]
            bad = [e for e in elements if e not in SYMBOL_TO_Z]
            if bad:
                out.append(f"unknown element '{bad[0]}'")
                continue
            pos = mol.GetConformer().GetPositions()
            name = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
            out.append(_entry_molecule(elements, pos, name))
    finally:
        RDLogger.EnableLog("rdApp.*")
    return out


def _v2000_problem(lines: list[str], first_line: int) -> str | None:
    """The first structural problem of a V2000 MOL block, naming its file line, or None.

    Checks the counts line, that the promised atom and bond lines are all there,
    that every atom has three numeric coordinates in columns 1-30 and an element
    symbol (columns 32-34), that bonds join existing atoms, and the ``M  END`` line.
    V3000 blocks are left to RDKit.
    """
    if len(lines) < 4:
        return f"line {first_line + len(lines) - 1}: record ends inside its 4-line header (cut short?)"
    counts = lines[3]
    if "V3000" in counts:
        return None
    try:
        n_atoms, n_bonds = int(counts[0:3]), int(counts[3:6])
    except ValueError:
        return f"line {first_line + 3}: expected the MOL counts line (atoms, bonds), got '{counts.strip()[:40]}'"
    if n_atoms < 0 or n_bonds < 0:
        return f"line {first_line + 3}: negative atom or bond count"
    for k in range(n_atoms + n_bonds):
        i = 4 + k
        lineno = first_line + i
        if i >= len(lines):
            what = f"{k} of the {n_atoms} atom lines" if k < n_atoms else f"{k - n_atoms} of the {n_bonds} bond lines"
            return f"line {lineno - 1}: record ends after {what} its counts line promises (cut short?)"
        line = lines[i]
        if k < n_atoms:
            fields = [line[0:10], line[10:20], line[20:30]]
            for axis, field in zip("xyz", fields):
                if not field.strip():
                    return f"line {lineno}: atom {k + 1} has no {axis} coordinate"
                try:
                    float(field)
                except ValueError:
                    return f"line {lineno}: atom {k + 1} {axis} coordinate '{field.strip()[:20]}' is not a number"
            symbol = line[31:34].strip()
            if not symbol:
                return f"line {lineno}: atom {k + 1} has no element symbol"
            if symbol[:1].upper() + symbol[1:].lower() not in SYMBOL_TO_Z and symbol not in ("D", "T"):
                return f"line {lineno}: unknown element '{symbol}'"
        else:
            try:
                a, b = int(line[0:3]), int(line[3:6])
            except ValueError:
                return f"line {lineno}: expected a bond line (two atom numbers), got '{line.strip()[:40]}'"
            if not (1 <= a <= n_atoms and 1 <= b <= n_atoms):
                return f"line {lineno}: bond {k - n_atoms + 1} joins atom {a if not 1 <= a <= n_atoms else b}, " \
                       f"which does not exist ({n_atoms} atoms)"
    if not any(line.startswith("M  END") for line in lines[4 + n_atoms + n_bonds:]):
        return f"line {first_line + len(lines) - 1}: record has no 'M  END' line (cut short?)"
    return None


def _split_sdf_records(text: str) -> list[tuple[int, str]]:
    """MOL blocks of an SDF text, split at ``$$$$`` lines, with the file line number
    (from 1) each starts on; a MOL file is one record."""
    records, current, start = [], [], 1
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip() == "$$$$":
            records.append((start, "\n".join(current) + "\n"))
            current, start = [], lineno + 1
        else:
            current.append(line)
    if any(line.strip() for line in current):
        records.append((start, "\n".join(current) + "\n"))
    return records


def read_molecule_folder(path: str | os.PathLike, strict: bool = False,
                         on_skip: Callable[[str], None] | None = _stderr_warning) -> list[Molecule]:
    """Every molecule of every ``.sdf`` / ``.mol`` / ``.xyz`` file in a folder (sorted by
    name, not recursive), or of one file; bad entries as in :func:`read_molecules`."""
    path = Path(path)
    if not path.is_dir():
        return read_molecules(path, strict, on_skip)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in MOLECULE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"{path}: folder holds no .sdf, .mol or .xyz file")
    out = []
    for f in files:
        try:
            out.extend(read_molecules(f, strict, on_skip))
        except InputError as e:
            if strict:
                raise
            if on_skip is not None:
                on_skip(f"{e}; skipped")
    if not out:
        raise InputError(f"{path}: no readable molecule in {len(files)} file(s)")
    return out


# --------------------------------------------------------------------------- writing

MOLECULE_OUT_SUFFIXES = (".sdf", ".xyz")


def write_xyz(molecules: Molecule | list[Molecule], path: str | os.PathLike) -> Path:
    """Write one or more molecules as (multi-frame) XYZ, 6 decimals (1e-6 Angstrom), atomically."""
    from ..export.atomic import atomic_path

    mols = [molecules] if isinstance(molecules, Molecule) else list(molecules)
    path = Path(path)
    lines = []
    for m in mols:
        lines.append(str(len(m)))
        lines.append(" ".join(m.name.split()))
        lines.extend(f"{e:<2s} {x:14.6f} {y:14.6f} {z:14.6f}" for e, (x, y, z) in zip(m.elements, m.positions))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def molecule_to_rdkit(molecule: Molecule, bond_orders: np.ndarray | None = None):
    """An RDKit ``RWMol`` with one conformer and bonds perceived from geometry.

    Args:
        molecule: the atoms.
        bond_orders: optional (N, N) int matrix (0 none, 1..3); default: EDM
            distance-based orders from :func:`octgen.data.bonds.bond_orders`.
    Returns:
        An unsanitised ``Chem.RWMol`` (hydrogens explicit, implicit ones allowed by RDKit).
    """
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    orders = perceive_bonds(molecule) if bond_orders is None else np.asarray(bond_orders)
    types = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
    mol = Chem.RWMol()
    for e in molecule.elements:
        mol.AddAtom(Chem.Atom(e))
    ii, jj = np.nonzero(np.triu(orders, 1))
    for i, j in zip(ii.tolist(), jj.tolist()):
        mol.AddBond(i, j, types[int(orders[i, j])])
    conf = Chem.Conformer(len(molecule))
    for i, (x, y, z) in enumerate(molecule.positions.tolist()):
        conf.SetAtomPosition(i, Point3D(x, y, z))
    mol.AddConformer(conf, assignId=True)
    return mol


def write_sdf(molecules: Molecule | list[Molecule], path: str | os.PathLike) -> Path:
    """Write molecules to an SDF file with bonds perceived from geometry, atomically.

    Bond orders come from interatomic distances with the EDM tables (see
    :func:`octgen.data.bonds.bond_orders`); coordinates keep 4 decimals
    (the MOL format's precision). The molecule's name is the record title.
    """
    from rdkit import Chem

    from ..export.atomic import atomic_path

    mols = [molecules] if isinstance(molecules, Molecule) else list(molecules)
    path = Path(path)
    blocks = []
    for m in mols:
        rd = molecule_to_rdkit(m)
        rd.SetProp("_Name", " ".join(m.name.split()))
        rd.UpdatePropertyCache(strict=False)
        blocks.append(Chem.MolToMolBlock(rd, kekulize=False) + "$$$$\n")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(blocks))
    return path


def write_molecules(molecules: Molecule | list[Molecule], path: str | os.PathLike) -> Path:
    """Write ``.sdf`` or ``.xyz`` by suffix (see :func:`write_sdf`, :func:`write_xyz`)."""
    path = check_molecule_out_path(path)
    if path.suffix.lower() == ".sdf":
        return write_sdf(molecules, path)
    return write_xyz(molecules, path)


def check_molecule_out_path(path: str | os.PathLike) -> Path:
    """Validate an output molecule path (.sdf, .xyz) before any work is done."""
    from ..export.atomic import check_out_path

    return check_out_path(path, MOLECULE_OUT_SUFFIXES, "molecule")
