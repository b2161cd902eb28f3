"""3x3x3 neighbour look-up among the nodes of one depth."""
from __future__ import annotations

import itertools

import torch

from .morton import key_to_xyz

# Offsets in the order of a flattened (kx, ky, kz) conv3d kernel: k = 9*(dx+1) + 3*(dy+1) + (dz+1).
NEIGHBOUR_OFFSETS = torch.tensor(list(itertools.product((-1, 0, 1), repeat=3)), dtype=torch.int64)

# Up to this grid resolution a dense index grid (int32) is used; finer levels are
# derived from their parent level's table.
_DENSE_GRID_MAX_RES = 256


def _child_tables() -> tuple[torch.Tensor, torch.Tensor]:
    """For a child in slot ``s`` and neighbour offset ``k``: the offset index (0..26)
    of the parent that holds that neighbour, and the neighbour's slot in it. Two (8, 27)
    int32 tables."""
    parent_off = torch.empty(8, 27, dtype=torch.int32)
    child_slot = torch.empty(8, 27, dtype=torch.int32)
    for s in range(8):
        sxyz = ((s >> 2) & 1, (s >> 1) & 1, s & 1)
        for k, off in enumerate(NEIGHBOUR_OFFSETS.tolist()):
            c = [a + o for a, o in zip(sxyz, off)]  # -1..2 along each axis
            p = [v >> 1 for v in c]  # the parent's offset: -1, 0 or 1
            parent_off[s, k] = 9 * (p[0] + 1) + 3 * (p[1] + 1) + (p[2] + 1)
            child_slot[s, k] = ((c[0] & 1) << 2) | ((c[1] & 1) << 1) | (c[2] & 1)
    return parent_off, child_slot


_PARENT_OFF_8x27, _CHILD_SLOT_8x27 = _child_tables()


def neighbour_table(keys: torch.Tensor, depth: int) -> torch.Tensor:
    """Indices of the 27 neighbours of each node.

    Args:
        keys: (N,) int64 sorted, unique Morton keys of nodes at ``depth``.
        depth: the depth of those nodes (grid resolution 2^depth).
    Returns:
        (N, 27) int64: ``table[i, k]`` is the row in ``keys`` of the node at
        offset ``NEIGHBOUR_OFFSETS[k]`` from node ``i``, or -1 where that cell is
        not in ``keys`` (or outside the grid). Column 13 is the node itself.
    """
    return _neighbour_table_i32(keys, depth).long()


def _neighbour_table_i32(keys: torch.Tensor, depth: int) -> torch.Tensor:
    res = 1 << depth
    if res > _DENSE_GRID_MAX_RES:
        return _neighbours_from_parents(keys, depth)
    n = keys.numel()
    xyz_N3 = key_to_xyz(keys)
    offsets_K3 = NEIGHBOUR_OFFSETS.to(keys.device)
    # Index grid padded by one cell on every side so no bounds checks are needed.
    rp = res + 2
    grid = torch.full((rp * rp * rp,), -1, dtype=torch.int32, device=keys.device)
    lin_N = ((xyz_N3[:, 0] + 1) * rp + (xyz_N3[:, 1] + 1)) * rp + (xyz_N3[:, 2] + 1)
    grid[lin_N] = torch.arange(n, dtype=torch.int32, device=keys.device)
    lin_off_K = (offsets_K3[:, 0] * rp + offsets_K3[:, 1]) * rp + offsets_K3[:, 2]
    return grid[lin_N[:, None] + lin_off_K[None, :]]


def _neighbours_from_parents(keys: torch.Tensor, depth: int) -> torch.Tensor:
    """(N, 27) int32 neighbour table for grids finer than 256^3, from the parents' table.

    A child's neighbour at offset ``o`` is a child of one of its parent's 27
    neighbours, which one and in which slot depending only on the child's own slot
    and ``o`` (the two (8, 27) tables above). So the table is three gathers per
    entry: parent's neighbour, then that parent's child, with no search or hashing.
    The parent level (depth - 1) is computed the same way down to the dense grid.
    """
    dev = keys.device
    n = keys.numel()
    parent_keys, parent_N = torch.unique_consecutive(keys >> 3, return_inverse=True)
    n_parents = parent_keys.numel()
    parent_nb_flat = _neighbour_table_i32(parent_keys, depth - 1).reshape(-1)
    slot_N = keys & 7
    parent_N = parent_N.to(torch.int32)
    # Child rows by (parent, slot), with one leading block of -1 for "no parent there".
    children = torch.full(((n_parents + 1) * 8,), -1, dtype=torch.int32, device=dev)
    children[(parent_N.long() + 1) * 8 + slot_N] = torch.arange(n, dtype=torch.int32, device=dev)
    nb_parent_N27 = parent_nb_flat[parent_N[:, None] * 27 + _PARENT_OFF_8x27.to(dev)[slot_N]]
    nb_parent_N27 += 1  # -1 (no parent neighbour) -> block 0, all -1
    nb_parent_N27 *= 8
    nb_parent_N27 += _CHILD_SLOT_8x27.to(dev)[slot_N]
    return children[nb_parent_N27]


def child_to_parent(child_keys: torch.Tensor, parent_keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row of each child's parent in ``parent_keys`` and the child's slot (0..7).

    Raises:
        ValueError: a child whose parent is not in ``parent_keys``.
    """
    pk = child_keys >> 3
    idx = torch.searchsorted(parent_keys, pk).clamp_(max=max(parent_keys.numel() - 1, 0))
    if parent_keys.numel() == 0 or not torch.equal(parent_keys[idx], pk):
        raise ValueError("some child nodes have no parent among the given parent keys")
    return idx, child_keys & 7
