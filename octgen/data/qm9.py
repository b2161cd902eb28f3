"""QM9 (134k small organic molecules, H C N O F, at most 9 heavy atoms) with its
B3LYP/6-31G(2df,p) DFT geometries, read offline from the ``qm9pack`` package.

``qm9pack`` ships the 130,831 molecules that QM9's authors kept (the 3,054 whose
geometry failed their consistency check are already left out) as three CSV files
with one row per molecule: the id, SMILES, element list and ``XYZ_Ang`` positions.
The CSVs take about half a minute to parse, so :func:`load_qm9` parses them once
into a compact cache ``$OCTGEN_CACHE/qm9/qm9_v1.npz`` (default
``~/.cache/octgen``): atom counts, offsets, atomic numbers, float64 positions,
QM9 ids and SMILES. Later loads take well under a second.

Split: a permutation of all molecules by ``torch.Generator().manual_seed(seed)``
(default seed 0), cut into the EDM sizes: 100,000 train, 17,748 val and 13,083
test (10 %). The same seed always gives the same split.

Evaluate a split with ``octgen eval molecules --qm9-split test``, or write it to a
file (4-decimal SDF with perceived bonds, or 6-decimal XYZ) for other tools::

    from octgen.data.qm9 import load_qm9
    from octgen.data.molecules import write_sdf
    qm9 = load_qm9()
    write_sdf(qm9.molecules(qm9.split_indices("test")), "qm9_test.sdf")
"""
from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from .molecules import SYMBOL_TO_Z, Molecule
from .cache import cache_dir  # noqa: F401  (re-exported: callers use qm9.cache_dir)

CACHE_VERSION = 1
QM9_NUM_MOLECULES = 130_831
SPLIT_SIZES = {"train": 100_000, "val": 17_748, "test": 13_083}
SPLIT_SEED = 0
_CSV_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")


def qm9pack_data_dir() -> Path:
    """The folder of qm9pack's CSV files, found without importing qm9pack (its
    ``__init__`` needs pandas and pkg_resources, which octgen does not)."""
    import importlib.util

    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("QM9 needs the 'qm9pack' package: pip install qm9pack==1.0.3")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


