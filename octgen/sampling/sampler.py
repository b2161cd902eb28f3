"""Level-by-level sampling of octree token sequences (ARCHITECTURE.md section 4).

For a batch of B sequences the sampler walks depths 0..D. At depth d every node
position is known (from the masks of depth d - 1; the root at depth 0), so the
whole level starts masked and :class:`LevelScheduler` reveals it in S
token-parallel steps. Levels are padded per level across the batch.

Cache: a finished level never attends to finer ones, so its keys and values are
fixed once its tokens are. With ``use_cache`` every step only runs the current
level's tokens against a :class:`KVCache` of the prefix and the finished levels;
the level's own keys / values go into a slot of the cache, and one more forward
with all its tokens known leaves the final ones there for the finer levels. Without it
every step recomputes the whole sequence; both give the same tokens.

CFG: for conditioned models with ``guidance_scale != 1`` the batch is doubled
(conditional rows, then the same rows with the condition dropped) and one forward
gives both; logits are ``u + w (c - u)``.
"""
from __future__ import annotations

import time
from dataclasses import replace

import torch

from ..model.transformer import PAD_LEVEL, Condition, NodeInputs, OctGenTransformer
from ..octree import key_to_xyz, xyz_to_centres
from ..tokenize.tokens import OctreeTokens
from .connect import CONNECT_ROUNDS, connect_children
from .scheduler import (LevelScheduler, SamplerConfig, children_per_class, resolve_precision, sample_field,
                        sample_fields, sample_masks_with_total)


def children_of_level(keys_BL: torch.Tensor, masks_BL: torch.Tensor, valid_BL: torch.Tensor):
    """Keys of the next level from the child masks of this one, per row.

    Args:
        keys_BL: (B, L) int64 Morton keys (padding arbitrary).
        masks_BL: (B, L) int64 child masks 1..255.
        valid_BL: (B, L) bool.
    Returns:
        (keys_BM, valid_BM): children in z-order, padded to the longest row.
    """
    B, L = keys_BL.shape
    slots = torch.arange(8, device=keys_BL.device)
    present = (((masks_BL[..., None] >> slots) & 1).bool() & valid_BL[..., None]).reshape(B, L * 8)
    child = ((keys_BL[..., None] << 3) | slots).reshape(B, L * 8)
    counts = present.sum(1)
    M = max(1, int(counts.max()))
    order = (~present).to(torch.int8).argsort(dim=1, stable=True)[:, :M]  # present first, z-order kept
    keys_BM = child.gather(1, order)
    valid_BM = torch.arange(M, device=keys_BL.device)[None] < counts[:, None]
    return torch.where(valid_BM, keys_BM, torch.zeros_like(keys_BM)), valid_BM


