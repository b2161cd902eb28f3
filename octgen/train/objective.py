"""The training objectives: masked-token prediction of octree levels, exactly as the
sampler sees them.

``"all_levels"`` (:func:`make_all_levels_batch`): every level is a target in every
pass. A row holds the clean structure levels 0..D-1 (what finer levels attend to),
then one *probe* copy of each level 0..D with a cosine-distributed fraction of its
tokens masked. The attention mask (see :mod:`octgen.model.transformer`) lets a probe
of level d see the prefix, the clean levels < d and the probes of level d, and hides
every probe from the clean tokens, so each probe is in the sampler's situation for
its level: coarser levels finished and unmasked, its own level partly revealed. The
loss covers the masked tokens of every probe. (Uni-3DAR gets the same supervision
density by presenting every token twice, as a [MASK] that predicts it and then as
itself.) Row length is about twice the octree's token count, and every token is a
target in each pass instead of a fraction of one level. By default every
masked token weighs the same; ``level_sampling="sqrt"`` gives each level a share of
the loss proportional to the square root of its target count instead
(:func:`level_loss_weights`; shapes: the 1 + 8 layout tokens of levels 0-1 against
~600 leaf codes).

``"one_level"`` (:func:`make_training_batch`), the first objective: one target level
per sequence. Why one level: the sampler predicts level d with every coarser level finished and
unmasked. With the level-block attention mask, a level d node sees all levels
<= d, so if a coarser level of the same sequence were also masked, level d would
be trained on inputs it never gets at sampling time. Each training sequence
therefore picks one target level t, keeps levels 0..t-1 clean, masks a cosine-
distributed fraction of level t (MaskGIT: ratio ``cos(pi/2 u)``, ``u ~ U[0, 1)``,
at least one token) and drops the finer levels (they are invisible to level t).
The loss is the cross-entropy on the masked tokens of level t only. This is
exactly the situation of every sampler step.

Target levels are drawn with probability proportional to their number of tokens
(every token is a prediction target equally often: right for molecules), or to
its square root (``level_sampling="sqrt"``: shape octrees have ~600 leaves under
one root, and the root's child mask, which fixes the global layout, would
otherwise be a target once per 600 tokens).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..condition.shape import shape_condition
from ..model.sequence import NodeSequence, pad_nodes
from ..model.transformer import Condition, NodeInputs, OctGenTransformer
from ..sampling.scheduler import children_per_class


LEVEL_SAMPLING = ("tokens", "sqrt", "uniform")
OBJECTIVES = ("one_level", "all_levels")


def cosine_mask_count(n: int, generator: torch.Generator | None) -> int:
    """How many of ``n`` tokens to mask: ``ceil(n cos(pi/2 u))``, ``u ~ U[0, 1)``, at least 1."""
    ratio = math.cos(math.pi / 2 * float(torch.rand((), generator=generator)))
    return min(n, max(1, math.ceil(ratio * n)))


# _MASK_SLOTS[m, j]: the slot (bit) of the j-th set bit of child mask m (-1 past its popcount).
_MASK_SLOTS = torch.full((256, 8), -1, dtype=torch.long)
for _m in range(256):
    _bits = [b for b in range(8) if _m >> b & 1]
    _MASK_SLOTS[_m, :len(_bits)] = torch.tensor(_bits, dtype=torch.long)


def _families(masks_N: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Children per node of one level's child masks (1..255) and the parent index
    of each child of the next level (children are contiguous, in parent order)."""
    counts = children_per_class()[masks_N - 1]
    return counts, torch.repeat_interleave(torch.arange(len(counts)), counts)


