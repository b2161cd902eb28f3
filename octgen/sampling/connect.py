"""Connected structure: the fewest extra child cells that join a level's cells into
one face-connected part (``SamplerConfig.connect``).

A shape's structure levels are sampled token-parallel: the child masks of two
neighbouring nodes are drawn in the same step, neither seeing the other, so a thin
part (a stool leg, a lamp's stem) can come out one cell short of the part it should
touch. The finer levels and the leaf codes then refine a gap the decoder cannot
close, and the mesh falls apart. After the child masks of a structure level are
drawn, :func:`connect_children` adds child bits (never removes one) so that the
children form one 6-connected set of cells, each added cell lying inside an
occupied parent: for each stray part in turn (nearest first) the cheapest path of
empty cells between it and the main part (a 0-1 breadth-first search: occupied
cells cost nothing), as long as it needs at most ``max_bridge`` new cells. The
model then samples the finer levels and the codes of the added cells like any
others. Parts further away than that are left as they are (the decoder drops specks).

Connected cells can still decode to parts apart (two neighbouring leaves' codes,
drawn in the same step, each ending its surface short of the other). So at the
leaf level the sampler asks the tokenizer (``connect_leaves``) how whole the
decoded output is and which leaves sit where its parts come closest, draws those
leaves' payloads again given all the others, and keeps the wholest of up to
``CONNECT_ROUNDS`` redraws per row.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import torch

from ..octree import key_to_xyz

CONNECT_ROUNDS = 3
_FACE_STEPS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])


def connect_children(keys_BL: torch.Tensor, masks_BL: torch.Tensor, valid_BL: torch.Tensor,
                     max_bridge: int) -> tuple[torch.Tensor, list[int]]:
    """Child masks whose children are one face-connected part where ``max_bridge``
    new cells per stray part can make them so.

    Args:
        keys_BL: (B, L) Morton keys of a level's nodes (padding arbitrary).
        masks_BL: (B, L) their child masks 1..255 (padding arbitrary).
        valid_BL: (B, L) bool.
        max_bridge: most new cells added to join one stray part (>= 1).
    Returns:
        (masks_BL, added_B): the masks with the added bits, and how many cells each
        row gained.
    """
    if max_bridge < 1:
        raise ValueError(f"max_bridge must be >= 1, got {max_bridge}")
    out = masks_BL.clone()
    added = []
    for b in range(keys_BL.shape[0]):
        idx = torch.nonzero(valid_BL[b]).flatten()
        new = _connect_row(keys_BL[b, idx].cpu(), masks_BL[b, idx].cpu(), max_bridge)
        added.append(int(sum(bin(int(m)).count("1") for m in (new ^ masks_BL[b, idx].cpu()))))
        out[b, idx] = new.to(out.device, out.dtype)
    return out, added


def _connect_row(keys_L: torch.Tensor, masks_L: torch.Tensor, max_bridge: int) -> torch.Tensor:
    """One row of :func:`connect_children`: (L,) keys and masks -> (L,) masks."""
    from scipy import ndimage

    L = len(keys_L)
    if L == 0:
        return masks_L
    slots = torch.arange(8)
    child_xyz = key_to_xyz(((keys_L.long()[:, None] << 3) | slots).reshape(-1)).numpy()  # (L*8, 3)
    lo = child_xyz.min(0)
    local = child_xyz - lo + 1  # a one-cell empty border: no bounds checks below
    shape = tuple(local.max(0) + 2)
    owner = np.full(shape, -1, dtype=np.int64)  # node * 8 + slot of each allowed cell
    owner[tuple(local.T)] = np.arange(L * 8)
    occ = np.zeros(shape, dtype=bool)
    bits = ((masks_L.long()[:, None] >> slots) & 1).bool().reshape(-1).numpy()
    occ[tuple(local[bits].T)] = True
    face = ndimage.generate_binary_structure(3, 1)
    labels, n = ndimage.label(occ, face)
    if n <= 1:
        return masks_L
    main = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    in_main = labels == main
    while True:
        path = _cheapest_bridge(in_main, occ, owner >= 0)
        if path is None or len(path) > max_bridge:
            break
        for c in path:
            occ[c] = True
        labels, n = ndimage.label(occ, face)
        in_main = labels == labels[np.unravel_index(np.argmax(in_main), shape)]
        if n <= 1:
            break
    flat = owner[occ]
    new_bits = np.zeros(L * 8, dtype=bool)
    new_bits[flat] = True
    weights = torch.tensor([1 << s for s in range(8)], dtype=torch.long)
    return (torch.from_numpy(new_bits).view(L, 8).long() * weights).sum(1).to(masks_L.dtype)


def _cheapest_bridge(in_main: np.ndarray, occ: np.ndarray, allowed: np.ndarray) -> list[tuple] | None:
    """Empty allowed cells of the cheapest face-connected path from the main part to
    the nearest other occupied cell (0-1 BFS), or None when no other part is reachable."""
    dist = np.full(occ.shape, np.iinfo(np.int64).max, dtype=np.int64)
    prev: dict[tuple, tuple] = {}
    queue = deque()
    for c in map(tuple, np.argwhere(in_main)):
        dist[c] = 0
        queue.append(c)
    while queue:
        c = queue.popleft()
        if occ[c] and not in_main[c]:  # reached another part: walk back to the main one
            path = []
            while not in_main[c]:
                if not occ[c]:
                    path.append(c)
                c = prev[c]
            return path
        for step in _FACE_STEPS:
            nb = (c[0] + step[0], c[1] + step[1], c[2] + step[2])
            if not allowed[nb]:
                continue
            cost = dist[c] + (0 if occ[nb] else 1)
            if cost < dist[nb]:
                dist[nb] = cost
                prev[nb] = c
                if occ[nb]:
                    queue.appendleft(nb)
                else:
                    queue.append(nb)
    return None
