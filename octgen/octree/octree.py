"""The octree: one sorted array of Morton keys per depth.

Conventions (shared by every stage of octgen):
- Points live in the unit cube [-1, 1]^3. Depth ``d`` splits it into a ``2^d``
  grid; cell ``(i, j, k)`` spans ``[-1 + i*h, -1 + (i+1)*h]`` with ``h = 2 / 2^d``
  along x (likewise y, z).
- ``keys[d]`` holds the Morton keys (see :mod:`octgen.octree.morton`) of the
  *non-empty* nodes at depth ``d``, sorted ascending (z-order). ``keys[0]`` is the
  root ``[0]``; ``keys[depth]`` are the occupied leaves.
- Every non-empty node at depth ``d < depth`` has a *structure token*: the 8-bit
  mask of its non-empty children (1..255), bit ``s`` set when child slot ``s``
  (``child_key & 7``) is occupied. The masks of depth ``d`` fix every node
  position of depth ``d + 1``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .morton import MAX_DEPTH, key_to_xyz, spread_lut, xyz_to_key

# Below this many cells a dense occupancy bitmap beats sorting to deduplicate keys.
_DENSE_DEDUP_MAX_CELLS = 1 << 24
# One bit per child slot: _SLOT_BIT[key & 7] is the key's bit in its parent's mask.
_SLOT_BIT = np.array([1 << s for s in range(8)], dtype=np.uint8)


@dataclass
class Octree:
    """Sparse octree over [-1, 1]^3 with non-empty nodes only.

    Attributes:
        depth: finest depth D (leaves), 0 <= D <= 10.
        keys: list of D + 1 int64 tensors; ``keys[d]`` has shape (N_d,), sorted.
    """

    depth: int
    keys: list[torch.Tensor]
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def device(self) -> torch.device:
        return self.keys[0].device

    def num_nodes(self, d: int) -> int:
        """Number of non-empty nodes at depth ``d``."""
        return int(self.keys[d].numel())

    def nodes_per_depth(self) -> list[int]:
        return [self.num_nodes(d) for d in range(self.depth + 1)]

    def xyz(self, d: int) -> torch.Tensor:
        """(N_d, 3) int64 cell coordinates of the non-empty nodes at depth ``d``."""
        return key_to_xyz(self.keys[d])

    def cell_centres(self, d: int) -> torch.Tensor:
        """(N_d, 3) float32 cell centres in [-1, 1]^3 of the nodes at depth ``d``."""
        return xyz_to_centres(self.xyz(d), d)

    def parent_index(self, d: int) -> torch.Tensor:
        """(N_d,) int64 index into ``keys[d-1]`` of each node's parent, for d >= 1."""
        if not 1 <= d <= self.depth:
            raise ValueError(f"parent_index needs 1 <= d <= {self.depth}, got {d}")
        ck = ("parent", d)
        if ck not in self._cache:
            self._cache[ck] = torch.searchsorted(self.keys[d - 1], self.keys[d] >> 3)
        return self._cache[ck]

    def child_masks(self, d: int) -> torch.Tensor:
        """(N_d,) uint8 structure tokens of the nodes at depth ``d < depth``."""
        if not 0 <= d < self.depth:
            raise ValueError(f"child_masks needs 0 <= d < {self.depth}, got {d}")
        if ("masks", d) in self._cache:  # left by the CPU build, which gets them for free
            return self._cache[("masks", d)].clone()
        bits = torch.ones_like(self.keys[d + 1]) << (self.keys[d + 1] & 7)
        masks = torch.zeros(self.num_nodes(d), dtype=torch.int64, device=self.device)
        # Each child sets a distinct bit of its parent, so a sum is a bitwise OR.
        masks.index_add_(0, self.parent_index(d + 1), bits)
        return masks.to(torch.uint8)

    def to(self, device) -> "Octree":
        return Octree(self.depth, [k.to(device) for k in self.keys])

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Octree)
            and self.depth == other.depth
            and all(torch.equal(a.cpu(), b.cpu()) for a, b in zip(self.keys, other.keys))
        )


def xyz_to_centres(xyz: torch.Tensor, d: int) -> torch.Tensor:
    """Cell centres in [-1, 1]^3 of integer cell coordinates at depth ``d``."""
    h = 2.0 / (1 << d)
    return xyz.float() * h + (h / 2 - 1.0)