def delete_nodes(seq: NodeSequence, level: int, delete_N: torch.Tensor) -> NodeSequence:
    """``seq`` without the level-``level`` nodes flagged in ``delete_N`` and their subtrees.

    The parents' child masks lose the deleted slots, so the result is a valid
    octree (every mask non-zero) as long as no parent loses all its children.
    Children of a node are contiguous and in slot order (z-order), which is how the
    subtrees and the slots are found without the octree's keys.

    Raises:
        ValueError: ``level`` is not in 1..D, or a parent would lose every child.
    """
    D = seq.depth
    if not 1 <= level <= D:
        raise ValueError(f"nodes can be deleted at levels 1..{D}, got {level}")
    tokens = [seq.token_T[seq.level_slice(d)] for d in range(D)]
    keep = [torch.ones(n, dtype=torch.bool) for n in seq.level_sizes]
    keep[level] = ~delete_N
    # The parents' masks: clear the slot of every deleted child.
    counts, parent = _families(tokens[level - 1])
    rank = torch.arange(len(parent)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    slot = _MASK_SLOTS[tokens[level - 1][parent], rank]
    cleared = torch.zeros(len(counts), dtype=torch.long).index_add_(0, parent[delete_N], 1 << slot[delete_N])
    new_parent_tokens = tokens[level - 1] & ~cleared
    if bool((new_parent_tokens == 0).any()):
        raise ValueError("a parent would lose all its children")
    # Subtrees: a node survives when its parent does.
    for d in range(level, D):
        keep[d + 1] = torch.repeat_interleave(keep[d], _families(tokens[d])[0])
    token_T = seq.token_T.clone()
    token_T[seq.level_slice(level - 1)] = new_parent_tokens
    keep_T = torch.cat(keep)
    return NodeSequence(seq.level_T[keep_T], token_T[keep_T], seq.payload_TP[keep_T], seq.centre_T3[keep_T],
                        [int(k.sum()) for k in keep])


def random_node_deletion(seq: NodeSequence, max_fraction: float, generator: torch.Generator | None = None,
                         min_level: int = 1) -> tuple[NodeSequence, int] | None:
    """Uni-3DAR's robustness augmentation for one tree: pick a structure level
    ``L`` in ``min_level..D-1`` (one with a node whose parent has another child),
    a rate ``r ~ U[0, max_fraction)``, and delete each such level-``L`` node with
    probability ``r`` (at least one node, never a parent's last child), subtrees
    included. Returns ``(corrupted sequence, L)``, or None when no level can lose a node.
    """
    D = seq.depth
    removable = {}  # level -> (removable children, children per parent, parent of each child)
    for L in range(max(1, min_level), D):
        counts, parent = _families(seq.token_T[seq.level_slice(L - 1)])
        ok = (counts >= 2)[parent]
        if bool(ok.any()):
            removable[L] = ok, counts, parent
    if not removable:
        return None
    levels = list(removable)
    L = levels[int(torch.randint(len(levels), (1,), generator=generator))]
    ok, counts, parent = removable[L]
    rate = float(torch.rand((), generator=generator)) * max_fraction
    want = (torch.rand(len(ok), generator=generator) < rate) & ok
    if not bool(want.any()):  # at least one deletion
        cand = ok.nonzero().flatten()
        want[cand[int(torch.randint(len(cand), (1,), generator=generator))]] = True
    # Never a parent's last child: walk the chosen nodes, keep the first survivor of each family.
    left = counts.clone()
    delete = torch.zeros(len(ok), dtype=torch.bool)
    for i in want.nonzero().flatten().tolist():
        if left[parent[i]] > 1:
            delete[i] = True
            left[parent[i]] -= 1
    return delete_nodes(seq, L, delete), L


def make_all_levels_batch(seqs: list[NodeSequence], n_payload: int,
                          generator: torch.Generator | None = None, node_deletion: float = 0.0,
                          node_deletion_rows: float = 0.5, node_deletion_size: str = "true",
                          level_sampling: str = "tokens",
                          level_loss_scale: dict[int, float] | None = None) -> NodeInputs:
    """Clean levels 0..D-1 plus a partly masked probe copy of every level 0..D per row.

    With ``node_deletion > 0``, a share ``node_deletion_rows`` of the rows get
    coarse nodes deleted (:func:`random_node_deletion` at level ``L``, up to that
    fraction of the level), the situation of a sampler whose own coarser levels
    missed a cell: the clean levels and the probes of levels ``L..D`` come from the
    corrupted tree (the finer levels learn to complete the cells they are given),
    while the probes of levels ``0..L-1`` still target the true tree (the coarse
    levels never learn to drop children), and the size condition stays the true
    atom count (``node_deletion_size="true"``; measured on QM9, the finer levels
    then learn to hold fewer atoms than the size says and molecules shrink). With
    ``"kept"`` the row is conditioned on the corrupted tree's leaf count instead
    (``leaves_B`` of the batch) and its probes of levels ``0..L-1`` get no targets,
    so no level learns a count that disagrees with its size condition. Neither
    helped on QM9 (``checkpoints/qm9-xs/README.md``); both are off by default.

    Args:
        seqs: node sequences of the batch (all of one depth D).
        n_payload: payload width P.
        generator: drives each probe's mask ratio and masked positions (and the deletions).
        node_deletion: the largest fraction of a level's nodes deleted in a row.
        node_deletion_rows: share of the rows that get deletions.
        node_deletion_size: ``"true"`` or ``"kept"`` (see above).
        level_sampling: each level's share of the loss (:func:`level_loss_weights`).
        level_loss_scale: ``{level: factor}`` on top of it (:func:`level_loss_weights`).
    Returns:
        A padded batch with ``probe_BT`` set on the probe copies; ``masked_BT``
        (only ever on probes) marks the prediction targets; ``weight_BT`` their
        loss weights (None: the plain mean).
    """
    if node_deletion_size not in ("true", "kept"):
        raise ValueError(f"node_deletion_size must be 'true' or 'kept', got {node_deletion_size!r}")
    rows, masked_rows, probe_rows, leaves = [], [], [], []
    for s in seqs:
        D = s.depth
        ctx, cut = s, D + 1  # the tree the clean levels come from; probes of levels >= cut use it too
        if node_deletion > 0 and float(torch.rand((), generator=generator)) < node_deletion_rows:
            hit = random_node_deletion(s, node_deletion, generator)
            if hit is not None:
                ctx, cut = hit
        n_clean = ctx.level_slice(D).start  # levels 0..D-1
        probe_src = [s if d < cut else ctx for d in range(D + 1)]
        parts = [(ctx, slice(0, n_clean))] + [(q, q.level_slice(d)) for d, q in enumerate(probe_src)]
        sizes = [q.level_sizes[d] for d, q in enumerate(probe_src)]
        masked = torch.zeros(sum(p.stop - p.start for _, p in parts), dtype=torch.bool)
        at = n_clean
        for d in range(D + 1):
            n = sizes[d]
            if n:
                masked[at + torch.randperm(n, generator=generator)[:cosine_mask_count(n, generator)]] = True
            at += n
        kept = node_deletion_size == "kept" and cut <= D
        if kept:  # the coarse probes' true counts disagree with the kept size: no targets there
            masked[n_clean:n_clean + sum(sizes[:cut])] = False
        leaves.append(ctx.level_sizes[D] if kept else s.level_sizes[D])
        probe = torch.arange(len(masked)) >= n_clean
        rows.append(tuple(torch.cat([getattr(q, f)[p] for q, p in parts])
                          for f in ("level_T", "token_T", "payload_TP", "centre_T3")))
        masked_rows.append(masked)
        probe_rows.append(probe)
    batch = pad_nodes(rows, n_payload)
    batch.probe_BT = torch.zeros_like(batch.masked_BT)
    for b, (m, p) in enumerate(zip(masked_rows, probe_rows)):
        batch.masked_BT[b, :len(m)] = m
        batch.probe_BT[b, :len(p)] = p
    if node_deletion_size == "kept" and node_deletion > 0:
        batch.leaves_B = torch.tensor(leaves, dtype=torch.long)
    batch.weight_BT = level_loss_weights(batch, level_sampling, level_loss_scale)
    return batch


def leaf_counts(seqs: list[NodeSequence]) -> torch.Tensor:
    """(B,) int64 number of leaves (atoms) of each sequence: the size condition."""
    return torch.tensor([s.level_sizes[-1] for s in seqs], dtype=torch.long)


def kind_counts(seqs: list[NodeSequence], value: int) -> torch.Tensor:
    """(B,) int64 number of leaves of each sequence whose first payload field is
    ``value`` (a molecule's hydrogens): the count condition."""
    return torch.tensor([int((s.payload_TP[s.level_slice(s.depth), 0] == value).sum()) for s in seqs],
                        dtype=torch.long)


def level_weights(level_sizes: list[int], mode: str = "tokens") -> torch.Tensor:
    """Probability weights of the target levels of one sequence.

    ``"tokens"``: proportional to the level's token count (every token is a target
    equally often; the root of a shape octree is then 1 target in 600);
    ``"sqrt"``: proportional to its square root (coarse levels, which fix the global
    layout, are trained far more often); ``"uniform"``: every level alike.
    """
    sizes = torch.tensor(level_sizes, dtype=torch.float)
    if mode == "tokens":
        return sizes
    if mode == "sqrt":
        return sizes.sqrt()
    if mode == "uniform":
        return (sizes > 0).float()
    raise ValueError(f"level sampling must be one of {LEVEL_SAMPLING}, got {mode!r}")


def level_loss_weights(batch: NodeInputs, mode: str = "tokens",
                       scale: dict[int, float] | None = None) -> torch.Tensor | None:
    """Per-token loss weights that give each level of an ``"all_levels"`` batch its
    share of the training signal, the loss-side twin of :func:`level_weights`.

    With ``n_l`` masked (target) tokens of level ``l`` in the batch, level ``l``
    weighs ``level_weights(n)[l]`` in the loss, spread evenly over its tokens:
    ``"tokens"``: every token alike (returns None: the plain mean);
    ``"sqrt"``: each token ``1 / sqrt(n_l)``, so a shape's few layout-deciding
    coarse tokens are not drowned by its ~600 leaf codes; ``"uniform"``: ``1 / n_l``.
    ``scale`` (``{level: factor}``) then multiplies the weight of a level's tokens
    (``TrainConfig.level_loss_scale``). Non-targets weigh 0. :func:`masked_token_loss`
    takes the weighted mean, so only the ratios matter.
    """
    if mode == "tokens" and not scale:
        return None
    target = batch.masked_BT & batch.valid_BT
    levels = batch.level_BT.clamp(min=0)
    n_levels = max([int(levels.max()) + 1, *(level + 1 for level in (scale or {}))])
    counts = torch.bincount(levels[target], minlength=n_levels)
    if mode == "tokens":
        per_token = torch.ones(n_levels)
    else:
        share = level_weights(counts.tolist(), mode)
        per_token = share / counts.clamp(min=1)  # an empty level has share 0 (level_weights)
    for level, factor in (scale or {}).items():
        per_token[level] *= factor
    return per_token[levels] * target


def make_training_batch(seqs: list[NodeSequence], n_payload: int,
                        generator: torch.Generator | None = None, level_sampling: str = "tokens") -> NodeInputs:
    """Pick a target level per sequence, mask part of it, cut finer levels, pad.

    Args:
        seqs: node sequences of the batch.
        n_payload: payload width P.
        generator: drives the level choice, the mask ratio and the masked positions.
        level_sampling: how target levels are drawn (:func:`level_weights`).
    Returns:
        A padded batch whose ``masked_BT`` marks the prediction targets.
    """
    rows, masked_rows = [], []
    for s in seqs:
        t = int(torch.multinomial(level_weights(s.level_sizes, level_sampling), 1, generator=generator))
        sl = s.level_slice(t)
        n = sl.stop - sl.start
        n_mask = cosine_mask_count(n, generator)
        masked = torch.zeros(sl.stop, dtype=torch.bool)
        masked[sl.start + torch.randperm(n, generator=generator)[:n_mask]] = True
        rows.append((s.level_T[:sl.stop], s.token_T[:sl.stop], s.payload_TP[:sl.stop], s.centre_T3[:sl.stop]))
        masked_rows.append(masked)
    batch = pad_nodes(rows, n_payload)
    for b, m in enumerate(masked_rows):
        batch.masked_BT[b, :len(m)] = m
    return batch


def masked_token_nll(model: OctGenTransformer, h_BTC: torch.Tensor, batch: NodeInputs) -> tuple:
    """Per-token negative log-likelihoods of the masked tokens of ``batch`` from the
    transformer's hidden states ``h_BTC``.

    Returns:
        (s_idx, s_tok, p_idx, p_fields): ``s_idx`` (B, T) bool, the masked structure
        tokens, and ``s_tok`` their 255-way cross-entropies (None when there are none);
        ``p_idx`` the masked leaves and ``p_fields`` one cross-entropy tensor per payload
        field (teacher-forced for the autoregressive head; None without leaves or heads).
    """
    target = batch.masked_BT & batch.valid_BT
    leaf = batch.level_BT == model.depth
    s_idx, p_idx = target & ~leaf, target & leaf
    s_tok = p_fields = None
    if s_idx.any():
        logits = model.structure_logits(h_BTC[s_idx], model.structure_neighbours(batch, s_idx)).float()
        s_tok = F.cross_entropy(logits, batch.token_BT[s_idx] - 1, reduction="none")
    if p_idx.any() and model.payload_heads:
        pay = batch.payload_BTP[p_idx]
        nb = model.leaf_neighbours(batch, p_idx)
        p_fields = [F.cross_entropy(lg.float(), pay[:, f], reduction="none")
                    for f, lg in enumerate(model.payload_logits(h_BTC[p_idx], pay, nb))]
    return s_idx, s_tok, p_idx, p_fields


def masked_token_loss(model: OctGenTransformer, batch: NodeInputs, cond: Condition | None = None) -> tuple:
    """Mean cross-entropy over the masked tokens of ``batch`` (weighted by
    ``batch.weight_BT`` where it is set: :func:`level_loss_weights`).

    A structure token costs one 255-way cross-entropy; a payload token costs the
    sum over its fields (the negative log-likelihood of the joint: factorised, or
    by the chain rule for the autoregressive head, teacher-forced).

    Returns:
        (loss, stats) with stats = {"structure_loss", "payload_loss", "n_masked"} floats.
    """
    h_BTC = model(batch, cond)
    s_idx, s_tok, p_idx, p_fields = masked_token_nll(model, h_BTC, batch)
    losses, picked = [], []  # per-token losses and the targets they belong to, in the same order
    s_loss = p_loss = torch.zeros((), device=h_BTC.device)
    if s_tok is not None:
        losses.append(s_tok)
        picked.append(s_idx)
        s_loss = s_tok.mean()
    if p_fields is not None:
        p_tok = sum(p_fields)
        losses.append(p_tok)
        picked.append(p_idx)
        p_loss = p_tok.mean()
    if batch.weight_BT is None:
        loss = torch.cat(losses).mean()
    else:
        w = torch.cat([batch.weight_BT[i] for i in picked])
        loss = (w * torch.cat(losses)).sum() / w.sum()
    return loss, {"structure_loss": float(s_loss.detach()), "payload_loss": float(p_loss.detach()), "n_masked": int(s_idx.sum() + p_idx.sum())}


class ConditionedModel(torch.nn.Module):
    """Transformer and shape conditioner trained together (one module for
    ``accelerate.prepare``, so data parallelism sees one forward)."""

    def __init__(self, transformer: OctGenTransformer, conditioner):
        super().__init__()
        self.transformer = transformer
        self.conditioner = conditioner

    def forward(self, batch: NodeInputs, kind_B, states_BPH, mask_BP, sketches_B1SS):
        cond = shape_condition(self.conditioner, kind_B, states_BPH, mask_BP, sketches_B1SS)
        return masked_token_loss(self.transformer, batch, cond)
