"""The molecule tokenizer: atoms in Angstrom to ``OctreeTokens`` and back, lossless
up to the offset bin.

Frame. The molecule is centred on the mean of its atom positions (all atoms,
unweighted) and, for augmentation, optionally rotated about it:
``x_box = R (x - centre)``. The box is the cube ``[-L, L]^3`` with
``L = cell_size * 2^depth / 2`` (defaults: 0.24 Angstrom cells, depth 6, so
L = 7.68 Angstrom, the Uni-3DAR choice for QM9).

Tokens. Each atom falls in one finest cell (depth ``depth``). The structure tokens
are the 8-bit child masks of the octree of occupied cells (see
:mod:`octgen.tokenize.tokens`); the payload of each leaf, in z-order, is
``[element index, x bin, y bin, z bin]``: the element in the configured vocabulary
and the atom's offset inside its cell, quantised into ``offset_bins`` bins per axis
(0.24 / 24 = 0.01 Angstrom by default). Decoding puts the atom at its bin centre, so
every coordinate comes back within half a bin (0.005 Angstrom) in the box frame.

Collisions. A cell holds at most one atom. Two atoms share a cell only when they are
closer than the cell diagonal (0.42 Angstrom by default), far below any covalent bond
(QM9's shortest interatomic distance is about 0.96 Angstrom), so on QM9 the collision
count is zero for every rotation: ``octgen bench qm9-tokenizer`` measures it. A molecule
with such a collision is refused with an :class:`~octgen.errors.InputError` naming the
two atoms: the tokens can never drop or merge an atom silently.

The encoder records the centre and rotation in ``tokens.meta`` so that
``decode(tokens, restore_frame=True)`` returns the input frame (the CLI does this);
generated tokens carry no frame and decode centred at the origin.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..octree import MAX_DEPTH, keys_to_octree, xyz_to_key
from ..weights import check_config_json
from .base import OctreeTokenizer
from .tokens import OctreeTokens

CONFIG_NAME = "config.json"
CONFIG_VERSION = 1
QM9_ELEMENTS = ("H", "C", "N", "O", "F")
# Drug-like sets (GEOM-Drugs style) need these as well.
DRUG_ELEMENTS = ("H", "B", "C", "N", "O", "F", "Al", "Si", "P", "S", "Cl", "As", "Br", "I", "Hg", "Bi")


@dataclass
class MoleculeTokenizerConfig:
    """Settings of :class:`MoleculeTokenizer` (saved as ``config.json``).

    Attributes:
        elements: element vocabulary; payload column 0 indexes it.
        cell_size: edge of a finest octree cell in Angstrom.
        depth: octree depth D; the box edge is ``cell_size * 2^D`` Angstrom.
        offset_bins: bins per axis inside a cell; bin width ``cell_size / offset_bins``.
        version: config format version.
    """

    elements: tuple[str, ...] = QM9_ELEMENTS
    cell_size: float = 0.24
    depth: int = 6
    offset_bins: int = 24
    version: int = CONFIG_VERSION

    def __post_init__(self):
        from ..data.molecules import symbol_to_z, z_to_symbol

        self.elements = tuple(z_to_symbol(symbol_to_z(e)) for e in self.elements)
        if not self.elements or len(set(self.elements)) != len(self.elements):
            raise InputError("molecule tokenizer: element vocabulary must be non-empty and without repeats")
        if not 1 <= int(self.depth) <= MAX_DEPTH:
            raise InputError(f"molecule tokenizer: depth must be in [1, {MAX_DEPTH}], got {self.depth}")
        if not self.cell_size > 0:
            raise InputError(f"molecule tokenizer: cell_size must be positive, got {self.cell_size}")
        if not 1 <= int(self.offset_bins) <= 4096:
            raise InputError(f"molecule tokenizer: offset_bins must be in [1, 4096], got {self.offset_bins}")
        if int(self.version) != CONFIG_VERSION:
            raise InputError(f"molecule tokenizer: config version {self.version}, expected {CONFIG_VERSION}")
        self.depth, self.offset_bins, self.cell_size = int(self.depth), int(self.offset_bins), float(self.cell_size)

    @property
    def half_box(self) -> float:
        """Half the box edge in Angstrom: atoms must satisfy ``|x_box| < half_box``."""
        return self.cell_size * (1 << self.depth) / 2

    @property
    def bin_size(self) -> float:
        """Width of one offset bin in Angstrom (the round-trip error is at most half of it)."""
        return self.cell_size / self.offset_bins


def random_rotation(generator: torch.Generator | None = None) -> np.ndarray:
    """A uniformly random 3x3 rotation (Haar measure, det +1) as float64 numpy.

    QR of a Gaussian matrix with the signs of R's diagonal moved into Q is Haar on
    O(3); flipping one column when det = -1 keeps it uniform on SO(3).
    """
    a = torch.randn(3, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.numpy()


#: The orientations a molecule can be tokenized in: its own (``"native"``), its
#: principal axes (``"principal"``), or its principal axes moved off the octree's split
#: planes (``"principal-offset"``, see :meth:`MoleculeTokenizer.frame_shift`).
FRAMES = ("native", "principal", "principal-offset")


def check_frame(frame: str, what: str = "frame") -> None:
    """Raise an :class:`~octgen.errors.InputError` naming ``what`` unless ``frame`` is
    one of :data:`FRAMES`."""
    if frame not in FRAMES:
        raise InputError(f"{what} must be one of {', '.join(FRAMES)}, got '{frame}'")


def principal_frame(positions: np.ndarray) -> np.ndarray:
    """The proper rotation (3, 3) that puts a point set's principal axes on x, y, z.

    Rows are the axes of the centred points' covariance by decreasing spread (x the
    longest), each first two signed so that the points' third moment along it is
    >= 0, the third their cross product (det +1: a mirror image stays a mirror
    image). The same molecule in any orientation lands in one frame, up to ties of
    symmetric molecules.
    """
    q = np.asarray(positions, dtype=np.float64)
    q = q - q.mean(axis=0)
    _, vecs = np.linalg.eigh(q.T @ q)
    axes = vecs[:, ::-1].T.copy()  # rows, decreasing eigenvalue
    for k in range(2):
        if np.sum((q @ axes[k]) ** 3) < 0:
            axes[k] = -axes[k]
    axes[2] = np.cross(axes[0], axes[1])
    return axes


class MoleculeTokenizer(OctreeTokenizer):
    """Atoms <-> octree tokens with ``payload_kind="atoms"``: a tokenizer with a
    config and no learned weights (``save_pretrained`` writes ``config.json`` only).

    Args: the fields of :class:`MoleculeTokenizerConfig` (validated there).

    Attributes:
        settings: the validated :class:`MoleculeTokenizerConfig` (``config`` is the
            diffusers ``ConfigMixin`` view of the same values).
        depth: octree depth D (structure tokens at depths 0..D-1, atoms at D).
        payload_vocab_sizes: ``[n_elements, offset_bins, offset_bins, offset_bins]``,
            the number of classes of each payload column.
    """

    payload_kind = "atoms"

    def __init__(self, elements: tuple[str, ...] = QM9_ELEMENTS, cell_size: float = 0.24, depth: int = 6,
                 offset_bins: int = 24, version: int = CONFIG_VERSION):
        super().__init__()
        self.settings = MoleculeTokenizerConfig(elements, cell_size, depth, offset_bins, version)
        cfg = asdict(self.settings)
        cfg["elements"] = list(cfg["elements"])
        self.register_to_config(**cfg)
        self._index = {e: i for i, e in enumerate(self.settings.elements)}

    @classmethod
    def from_settings(cls, settings: MoleculeTokenizerConfig) -> "MoleculeTokenizer":
        return cls(**asdict(settings))

    @property
    def depth(self) -> int:
        return self.settings.depth

    @property
    def payload_vocab_sizes(self) -> list[int]:
        nb = self.settings.offset_bins
        return [len(self.settings.elements), nb, nb, nb]

    # ------------------------------------------------------------------ encode
    def molecule_to_box(self, molecule, rotation=None, generator: torch.Generator | None = None):
        """Centre (and rotate) a molecule into the tokenizer's box frame.

        Args:
            molecule: a :class:`~octgen.data.molecules.Molecule`.
            rotation: None (keep orientation), ``"random"`` (uniform, drawn from
                ``generator``), ``"principal"`` (:func:`principal_frame`),
                ``"principal-offset"`` (the same, then moved by :meth:`frame_shift`) or
                a (3, 3) rotation matrix.
            generator: torch generator for ``"random"``.
        Returns:
            ``(x_box, centre, R)``: (N, 3) float64 box-frame positions, (3,) centre,
            (3, 3) rotation (identity when None) with ``x_box = (x - centre) @ R.T``
            (for ``"principal-offset"`` the centre is the point that lands on
            :meth:`frame_shift`, not on the origin).
        """
        pos = np.asarray(molecule.positions, dtype=np.float64)
        centre = pos.mean(axis=0) if len(pos) else np.zeros(3)
        if rotation is None:
            rot = np.eye(3)
        elif isinstance(rotation, str):
            if rotation not in ("random", "principal", "principal-offset"):
                raise InputError("rotation must be None, 'random', 'principal', 'principal-offset' or a 3x3 "
                                 f"matrix, got '{rotation}'")
            rot = random_rotation(generator) if rotation == "random" else principal_frame(pos)
            if rotation == "principal-offset":
                centre = centre - self.frame_shift() @ rot
        else:
            rot = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
            if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6) or np.linalg.det(rot) < 0:
                raise InputError("rotation must be a proper 3x3 rotation matrix")
        return (pos - centre) @ rot.T, centre, rot

    def frame_shift(self) -> np.ndarray:
        """(3,) the box-frame point a ``"principal-offset"`` molecule is centred on:
        ``(0, 0, 2L / 24)`` (0.64 Angstrom by default).

        In the principal frame most of a QM9 molecule lies near the plane z = 0 (a
        quarter of its atoms within 0.1 Angstrom), which is a split plane of every
        octree level, so which side of it each of those atoms falls on is noise the
        model has to reproduce at every level. ``2L / 24`` lies at least a third of a
        cell from the split planes of every level with cells of ``2L / 8`` or less
        (0.64 / 0.32 / 0.16 / 0.08 Angstrom from those of the 1.92 / 0.96 / 0.48 /
        0.24 Angstrom cells by default) and ``2L / 24`` from the coarser ones.
        (Measured on QM9 and not adopted: ``checkpoints/qm9-xs/README.md``.)
        """
        return np.array([0.0, 0.0, 2 * self.settings.half_box / 24])

    def box_to_grid(self, x_box: np.ndarray, name: str = "") -> np.ndarray:
        """(N, 3) box-frame Angstrom -> (N, 3) int64 indices on the fine grid of
        ``2^D * offset_bins`` bins per axis; cell = index // bins, offset = index % bins.

        Raises:
            InputError: an atom outside the box.
        """
        cfg = self.settings
        n_fine = (1 << cfg.depth) * cfg.offset_bins
        q = np.floor((x_box + cfg.half_box) / cfg.bin_size).astype(np.int64)
        outside = (q < 0) | (q >= n_fine)
        if outside.any():
            reach = float(np.abs(x_box).max())
            raise InputError(f"molecule '{name}' reaches {reach:.2f} A from its centre, beyond the tokenizer's "
                             f"box (half-width {cfg.half_box:.2f} A)")
        return q

    def encode_with_order(self, molecule, rotation=None, generator: torch.Generator | None = None):
        """Like :meth:`encode`, also returning ``order``: (N,) int64, the input atom
        index of each leaf (payload row) in z-order."""
        cfg = self.settings
        name = molecule.name
        if len(molecule) == 0:
            raise InputError(f"molecule '{name}' has no atoms")
        missing = [e for e in molecule.elements if e not in self._index]
        if missing:
            raise InputError(f"molecule '{name}': element '{missing[0]}' is not in the tokenizer's vocabulary "
                             f"({', '.join(cfg.elements)})")
        elem = np.array([self._index[e] for e in molecule.elements], dtype=np.int64)
        x_box, centre, rot = self.molecule_to_box(molecule, rotation, generator)
        q = self.box_to_grid(x_box, name)
        cell, offset = q // cfg.offset_bins, q % cfg.offset_bins
        keys = xyz_to_key(torch.from_numpy(cell)).numpy()
        order = np.argsort(keys, kind="stable")
        keys_sorted = keys[order]
        same = np.nonzero(keys_sorted[1:] == keys_sorted[:-1])[0]
        if len(same):
            i, j = int(order[same[0]]), int(order[same[0] + 1])
            d = float(np.linalg.norm(molecule.positions[i] - molecule.positions[j]))
            raise InputError(f"molecule '{name}': atoms {i + 1} and {j + 1} ({d:.2f} A apart) fall in one "
                             f"{cfg.cell_size} A cell; the tokens hold one atom per cell")
        octree = keys_to_octree(torch.from_numpy(keys_sorted), cfg.depth)
        payload_N4 = torch.from_numpy(np.concatenate([elem[order, None], offset[order]], axis=1))
        meta = {"tokenizer": "molecule", "name": name, "elements": list(cfg.elements),
                "cell_size": cfg.cell_size, "depth": cfg.depth, "offset_bins": cfg.offset_bins,
                "centre": centre.tolist(), "rotation": rot.tolist()}
        return OctreeTokens.from_octree(octree, payload_N4, "atoms", meta), torch.from_numpy(order)

    def encode(self, molecule, rotation=None, generator: torch.Generator | None = None) -> OctreeTokens:
        """Tokenize one molecule.

        Args:
            molecule: a :class:`~octgen.data.molecules.Molecule` (Angstrom).
            rotation: None, ``"random"`` or a (3, 3) rotation (see :meth:`molecule_to_box`).
            generator: torch generator used when ``rotation="random"``.
        Returns:
            OctreeTokens with ``payload_kind="atoms"`` and payload (N_leaf, 4) int64
            ``[element index, x bin, y bin, z bin]`` in z-order; ``meta`` holds the
            frame (centre, rotation) and the tokenizer settings.
        Raises:
            InputError: empty molecule, element outside the vocabulary, an atom
                outside the box, or two atoms in one cell.
        """
        return self.encode_with_order(molecule, rotation, generator)[0]

    # ------------------------------------------------------------------ decode
    def decode(self, tokens: OctreeTokens, restore_frame: bool = False):
        """Atoms of a token sequence.

        Args:
            tokens: OctreeTokens with ``payload_kind="atoms"`` and this tokenizer's depth.
            restore_frame: undo the centring and rotation recorded in ``tokens.meta``
                (when present); otherwise the molecule is returned in the box frame.
        Returns:
            A :class:`~octgen.data.molecules.Molecule` with one atom per leaf, in z-order.
        Raises:
            InputError: wrong payload kind, depth, payload width or out-of-range values.
        """
        from ..data.molecules import Molecule

        cfg = self.settings
        name = str(tokens.meta.get("name", ""))
        if tokens.payload_kind != "atoms":
            raise InputError(f"tokens '{name}' carry a '{tokens.payload_kind}' payload, not atoms")
        if tokens.depth != cfg.depth:
            raise InputError(f"tokens '{name}' have depth {tokens.depth}, the tokenizer expects {cfg.depth}")
        for key in ("elements", "cell_size", "offset_bins"):
            if key in tokens.meta and tokens.meta[key] != (list(cfg.elements) if key == "elements" else
                                                           getattr(cfg, key)):
                raise InputError(f"tokens '{name}' were made with {key}={tokens.meta[key]}, "
                                 f"the tokenizer has {getattr(cfg, key)}")
        payload_N4 = tokens.payload.cpu().long()
        if payload_N4.ndim != 2 or payload_N4.shape[1] != 4:
            raise InputError(f"tokens '{name}': atom payload must have 4 columns, got {tuple(payload_N4.shape)}")
        hi = torch.tensor(self.payload_vocab_sizes)
        if ((payload_N4 < 0) | (payload_N4 >= hi)).any():
            raise InputError(f"tokens '{name}': atom payload out of range (sizes {self.payload_vocab_sizes})")
        leaf_xyz = tokens.octree().xyz(cfg.depth).cpu().numpy()  # (N_leaf, 3) cells at depth D
        q = leaf_xyz * cfg.offset_bins + payload_N4[:, 1:].numpy()
        x_box = (q + 0.5) * cfg.bin_size - cfg.half_box
        if restore_frame and "centre" in tokens.meta:
            rot = np.asarray(tokens.meta.get("rotation", np.eye(3).tolist()), dtype=np.float64)
            x_box = x_box @ rot + np.asarray(tokens.meta["centre"], dtype=np.float64)
        elements = [cfg.elements[i] for i in payload_N4[:, 0].tolist()]
        return Molecule(elements, x_box, name)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | os.PathLike, **_) -> Path:
        """Write ``config.json`` (the whole tokenizer: it has no weights) atomically."""
        from ..export.atomic import atomic_path

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cfg = asdict(self.settings)
        cfg["elements"] = list(cfg["elements"])
        with atomic_path(directory / CONFIG_NAME) as tmp:
            tmp.write_text(json.dumps({"_class_name": type(self).__name__, **cfg}, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **_) -> "MoleculeTokenizer":
        """Rebuild the tokenizer from a folder written by :meth:`save_pretrained`."""
        path = Path(directory)
        path = path / CONFIG_NAME if path.is_dir() else path
        data = check_config_json(path)
        if data.get("_class_name") != cls.__name__:
            raise InputError(f"{path}: config is for '{data.get('_class_name')}', not {cls.__name__}")
        known = {f.name for f in fields(MoleculeTokenizerConfig)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except InputError as e:
            raise InputError(f"{path}: {e}") from None
        except (TypeError, ValueError) as e:
            raise InputError(f"{path}: corrupt molecule tokenizer config ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:120] if str(e) else 'no detail'})") from None

    load = from_pretrained

    def __repr__(self) -> str:
        c = self.settings
        return (f"MoleculeTokenizer(elements={list(c.elements)}, cell_size={c.cell_size}, depth={c.depth}, "
                f"offset_bins={c.offset_bins}, box=±{c.half_box:.2f} A)")
