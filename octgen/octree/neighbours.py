"""3x3x3 neighbour look-up among the nodes of one depth."""
from __future__ import annotations

import itertools

import torch

from .morton import key_to_xyz

# Offsets in the order of a flattened (kx, ky, kz) conv3d kernel: k = 9*(dx+1) + 3*(dy+1) + (dz+1).
NEIGHBOUR_OFFSETS = torch.tensor(list(itertools.product((-1, 0, 1), repeat=3)), dtype=torch.int64)

# Up to this grid resolution a dense index grid (int32) is cheaper than binary search.
_DENSE_GRID_MAX_RES = 256


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
    res = 1 << depth
    n = keys.numel()
    xyz_N3 = key_to_xyz(keys)
    offsets_K3 = NEIGHBOUR_OFFSETS.to(keys.device)
    if res <= _DENSE_GRID_MAX_RES:
        # Index grid padded by one cell on every side so no bounds checks are needed.
        rp = res + 2
        grid = torch.full((rp * rp * rp,), -1, dtype=torch.int32, device=keys.device)
        lin_N = ((xyz_N3[:, 0] + 1) * rp + (xyz_N3[:, 1] + 1)) * rp + (xyz_N3[:, 2] + 1)
        grid[lin_N] = torch.arange(n, dtype=torch.int32, device=keys.device)
        lin_off_K = (offsets_K3[:, 0] * rp + offsets_K3[:, 1]) * rp + offsets_K3[:, 2]
        return grid[lin_N[:, None] + lin_off_K[None, :]].long()
    return _two_level_neighbours(keys, xyz_N3, depth)


def _two_level_neighbours(keys: torch.Tensor, xyz_N3: torch.Tensor, depth: int) -> torch.Tensor:
    """Neighbour table for grids finer than 256^3, without hashing or binary search.

    Cells are grouped into blocks: the depth-8 ancestor of a cell is its block and
    the cell's low ``s = depth - 8`` bits per axis its place in the block. A dense
    (padded) grid of depth-8 blocks gives a neighbour's block row, and a per-block
    table of ``8^s`` slots gives the neighbour's row. Both look-ups are gathers.
    """
    n = keys.numel()
    dev = keys.device
    s = depth - 8
    side = 1 << s
    block_keys, block_of_N = torch.unique_consecutive(keys >> (3 * s), return_inverse=True)
    n_blocks = block_keys.numel()
    bres = 1 << 8
    rp = bres + 2
    bxyz = xyz_N3 >> s
    block_grid = torch.full((rp * rp * rp,), -1, dtype=torch.int64, device=dev)
    block_lin = ((bxyz[:, 0] + 1) * rp + (bxyz[:, 1] + 1)) * rp + (bxyz[:, 2] + 1)
    block_grid[block_lin] = block_of_N
    local = xyz_N3 & (side - 1)
    local_table = torch.full((n_blocks * side ** 3 + 1,), -1, dtype=torch.int32, device=dev)
    local_lin = (local[:, 0] * side + local[:, 1]) * side + local[:, 2]
    local_table[block_of_N * side ** 3 + local_lin] = torch.arange(n, dtype=torch.int32, device=dev)
    out = torch.empty(n, 27, dtype=torch.int64, device=dev)
    for k, off in enumerate(NEIGHBOUR_OFFSETS.tolist()):
        nb = xyz_N3 + torch.tensor(off, device=dev)
        # Cells just outside the grid map to padding blocks, which are empty (-1).
        nbb = nb >> s  # arithmetic shift: -1 stays -1
        blk = block_grid[((nbb[:, 0] + 1) * rp + (nbb[:, 1] + 1)) * rp + (nbb[:, 2] + 1)]
        nl = nb & (side - 1)
        slot = blk * side ** 3 + (nl[:, 0] * side + nl[:, 1]) * side + nl[:, 2]
        slot = torch.where(blk < 0, torch.full_like(slot, n_blocks * side ** 3), slot)  # last entry is -1
        out[:, k] = local_table[slot].long()
    return out


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