def points_to_xyz(points: torch.Tensor, depth: int) -> torch.Tensor:
    """Integer cell coordinates at ``depth`` of points in [-1, 1]^3 (the face x = 1
    belongs to the last cell).

    Exact: ``floor((p + 1) * h) == floor(p * h) + h`` for the integer ``h = 2^(depth-1)``
    (depth 0 has a single cell, which the clamp gives), and ``p * h`` is exact in the points' own precision (a power-of-two scale), so a
    point is never rounded across a cell boundary (computing ``p + 1`` first would
    round, e.g. ``-1e-30 + 1`` to 1.0, and put the point in the wrong cell)."""
    res = 1 << depth
    if points.dtype not in (torch.float32, torch.float64):
        points = points.float()  # exact for integers in the cube and for float16 / bfloat16
    t = (points * (res / 2)).floor_().add_(res / 2).clamp_(0, res - 1)
    return t.long()


def _check_depth(depth: int) -> None:
    if not isinstance(depth, int) or isinstance(depth, bool) or not 0 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be an integer in [0, {MAX_DEPTH}], got {depth!r}")


def _unique_sorted_keys(keys: torch.Tensor, depth: int) -> torch.Tensor:
    if (1 << (3 * depth)) <= _DENSE_DEDUP_MAX_CELLS:
        occupied = torch.zeros(1 << (3 * depth), dtype=torch.bool, device=keys.device)
        occupied[keys] = True
        return occupied.nonzero().squeeze(1)
    return torch.unique(keys, sorted=True)


def _points_to_keys_np(points_N3: np.ndarray, depth: int) -> np.ndarray:
    """(N,) int32 leaf Morton keys of float32/float64 points: the cells of
    :func:`points_to_xyz`, by the same exact arithmetic."""
    res = 1 << depth
    h = points_N3.dtype.type(res / 2)
    # One transposed copy so each axis is a contiguous row for the gathers below.
    t_3N = np.multiply(points_N3.T, h, order="C")
    np.floor(t_3N, out=t_3N)
    t_3N += h
    np.clip(t_3N, 0, res - 1, out=t_3N)
    xyz_3N = t_3N.astype(np.intp)
    lut = spread_lut(torch.device("cpu")).numpy().astype(np.int32)
    # key = spread(x) << 2 | spread(y) << 1 | spread(z); keys of depth <= 10 fit in 30 bits.
    keys = np.left_shift(lut.take(xyz_3N[0]), 2)
    keys |= np.left_shift(lut.take(xyz_3N[1]), 1)
    keys |= lut.take(xyz_3N[2])
    return keys


def _unique_sorted_keys_np(keys: np.ndarray, depth: int) -> np.ndarray:
    """Sorted distinct values of (N,) int32 keys of ``depth``."""
    n_cells = 1 << (3 * depth)
    if n_cells <= _DENSE_DEDUP_MAX_CELLS:
        occupied = np.zeros(n_cells, dtype=np.bool_)
        occupied[keys] = True
        # Scan 8 cells per step and expand only the words that hold an occupied cell.
        words = np.flatnonzero(occupied.view(np.uint64)) if n_cells >= 8 else None
        if words is None:
            return np.flatnonzero(occupied).astype(np.int32)
        hit_W8 = occupied.reshape(-1, 8)[words]
        w, slot = np.nonzero(hit_W8)
        return (words[w].astype(np.int32) << 3) | slot.astype(np.int32)
    keys = np.sort(keys)
    first = np.empty(keys.size, dtype=np.bool_)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return keys[first]


