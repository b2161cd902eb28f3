"""3x3x3 neighbour look-up among the nodes of one depth."""
from __future__ import annotations

import itertools

import torch

from .morton import key_to_xyz, xyz_to_key

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
    nb_NK3 = xyz_N3[:, None, :] + offsets_K3[None, :, :]
    inside_NK = ((nb_NK3 >= 0) & (nb_NK3 < res)).all(dim=2)
    nb_keys = xyz_to_key(nb_NK3.clamp(0, res - 1).reshape(-1, 3)).reshape(n, 27)
    pos = torch.searchsorted(keys, nb_keys).clamp_(max=max(n - 1, 0))
    found = inside_NK & (keys[pos] == nb_keys)
    return torch.where(found, pos, torch.full_like(pos, -1))


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