@dataclass
class QM9:
    """All QM9 molecules as flat arrays.

    Attributes:
        ids: (M,) int32 QM9 index (1..133885).
        n_atoms: (M,) int32 atoms per molecule.
        offsets: (M + 1,) int64; molecule i owns atoms ``offsets[i]:offsets[i+1]``.
        z: (A,) uint8 atomic numbers of all atoms.
        positions: (A, 3) float64 positions in Angstrom.
        smiles: (M,) str, the SMILES column of qm9pack.
    """

    ids: np.ndarray
    n_atoms: np.ndarray
    offsets: np.ndarray
    z: np.ndarray
    positions: np.ndarray
    smiles: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def molecule(self, i: int) -> Molecule:
        """Molecule ``i`` (0-based row), named ``qm9_<id>``."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return Molecule.from_atomic_numbers(self.z[a:b], self.positions[a:b], f"qm9_{int(self.ids[i]):06d}")

    def molecules(self, indices=None) -> list[Molecule]:
        idx = range(len(self)) if indices is None else indices
        return [self.molecule(int(i)) for i in idx]

    def split_indices(self, split: str, seed: int = SPLIT_SEED) -> np.ndarray:
        """Sorted row indices of ``split`` ('train', 'val', 'test' or 'all')."""
        return split_indices(len(self), split, seed)


def split_indices(n: int, split: str, seed: int = SPLIT_SEED) -> np.ndarray:
    """Row indices of a deterministic split of ``n`` molecules (EDM sizes when n is
    the full QM9; otherwise the same 100000:17748:13083 proportions)."""
    if split == "all":
        return np.arange(n)
    if split not in SPLIT_SIZES:
        raise InputError(f"unknown QM9 split '{split}' (use train, val, test or all)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    if n == QM9_NUM_MOLECULES:
        n_train, n_val = SPLIT_SIZES["train"], SPLIT_SIZES["val"]
    else:
        n_test = int(round(n * SPLIT_SIZES["test"] / QM9_NUM_MOLECULES))
        n_val = int(round(n * SPLIT_SIZES["val"] / QM9_NUM_MOLECULES))
        n_train = n - n_val - n_test
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
    a, b = bounds[split]
    return np.sort(perm[a:b])


def parse_qm9pack(data_dir: Path | None = None, progress: bool = False) -> QM9:
    """Parse qm9pack's CSV files (slow: tens of seconds). Rows are sorted by QM9 id."""
    data_dir = data_dir or qm9pack_data_dir()
    csv.field_size_limit(1 << 26)
    ids, counts, zs, pos, smiles = [], [], [], [], []
    for part in _CSV_PARTS:
        path = data_dir / part
        if not path.is_file():
            raise InputError(f"{path}: qm9pack data file missing; reinstall qm9pack==1.0.3")
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            for row_no, row in enumerate(reader, start=2):
                try:
                    elements = [e.strip(" '\"") for e in row["Elements"].strip("[]").split(",")]
                    # Numbers like "0." and "1." are not JSON, so split by hand.
                    flat = row["XYZ_Ang"].replace("[", " ").replace("]", " ").split(",")
                    xyz = np.asarray([float(v) for v in flat], dtype=np.float64).reshape(-1, 3)
                    z = [SYMBOL_TO_Z[e] for e in elements]
                    if len(z) != len(xyz) or len(z) != int(row["N_atoms"]):
                        raise ValueError("atom count mismatch")
                except (KeyError, ValueError) as e:
                    raise InputError(f"{path} line {row_no}: malformed QM9 row ({e})") from None
                ids.append(int(row["Index"]))
                counts.append(len(z))
                zs.extend(z)
                pos.append(xyz)
                smiles.append(row["SMILES"])
        if progress:
            print(f"parsed {path.name}: {len(ids)} molecules so far", file=sys.stderr)
    ids_a = np.asarray(ids, dtype=np.int32)
    order = np.argsort(ids_a, kind="stable")
    counts_a = np.asarray(counts, dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts_a)]).astype(np.int64)
    z_a = np.asarray(zs, dtype=np.uint8)
    pos_a = np.concatenate(pos, axis=0)
    if not (order == np.arange(len(order))).all():
        atom_idx = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in order])
        counts_a, z_a, pos_a = counts_a[order], z_a[atom_idx], pos_a[atom_idx]
        ids_a = ids_a[order]
        smiles = [smiles[i] for i in order]
        offsets = np.concatenate([[0], np.cumsum(counts_a)]).astype(np.int64)
    return QM9(ids_a, counts_a, offsets, z_a, pos_a, np.asarray(smiles))


def load_qm9(cache: Path | None = None, progress: bool = True) -> QM9:
    """QM9 from the cache, parsing qm9pack once on first use.

    Args:
        cache: cache file (default ``cache_dir()/qm9/qm9_v1.npz``).
        progress: print parsing progress to stderr on the first (slow) load.
    """
    from ..export.atomic import atomic_path

    cache = Path(cache) if cache else cache_dir() / "qm9" / f"qm9_v{CACHE_VERSION}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as f:
                if int(f["version"]) == CACHE_VERSION:
                    return QM9(f["ids"], f["n_atoms"], f["offsets"], f["z"], f["positions"], f["smiles"])
        except (OSError, ValueError, KeyError):
            pass  # stale or damaged cache: parse again below
    if progress:
        print(f"parsing QM9 from qm9pack once into {cache} ...", file=sys.stderr)
    data = parse_qm9pack(progress=progress)
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, version=np.int64(CACHE_VERSION), ids=data.ids, n_atoms=data.n_atoms,
                     offsets=data.offsets, z=data.z, positions=data.positions, smiles=data.smiles)
    return data