def _octree_from_sorted_keys_np(leaf_keys: np.ndarray, depth: int) -> Octree:
    """Octree (with its structure tokens cached) from sorted unique int32/int64 leaf keys.

    Parents of sorted keys are sorted, so every level and every mask comes from one
    linear pass over the level below: a new parent starts where ``key >> 3``
    changes, and its mask is the OR of its children's slot bits."""
    keys = [leaf_keys]
    masks = []
    for _ in range(depth):
        child = keys[-1]
        parent = child >> 3
        first = np.empty(child.size, dtype=np.bool_)
        first[:1] = True
        np.not_equal(parent[1:], parent[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        keys.append(parent[starts])
        masks.append(np.bitwise_or.reduceat(_SLOT_BIT.take(child & 7), starts))
    octree = Octree(depth, [torch.from_numpy(k.astype(np.int64)) for k in keys[::-1]])
    for d, m in enumerate(masks[::-1]):
        octree._cache[("masks", d)] = torch.from_numpy(m)
    return octree


def keys_to_octree(leaf_keys: torch.Tensor, depth: int) -> Octree:
    """Octree from the sorted, unique Morton keys of its leaves at ``depth``."""
    if leaf_keys.device.type == "cpu" and leaf_keys.numel():
        return _octree_from_sorted_keys_np(leaf_keys.numpy(), depth)
    return _octree_from_sorted_keys_torch(leaf_keys, depth)


def _octree_from_sorted_keys_torch(leaf_keys: torch.Tensor, depth: int) -> Octree:
    keys = [leaf_keys]
    for _ in range(depth):
        # Parents of sorted keys are sorted, so consecutive de-duplication suffices.
        keys.append(torch.unique_consecutive(keys[-1] >> 3))
    return Octree(depth, keys[::-1])


def build_octree(points: torch.Tensor, depth: int) -> Octree:
    """Build the octree of the cells occupied by ``points``.

    On CPU the work is done in NumPy on int32 keys (one sort, or a dense bitmap up to
    depth 8, then one linear pass per level that also yields the structure tokens);
    other devices run the same steps as torch ops. Both give identical octrees.

    Args:
        points: (N, 3) float tensor in [-1, 1]^3, N >= 1, all finite.
        depth: finest depth, 0..10.
    Returns:
        The :class:`Octree` whose leaves are the occupied cells at ``depth``.
    Raises:
        ValueError: empty input, wrong shape, NaN/inf, points outside the cube.
    """
    _check_depth(depth)
    if not torch.is_tensor(points):
        points = torch.as_tensor(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {tuple(points.shape)}")
    if points.shape[0] == 0:
        raise ValueError("points is empty")
    if not points.is_floating_point():
        points = points.float()
    points = points.detach()
    lo, hi = torch.aminmax(points)  # NaN propagates, so one pass checks everything
    if not bool((lo >= -(1.0 + 1e-6)) & (hi <= 1.0 + 1e-6)):
        if not torch.isfinite(points).all():
            raise ValueError("points contain NaN or inf")
        raise ValueError("points must lie in [-1, 1]^3; normalise them first")
    if points.device.type == "cpu":
        return _build_octree_np(points, depth)
    return _build_octree_torch(points, depth)


def _build_octree_np(points: torch.Tensor, depth: int) -> Octree:
    if points.dtype not in (torch.float32, torch.float64):
        points = points.float()  # exact for float16 / bfloat16
    keys = _points_to_keys_np(points.numpy(), depth)
    return _octree_from_sorted_keys_np(_unique_sorted_keys_np(keys, depth), depth)


def _build_octree_torch(points: torch.Tensor, depth: int) -> Octree:
    leaf_keys = _unique_sorted_keys(xyz_to_key(points_to_xyz(points, depth)), depth)
    return _octree_from_sorted_keys_torch(leaf_keys, depth)


def octree_to_tokens(octree: Octree) -> list[torch.Tensor]:
    """Structure tokens, one uint8 tensor per depth 0..D-1, each in z-order."""
    return [octree.child_masks(d) for d in range(octree.depth)]


def tokens_to_octree(tokens: list[torch.Tensor]) -> Octree:
    """Rebuild the octree from its structure tokens (inverse of :func:`octree_to_tokens`).

    Args:
        tokens: D tensors of child masks; ``tokens[d]`` must have one entry per
            node at depth ``d`` implied by ``tokens[:d]`` and values in 1..255.
    Raises:
        ValueError: a level has the wrong length or a zero mask.
    """
    depth = len(tokens)
    _check_depth(depth)
    device = tokens[0].device if depth else torch.device("cpu")
    keys = [torch.zeros(1, dtype=torch.int64, device=device)]
    slots = torch.arange(8, device=device)
    for d, masks in enumerate(tokens):
        masks = masks.long().reshape(-1)
        if masks.numel() != keys[-1].numel():
            raise ValueError(f"level {d}: expected {keys[-1].numel()} tokens, got {masks.numel()}")
        if masks.numel() and (masks.min() < 1 or masks.max() > 255):
            raise ValueError(f"level {d}: structure tokens must be in 1..255")
        present_N8 = ((masks[:, None] >> slots) & 1).bool()
        child_N8 = (keys[-1][:, None] << 3) | slots
        keys.append(child_N8[present_N8])  # row-major order keeps z-order
    return Octree(depth, keys)


def children_keys(keys: torch.Tensor) -> torch.Tensor:
    """All 8 children (occupied or not) of each node: (N,) -> (N * 8,) sorted keys."""
    return ((keys[:, None] << 3) | torch.arange(8, device=keys.device)).reshape(-1)
