"""A learned pair potential over the distances between leaves (atoms), added to
the logits of their sub-cell offsets.

Why: an atom's offset inside its 0.24 A cell is fixed by its bond lengths to the
atoms around it, and a transformer reads distances below the cell size badly from
rotary phases. After 1.6 CPU-hours of training the offset heads of qm9-xs were
still at 3.07 nats per axis against 3.18 for a uniform guess. Here distances are
computed exactly and scored by a piecewise-linear function per type pair, so learning
"C-H sits at 1.09 A" is a few thousand weights, not a circuit inside attention.

How, for one target leaf and offset field ``a`` (axis x, y or z, in that order):
every candidate bin ``v`` gives a position ``p_v`` (the leaf's cell centre, the
offsets already drawn for the earlier axes, ``v`` on axis ``a``, the later axes at
the cell centre); its extra logit is

    sum_j U[a, t * T + t_j](|p_v - p_j|)

over the leaves ``j`` of the same level that are revealed (unmasked), with types
``t`` (the target's field 0, drawn first) and ``t_j``. ``U`` interpolates linearly
between its values at evenly spaced knots and is 0 outside them; distances are in
finest cells. (A linear interpolation is a lookup of two knots per distance: a
Gaussian radial basis with as many centres cost 2.7x the training step of the
whole xs model.) The knot values start at zero, so a model gains the term without
changing its outputs (a trained model can be fine-tuned with it).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# The weights' effective learning rate is GAIN x the optimiser's: potentials need
# logit swings of several nats, reached in hundreds of steps instead of thousands.
GAIN = 10.0


@dataclass
class LeafNeighbours:
    """The revealed leaves each target leaf is scored against.

    Attributes:
        centre_K3: (K, 3) target cell centres, in finest cells.
        pos_KL3: (K, L, 3) exact positions of the revealed leaves of the target's row.
        type_KL: (K, L) int64 their type (payload field 0).
        valid_KL: (K, L) bool, False on padding.
    """

    centre_K3: torch.Tensor
    pos_KL3: torch.Tensor
    type_KL: torch.Tensor
    valid_KL: torch.Tensor


def _cells(centre_N3: torch.Tensor, depth: int) -> torch.Tensor:
    """Cell centres in [-1, 1] as positions in finest cells (0 .. 2^depth)."""
    return (centre_N3.float() + 1.0) * (0.5 * (1 << depth))


def _revealed_first(revealed_BT: torch.Tensor) -> torch.Tensor:
    """(B, L) positions of each row's revealed nodes first (stable), L the largest count."""
    L = max(1, int(revealed_BT.sum(1).max()))
    return (~revealed_BT).to(torch.int8).argsort(dim=1, stable=True)[:, :L]


class _KnotTable(nn.Module):
    """Piecewise-linear functions of a distance on evenly spaced knots (0 outside
    them), stored as rows of one flat table; the subclasses own ``weight``."""

    def __init__(self, grid: tuple[float, float, int]):
        super().__init__()
        self.first, self.count = float(grid[0]), int(grid[2])
        self.spacing = (float(grid[1]) - self.first) / (self.count - 1)

    def _lookup(self, dist: torch.Tensor, base: torch.Tensor, valid: torch.Tensor, dt) -> torch.Tensor:
        """Sum over the last axis of the functions at ``dist``; ``base`` is the flat
        table offset of each distance's row (broadcast), ``valid`` masks distances."""
        t = (dist - self.first) / self.spacing  # position in knots
        inside = (t >= 0) & (t <= self.count - 1) & valid
        i0 = t.floor().long().clamp(0, self.count - 2)  # the knot pair (i0, i0 + 1) around t
        frac = (t - i0).clamp(0, 1)
        at = base + i0
        w = self.weight.to(dt).reshape(-1)
        u = w[at] * (1 - frac) + w[at + 1] * frac
        return torch.where(inside, u, torch.zeros_like(u)).sum(-1)


def offset_fractions(payload_BTP: torch.Tensor, offset_fields: tuple[int, ...],
                     vocab: tuple[int, ...]) -> torch.Tensor:
    """(B, T, 3) sub-cell offsets in cells (-0.5 .. 0.5): the bin centres of the
    offset fields (equal bins across a finest cell)."""
    bins = torch.tensor([vocab[f] for f in offset_fields], device=payload_BTP.device, dtype=torch.float32)
    return (payload_BTP[..., list(offset_fields)].float() + 0.5) / bins - 0.5


def exact_leaf_positions(centre_BT3: torch.Tensor, payload_BTP: torch.Tensor, depth: int,
                         offset_fields: tuple[int, ...], vocab: tuple[int, ...]) -> torch.Tensor:
    """(B, T, 3) positions in finest cells: cell centre (in [-1, 1]) moved by the
    bin centres of the offset fields."""
    return _cells(centre_BT3, depth) + offset_fractions(payload_BTP, offset_fields, vocab)


