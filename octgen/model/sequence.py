"""Flatten ``OctreeTokens`` into the node sequence the transformer reads, and pad
batches of them.

A :class:`NodeSequence` holds one row per octree node, levels 0..D in order and
z-order inside a level: its depth, its structure token (levels < D, 0 at the leaf),
its payload row (level D, zeros above) and its cell centre in [-1, 1]^3.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..tokenize.tokens import OctreeTokens
from .transformer import PAD_LEVEL, NodeInputs


@dataclass
class NodeSequence:
    """One octree as a flat node sequence.

    Attributes:
        level_T: (T,) int64 depth of each node.
        token_T: (T,) int64 structure tokens (0 at the leaf level).
        payload_TP: (T, P) int64 payload rows (0 above the leaf level).
        centre_T3: (T, 3) float32 cell centres.
        level_sizes: tokens per level 0..D.
    """

    level_T: torch.Tensor
    token_T: torch.Tensor
    payload_TP: torch.Tensor
    centre_T3: torch.Tensor
    level_sizes: list[int]

    @property
    def depth(self) -> int:
        return len(self.level_sizes) - 1

    def level_slice(self, d: int) -> slice:
        start = sum(self.level_sizes[:d])
        return slice(start, start + self.level_sizes[d])


def tokens_to_nodes(tokens: OctreeTokens) -> NodeSequence:
    """Flatten ``tokens`` (depth D, payload of P columns) into D + 1 levels of nodes."""
    octree = tokens.octree()
    D, P = tokens.depth, tokens.payload.shape[1]
    sizes = octree.nodes_per_depth()
    levels, toks, pays, centres = [], [], [], []
    for d in range(D + 1):
        n = sizes[d]
        levels.append(torch.full((n,), d, dtype=torch.long))
        toks.append(tokens.structure[d].long() if d < D else torch.zeros(n, dtype=torch.long))
        pays.append(tokens.payload.long() if d == D else torch.zeros(n, P, dtype=torch.long))
        centres.append(octree.cell_centres(d))
    return NodeSequence(torch.cat(levels), torch.cat(toks), torch.cat(pays), torch.cat(centres), sizes)


def nodes_to_tokens(seq: NodeSequence, payload_kind: str, meta: dict | None = None) -> OctreeTokens:
    """Inverse of :func:`tokens_to_nodes`."""
    D = seq.depth
    structure = [seq.token_T[seq.level_slice(d)].to(torch.uint8) for d in range(D)]
    return OctreeTokens(structure, seq.payload_TP[seq.level_slice(D)].long(), payload_kind, dict(meta or {}))


def pad_nodes(rows: list[tuple[np.ndarray, ...]] | list[NodeSequence], n_payload: int) -> NodeInputs:
    """Pad node rows into one batch (nothing masked yet).

    Args:
        rows: per sequence either a :class:`NodeSequence` or a tuple
            ``(level_T, token_T, payload_TP, centre_T3)``.
        n_payload: P, the payload width.
    """
    rows = [(r.level_T, r.token_T, r.payload_TP, r.centre_T3) if isinstance(r, NodeSequence) else r
            for r in rows]
    B, T = len(rows), max(len(r[0]) for r in rows)
    level = torch.full((B, T), PAD_LEVEL, dtype=torch.long)
    token = torch.zeros(B, T, dtype=torch.long)
    payload = torch.zeros(B, T, n_payload, dtype=torch.long)
    centre = torch.zeros(B, T, 3)
    for b, (lv, tk, pl, ce) in enumerate(rows):
        n = len(lv)
        level[b, :n] = torch.as_tensor(lv)
        token[b, :n] = torch.as_tensor(tk)
        payload[b, :n] = torch.as_tensor(pl).reshape(n, n_payload)
        centre[b, :n] = torch.as_tensor(ce)
    return NodeInputs(level, token, payload, torch.zeros(B, T, dtype=torch.bool), centre)