class OctreeSampler:
    """Samples :class:`OctreeTokens` from an :class:`OctGenTransformer`.

    Args:
        model: the transformer (eval mode is set here).
        config: sampling settings.
    """

    def __init__(self, model: OctGenTransformer, config: SamplerConfig | None = None):
        self.model = model.eval()
        self.config = config or SamplerConfig()

    def _guided(self, cond: Condition | None) -> bool:
        m = self.model.cfg
        return self.config.guidance_scale != 1.0 and (m.num_classes > 0 or m.cond_dim > 0) and cond is not None

    def _guide(self, logits_R: torch.Tensor, guided: bool, B: int) -> torch.Tensor:
        """Guided logits ``u + w (c - u)`` from the conditional rows [:B] and the unconditional [B:]."""
        if not guided:
            return logits_R
        return logits_R[B:] + self.config.guidance_scale * (logits_R[:B] - logits_R[B:])

    def _draw(self, h_RNC: torch.Tensor, nodes: NodeInputs, leaf: bool, guided: bool, B: int,
              generator: torch.Generator | None, size_B: torch.Tensor | None = None,
              remaining_B: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Values (K, F) and confidence scores (K,) for the K masked positions of the
        level ``nodes`` (row-major order). An autoregressive payload head is sampled
        field by field, each field given the values drawn for the fields before it
        (and, with a pair potential, the level's leaves revealed so far). With
        ``size_B`` (the ``size_level``), rows revealing their last nodes of the
        level (``remaining_B`` 0) get masks that fit their size (:meth:`_fit_size`)."""
        model, cfg = self.model, self.config
        masked_BN = nodes.masked_BT
        N = masked_BN.shape[1]
        flat = masked_BN.reshape(-1).nonzero()[:, 0]
        if not leaf:
            logits = self._structure_logits(h_RNC, nodes, guided, B)
            values, score = sample_fields([logits], cfg, generator)
            if size_B is not None:
                values = self._fit_size(values, logits, nodes, remaining_B, size_B, generator)
            return values, score
        if cfg.leaf_temperature is not None:
            cfg = replace(cfg, temperature=cfg.leaf_temperature)
        field_cfgs = self._field_configs(cfg, len(model.payload_heads))
        if model.payload_prev_embeds is None:
            logits = [self._guide(lg, guided, B).reshape(B * N, -1)[flat] for lg in model.payload_logits(h_RNC)]
            drawn = [sample_field(lg, c, generator) for lg, c in zip(logits, field_cfgs)]  # as sample_fields
            return torch.stack([v for v, _ in drawn], 1), sum(sc for _, sc in drawn)
        h_K = [h_RNC[r * B:(r + 1) * B].reshape(B * N, -1)[flat] for r in range(2 if guided else 1)]
        values = torch.zeros(len(flat), len(model.payload_heads), dtype=torch.long, device=h_RNC.device)
        score = torch.zeros(len(flat), device=h_RNC.device)
        nb = model.leaf_neighbours(nodes, masked_BN)
        for f in range(values.shape[1]):
            lg = torch.cat([model.payload_field_logits(h, f, values, nb) for h in h_K])
            v, sc = sample_field(self._guide(lg, guided, len(flat)), field_cfgs[f], generator)
            values[:, f] = v
            score = score + sc
        return values, score

    @staticmethod
    def _field_configs(cfg: SamplerConfig, num_fields: int) -> list[SamplerConfig]:
        """One config per payload field: ``cfg`` with the field's own temperature
        where ``field_temperatures`` gives one."""
        temps = cfg.field_temperatures
        if temps is None:
            return [cfg] * num_fields
        if len(temps) != num_fields:
            raise ValueError(f"field_temperatures has {len(temps)} entries but the model's payload has "
                             f"{num_fields} fields")
        return [cfg if t is None else replace(cfg, temperature=t) for t in temps]

    def _structure_logits(self, h_RNC: torch.Tensor, nodes: NodeInputs, guided: bool, B: int) -> torch.Tensor:
        """(K, 255) logits of the level's K masked structure nodes (row-major order):
        guided, plus the structure potential of a model that has one."""
        model = self.model
        masked_BN = nodes.masked_BT
        flat = masked_BN.reshape(-1).nonzero()[:, 0]
        logits = self._guide(model.structure_head(h_RNC), guided, B).reshape(B * masked_BN.shape[1], -1)[flat]
        nb = model.structure_neighbours(nodes, masked_BN)
        if nb is not None:
            logits = logits + model.structure_potential.logits(nb).to(logits.dtype)
        return logits

    def _fit_size(self, values_K1: torch.Tensor, logits_KC: torch.Tensor, nodes: NodeInputs,
                  remaining_B: torch.Tensor, size_B: torch.Tensor, generator) -> torch.Tensor:
        """``size_level``: rows that reveal their last nodes of the level in this step
        get those nodes' masks drawn from ``logits_KC`` so that the level's children add
        up to the row's size (:func:`sample_masks_with_total`); other rows keep ``values_K1``."""
        masked = nodes.masked_BT
        N = masked.shape[1]
        rows = masked.reshape(-1).nonzero()[:, 0] // N
        last = remaining_B.to(rows.device)[rows] == 0
        if not last.any():
            return values_K1
        revealed = nodes.level_BT.ge(0) & ~masked
        children = children_per_class(masked.device)[(nodes.token_BT - 1).clamp(0, 254)]  # masks are class + 1
        have_B = (children * revealed).sum(1)
        out = values_K1.clone()
        for b in rows[last].unique().tolist():
            pick = (rows == b) & last
            out[pick, 0] = sample_masks_with_total(logits_KC[pick], int(size_B[b]) - int(have_B[b]), self.config,
                                                   generator).to(out.dtype)
        return out

    @torch.no_grad()
    def sample(self, batch_size: int, generator: torch.Generator | None = None, cond: Condition | None = None,
               payload_kind: str = "none", return_stats: bool = False, callback=None,
               given: list[OctreeTokens] | None = None, given_levels: int = 0, connect_leaves=None):
        """Sample ``batch_size`` token sequences.

        Args:
            batch_size: B.
            generator: a torch.Generator on the model's device; drives every choice.
            cond: the condition of each row (class labels / embeddings), or None.
            payload_kind: written into the returned tokens (the tokenizer's; "none" by default).
            return_stats: also return {"forwards": model calls, "steps": per level,
                "level_seconds": wall-clock seconds per level, and with
                ``connect`` "connect_added": cells added per structure level and row}.
            callback: optional ``callback(level, structure_B)`` called after each
                level ``d`` = 0..D is sampled; ``structure_B[b]`` is row b's list of
                uint8 structure tokens of depths 0..min(d, D - 1) (CPU). It only reads
                finished tokens and draws nothing from ``generator``, so the samples
                are the same with and without it.
            given: with ``given_levels`` = k > 0, one :class:`OctreeTokens` per row
                whose structure levels 0..k-1 are used as they are instead of
                sampled (k <= D: coarse-to-fine completion; k = D keeps the whole
                structure and samples only the leaves' payload).
            given_levels: how many levels of ``given`` to keep (0: sample all).
            connect_leaves: with ``config.connect``, the tokenizer's
                ``connect_leaves(tokens) -> (share, leaves)``: how whole a row's decoded
                output is (its largest part's share, 1.0 whole) and which leaves to
                draw again to join its parts (:meth:`_redraw_junctions`).
        Returns:
            B :class:`OctreeTokens` (CPU tensors).
        """
        dev = next(self.model.parameters()).device
        if not 0 <= given_levels <= self.model.depth:
            raise ValueError(f"given_levels must be in 0..{self.model.depth}, got {given_levels}")
        if given_levels and (given is None or len(given) != batch_size
                             or any(t.depth != self.model.depth for t in given)):
            raise ValueError(f"given_levels needs {batch_size} given token octrees of depth {self.model.depth}")
        bf16 = resolve_precision(self.config.precision, dev) == "bf16"
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            return self._sample(batch_size, generator, cond, payload_kind, return_stats, callback,
                                given if given_levels else None, given_levels, connect_leaves)

    @staticmethod
    def _given_level(given: list[OctreeTokens], d: int, valid: torch.Tensor) -> torch.Tensor:
        """(B, L, 1) the given structure tokens of level ``d`` in the sampler's layout."""
        tokens = torch.zeros(*valid.shape, 1, dtype=torch.long, device=valid.device)
        for b, t in enumerate(given):
            row = t.structure[d].long().to(valid.device)
            if len(row) != int(valid[b].sum()):
                raise ValueError(f"given octree {b}: level {d} has {len(row)} nodes, its coarser levels imply "
                                 f"{int(valid[b].sum())}")
            tokens[b, :len(row), 0] = row
        return tokens

    def _sample(self, batch_size: int, generator: torch.Generator | None, cond: Condition | None,
                payload_kind: str, return_stats: bool, callback, given, given_levels: int, connect_leaves):
        model, cfg = self.model, self.config
        dev = next(model.parameters()).device
        D, P = model.depth, len(model.cfg.payload_vocab_sizes)
        B = batch_size
        guided = self._guided(cond)
        if guided:
            cond_rows = cond.repeat2(dev)
        else:
            cond_rows = cond
        R = 2 * B if guided else B
        size_B = cond.size_B if cond is not None and cond.size_B is not None else None
        cache = model.start_cache(R, cond_rows) if cfg.use_cache else None
        sched = LevelScheduler(cfg)
        keys = torch.zeros(B, 1, dtype=torch.long, device=dev)
        valid = torch.ones(B, 1, dtype=torch.bool, device=dev)
        finished: list[NodeInputs] = []
        level_tokens: list[tuple[torch.Tensor, torch.Tensor]] = []
        stats = {"forwards": 0, "steps": [], "level_seconds": []}
        for d in range(D + 1):
            t_level = time.perf_counter()
            leaf = d == D
            n_fields = P if leaf else 1
            level = torch.where(valid, torch.full_like(keys, d), torch.full_like(keys, PAD_LEVEL))
            centre = xyz_to_centres(key_to_xyz(keys.reshape(-1)), d).view(*keys.shape, 3)
            tokens = torch.zeros(*keys.shape, n_fields, dtype=torch.long, device=dev)
            masked = valid.clone()
            S = sched.set_level(valid, leaf, d)
            if cache is not None:
                cache.open_slot(self._rows(self._nodes(level, tokens, masked, centre, leaf, P), guided).level_BT)
            def reveal(tokens, masked, S):
                """S token-parallel steps over the masked tokens of this level."""
                i = -1
                for i in range(S):
                    nodes = self._nodes(level, tokens, masked, centre, leaf, P)
                    h = self._forward(nodes, finished, cache, cond_rows, guided)
                    stats["forwards"] += 1
                    values, score = self._draw(h, nodes, leaf, guided, B, generator,
                                               size_B if d == cfg.size_level else None, sched.remaining_SB[i])
                    if not leaf:
                        tokens = tokens - 1  # structure classes are mask - 1
                    tokens, masked = sched.step_values(i, values, score, tokens, masked, generator)
                    if not leaf:
                        tokens = torch.where(valid[..., None], tokens + 1, torch.zeros_like(tokens))
                    if not masked.any():
                        break
                return tokens, masked, i

            if d < given_levels:
                tokens, masked, i = self._given_level(given, d, valid), torch.zeros_like(masked), -1
            else:
                tokens, masked, i = reveal(tokens, masked, S)
            if leaf and cfg.connect and connect_leaves is not None:
                tokens = self._redraw_junctions(tokens, valid, level_tokens, D, payload_kind, connect_leaves,
                                                sched, reveal, stats)
            stats["steps"].append(i + 1)
            if cfg.connect and not leaf and d >= given_levels:
                masks, added = connect_children(keys, tokens[..., 0], valid, cfg.connect)
                tokens = masks[..., None]
                stats.setdefault("connect_added", []).append(added)
            done = self._nodes(level, tokens, masked, centre, leaf, P)
            if cache is not None and not leaf:
                model(self._rows(done, guided), past=cache)  # writes the finished level's keys / values
                stats["forwards"] += 1
            if cache is not None:
                cache.close_slot()
            finished.append(done)
            level_tokens.append((tokens, valid))
            if not leaf:
                keys, valid = children_of_level(keys, tokens[..., 0], valid)
            stats["level_seconds"].append(time.perf_counter() - t_level)
            if callback is not None:
                callback(d, [[t[b, v[b], 0].to(torch.uint8).cpu() for t, v in level_tokens[:D]]
                             for b in range(B)])
        out = self._to_tokens(level_tokens, D, payload_kind)
        return (out, stats) if return_stats else out

    @staticmethod
    def _redraw_junctions(tokens, valid, level_tokens, D: int, payload_kind: str, connect_leaves, sched,
                          reveal, stats) -> torch.Tensor:
        """Leaf payloads drawn again where the decoded output comes apart
        (``SamplerConfig.connect``): up to :data:`CONNECT_ROUNDS` times, the leaves
        ``connect_leaves`` names for each row not yet whole are masked and drawn
        again given all the others; each row keeps its wholest draw."""
        B = tokens.shape[0]
        best, best_share = tokens.clone(), torch.full((B,), -1.0)
        todo = torch.ones(B, dtype=torch.bool)
        stats["connect_redrawn"] = [0] * B
        for r in range(CONNECT_ROUNDS + 1):
            rows = todo.nonzero().flatten().tolist()
            if not rows:
                break
            outs = OctreeSampler._to_tokens([*level_tokens, (tokens, valid)], D, payload_kind, rows)
            redo = torch.zeros_like(valid)
            for b, t in zip(rows, outs):
                share, leaves = connect_leaves(t)
                if share > best_share[b]:
                    best_share[b] = share
                    best[b] = tokens[b]
                if share >= 1.0 or len(leaves) == 0 or r == CONNECT_ROUNDS:
                    todo[b] = False
                    continue
                redo[b, valid[b].nonzero().flatten()[leaves.to(valid.device)]] = True
                stats["connect_redrawn"][b] += len(leaves)
            if not redo.any():
                break
            tokens, _, _ = reveal(tokens, redo, sched.set_level(redo, True))
        return best

    @staticmethod
    def _nodes(level, tokens, masked, centre, leaf: bool, P: int) -> NodeInputs:
        B, L = level.shape
        if leaf:
            token, payload = torch.zeros_like(level), tokens
        else:
            token, payload = tokens[..., 0], torch.zeros(B, L, P, dtype=torch.long, device=level.device)
        return NodeInputs(level, token, payload, masked, centre)

    @staticmethod
    def _rows(nodes: NodeInputs, guided: bool) -> NodeInputs:
        if not guided:
            return nodes
        return NodeInputs(*(torch.cat([t, t]) for t in (nodes.level_BT, nodes.token_BT, nodes.payload_BTP,
                                                         nodes.masked_BT, nodes.centre_BT3)))

    def _forward(self, nodes: NodeInputs, finished: list[NodeInputs], cache, cond, guided: bool) -> torch.Tensor:
        """Hidden states (R, L, C) of the current level's nodes."""
        if cache is not None:
            return self.model(self._rows(nodes, guided), past=cache)
        full = [*finished, nodes]
        seq = NodeInputs(*(torch.cat([getattr(n, f) for n in full], dim=1)
                           for f in ("level_BT", "token_BT", "payload_BTP", "masked_BT", "centre_BT3")))
        h = self.model(self._rows(seq, guided), cond)
        return h[:, -nodes.level_BT.shape[1]:]

    @staticmethod
    def _to_tokens(level_tokens, D: int, payload_kind: str, rows: list[int] | None = None) -> list[OctreeTokens]:
        out = []
        for b in range(level_tokens[0][0].shape[0]) if rows is None else rows:
            structure = [t[b, v[b], 0].to(torch.uint8).cpu() for t, v in level_tokens[:D]]
            t, v = level_tokens[D]
            out.append(OctreeTokens(structure, t[b, v[b]].long().cpu(), payload_kind, {"generator": "octgen"}))
        return out