def leaf_neighbours(level_BT: torch.Tensor, masked_BT: torch.Tensor, centre_BT3: torch.Tensor,
                    payload_BTP: torch.Tensor, target_BT: torch.Tensor, depth: int,
                    offset_fields: tuple[int, ...], vocab: tuple[int, ...]) -> LeafNeighbours:
    """The revealed leaves of each target's row (targets in row-major order, the
    order of ``h_BTC[target_BT]``).

    A revealed leaf is a node of level ``depth`` that is not masked; in a training
    batch these are the unmasked tokens of the leaf probe (clean rows hold no leaves),
    in the sampler the leaves drawn so far in the level.
    """
    revealed = (level_BT == depth) & ~masked_BT
    pos = exact_leaf_positions(centre_BT3, payload_BTP, depth, offset_fields, vocab)
    order = _revealed_first(revealed)
    pos_BL3 = pos.gather(1, order[..., None].expand(-1, -1, 3))
    type_BL = payload_BTP[..., 0].gather(1, order)
    valid_BL = revealed.gather(1, order)
    b = target_BT.nonzero()[:, 0]
    return LeafNeighbours(_cells(centre_BT3[target_BT], depth), pos_BL3[b], type_BL[b], valid_BL[b])


class PairPotential(_KnotTable):
    """Per-axis, per-type-pair piecewise-linear potentials; see the module docstring.

    Args:
        n_types: vocabulary of payload field 0.
        offset_fields: the x, y, z offset fields.
        vocab: every payload field's vocabulary size.
        grid: (first knot, last knot, count) in finest cells.
    """

    def __init__(self, n_types: int, offset_fields: tuple[int, ...], vocab: tuple[int, ...],
                 grid: tuple[float, float, int]):
        super().__init__(grid)
        self.n_types = n_types
        self.offset_fields = tuple(offset_fields)
        self.vocab = tuple(vocab)
        self.weight = nn.Parameter(torch.zeros(3, n_types * n_types, self.count))

    def logits(self, field: int, prev_KF: torch.Tensor, nb: LeafNeighbours) -> torch.Tensor:
        """(K, V) extra logits of offset field ``field``, given the values of the
        fields before it (``prev_KF[:, :field]``: field 0 and the earlier axes)."""
        a = self.offset_fields.index(field)
        dt = torch.float64 if self.weight.dtype == torch.float64 else torch.float32  # fp32 under bf16
        with torch.autocast(device_type=nb.centre_K3.device.type, enabled=False):
            K = nb.centre_K3.shape[0]
            V = self.vocab[field]
            off = torch.zeros(K, 3, device=nb.centre_K3.device, dtype=dt)
            for j in range(a):
                fj = self.offset_fields[j]
                off[:, j] = (prev_KF[:, fj].to(dt) + 0.5) / self.vocab[fj] - 0.5
            cand_V = (torch.arange(V, device=off.device, dtype=dt) + 0.5) / V - 0.5
            pos_KV3 = (nb.centre_K3.to(dt) + off)[:, None, :].repeat(1, V, 1)
            pos_KV3[..., a] = pos_KV3[..., a] + cand_V
            dist_KVL = torch.cdist(pos_KV3, nb.pos_KL3.to(dt), compute_mode="donot_use_mm_for_euclid_dist")
            pair_KL = prev_KF[:, :1].clamp(0, self.n_types - 1) * self.n_types + nb.type_KL.clamp(0, self.n_types - 1)
            # row of (axis a, type pair) in the flat table
            base = (a * self.n_types * self.n_types + pair_KL) * self.count
            return GAIN * self._lookup(dist_KVL, base[:, None, :], nb.valid_KL[:, None, :], dt)


# Child slot k of an octree node sits at (x, y, z) = (k >> 2 & 1, k >> 1 & 1, k & 1)
# inside it (Morton order: the low bits of a key are its finest level, z lowest).
_SLOT_XYZ = torch.tensor([[(k >> 2) & 1, (k >> 1) & 1, k & 1] for k in range(8)], dtype=torch.float32)
# _MASK_BITS[k, c]: child mask c + 1 (structure class c) holds slot k.
_MASK_BITS = torch.tensor([[((c + 1) >> k) & 1 for c in range(255)] for k in range(8)], dtype=torch.float32)


@dataclass
class StructureNeighbours:
    """The children already placed around each target structure node of the finest
    structure levels.

    Attributes:
        level_K: (K,) int64 target levels.
        children_K83: (K, 8, 3) centres of the target's 8 candidate children, in finest cells.
        pos_KM3: (K, M, 3) centres of the children of the revealed nodes of the
            target's level and row (their child masks drawn).
        valid_KM: (K, M) bool, False on padding, absent children and other levels.
        active_K: (K,) bool, False for targets of coarser levels (no potential).
    """

    level_K: torch.Tensor
    children_K83: torch.Tensor
    pos_KM3: torch.Tensor
    valid_KM: torch.Tensor
    active_K: torch.Tensor


def _children_centres(centre_N3: torch.Tensor, level_N: torch.Tensor, depth: int) -> torch.Tensor:
    """(N, 8, 3) centres in finest cells of the 8 child slots of nodes at ``level_N``."""
    cells = _cells(centre_N3, depth)
    half = (2.0 ** (depth - level_N.float() - 1))[:, None, None]  # child edge in finest cells
    return cells[:, None, :] + (_SLOT_XYZ.to(cells.device) - 0.5) * half


def structure_neighbours(level_BT: torch.Tensor, masked_BT: torch.Tensor, centre_BT3: torch.Tensor,
                         token_BT: torch.Tensor, probe_BT: torch.Tensor | None, target_BT: torch.Tensor,
                         depth: int, first_level: int) -> StructureNeighbours:
    """Targets (row-major order) and the children of the revealed nodes of their
    level: in a training batch the unmasked nodes of the same probe level (the clean
    copies are invisible to a probe, and skipped), in the sampler the nodes of the
    level drawn so far. Only levels ``first_level..depth-1`` take part."""
    lv = level_BT
    revealed = (lv >= first_level) & (lv < depth) & ~masked_BT
    if probe_BT is not None:
        revealed = revealed & probe_BT
    order = _revealed_first(revealed)
    n = order.shape[1]
    g_lv = lv.gather(1, order)
    g_ok = revealed.gather(1, order)
    g_tok = token_BT.gather(1, order).clamp(0, 255)
    g_centre = centre_BT3.gather(1, order[..., None].expand(-1, -1, 3))
    B = lv.shape[0]
    kids = _children_centres(g_centre.reshape(-1, 3), g_lv.reshape(-1).clamp(min=0), depth).view(B, n * 8, 3)
    has = ((g_tok[..., None] >> torch.arange(8, device=lv.device)) & 1).bool() & g_ok[..., None]
    kid_level = g_lv[..., None].expand(-1, -1, 8).reshape(B, n * 8)
    b = target_BT.nonzero()[:, 0]
    t_level = lv[target_BT]
    active = (t_level >= first_level) & (t_level < depth)
    children = _children_centres(centre_BT3[target_BT], t_level.clamp(min=0), depth)
    valid = has.reshape(B, n * 8)[b] & (kid_level[b] == t_level[:, None]) & active[:, None]
    return StructureNeighbours(t_level, children, kids[b], valid, active)


class StructurePotential(_KnotTable):
    """Per-level piecewise-linear potentials over the distances between a node's
    candidate children and the children already placed in its level.

    A structure node of level d (one of the ``levels`` finest structure levels)
    chooses a child mask; slot k gets the energy ``e_k = sum_j U_d(|c_k - c_j|)``
    over the children ``c_j`` of the level's revealed nodes (centres in finest
    cells), and mask ``m`` the extra logit ``sum_{k in m} e_k``. So where an atom
    may sit relative to the atoms already placed is read from distances, at every
    level where a cell is about a bond long or smaller. Knots start at zero.

    Args:
        depth: octree depth D (leaves); structure levels are 0..D-1.
        levels: how many of the finest structure levels (D-levels..D-1) get it.
        grid: (first knot, last knot, count) in finest cells.
    """

    def __init__(self, depth: int, levels: int, grid: tuple[float, float, int]):
        super().__init__(grid)
        self.depth, self.first_level = depth, depth - levels
        self.weight = nn.Parameter(torch.zeros(levels, self.count))

    def logits(self, nb: StructureNeighbours) -> torch.Tensor:
        """(K, 255) extra logits of the targets' child masks (0 for inactive targets)."""
        dt = torch.float64 if self.weight.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=nb.pos_KM3.device.type, enabled=False):
            dist_K8M = torch.cdist(nb.children_K83.to(dt), nb.pos_KM3.to(dt),
                                   compute_mode="donot_use_mm_for_euclid_dist")
            row = (nb.level_K - self.first_level).clamp(0, self.weight.shape[0] - 1) * self.count
            e_K8 = self._lookup(dist_K8M, row[:, None, None], nb.valid_KM[:, None, :], dt) * nb.active_K[:, None]
            return GAIN * e_K8 @ _MASK_BITS.to(device=e_K8.device, dtype=dt)
