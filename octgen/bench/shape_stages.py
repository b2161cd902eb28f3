"""``octgen bench shape-stages``: which stage of a shape generator loses the shape.

On held-out source shapes (``--per-category`` per category of the test split, each
prompted with its caption 0, which names every attribute), three measurements:

1. **Teacher-forced accuracy per level.** The model sees the true coarser levels and
   level ``d`` fully masked (the sampler's first step at that level) and predicts
   every node: child-mask accuracy at levels 0..D-1 (argmax), and for the leaf
   codes the bit accuracy and exact-code accuracy (an autoregressive head is fed
   the true earlier bits). Two baselines read off the training shapes:
   *frequent* -- the most frequent child mask at that cell among training shapes
   of the same category (the most frequent code for leaves); *nearest* -- the
   tokens of the training shape whose caption is nearest to the prompt
   (MiniLM mean-pooled cosine), cell by cell (a cell it lacks counts as wrong).
2. **Decoded IoU** against the source solid (exact SDF sign), volumetric, on a
   ``--iou-res``^3 grid: (a) the true tokens (the tokenizer's ceiling); (b) the
   true structure with model-sampled leaf codes (sampler ``given_levels = D``);
   (c) model-sampled structure with, at each generated leaf, the true code of the
   nearest true leaf; (d) everything sampled (the generator as users get it).
3. Whole objects (largest part >= 85 % of the area) for (a)-(d).

Low teacher-forced accuracy at coarse levels with (c) far below (a) points at the
structure; (b) far below (a) at the codes (or a decoder that does not survive
sampled codes).
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict

import numpy as np
import torch


def add_arguments(p) -> None:
    from .._args import int_in_range

    p.add_argument("--checkpoint", default=None, help="shape pipeline folder (default: checkpoints/shapes-xs)")
    p.add_argument("--per-category", type=int_in_range(1, 1000), default=4, help="source shapes per category")
    p.add_argument("--categories", default=None, help="comma-separated categories (default: all)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--train-num", type=int_in_range(1, 1_000_000), default=20000,
                   help="training shapes the baselines read (their token cache is built once if missing)")
    p.add_argument("--iou-res", type=int_in_range(16, 256), default=64)
    p.add_argument("--seed", type=int_in_range(0, 2**62), default=0)
    p.add_argument("--threads", type=int_in_range(0, 1024), default=0)


def cell_keys(seq, d: int) -> list[tuple[int, int, int]]:
    """Integer cell coordinates of the level-``d`` nodes of a :class:`NodeSequence`."""
    c = seq.centre_T3[seq.level_slice(d)].double()
    return [tuple(x) for x in torch.round((c + 1) * (1 << d) / 2 - 0.5).long().tolist()]


class Baselines:
    """Per-cell statistics of the training tokens (see the module docstring), counted
    only for the (category, level, cell) triples in ``needed``."""

    def __init__(self, data, depth: int, needed: set):
        self.data, self.depth = data, depth
        self.frequent: dict = defaultdict(Counter)  # (category, level, cell) -> Counter of tokens
        for i in range(len(data)):
            seq, cat = data[i], int(data.category[i])
            for d in range(depth + 1):
                for key, v in zip(cell_keys(seq, d), level_values(seq, d)):
                    if (cat, d, key) in needed:
                        self.frequent[(cat, d, key)][v] += 1
        st, m = data.text_states.float(), data.text_mask[..., None].float()
        pooled = (st * m).sum(-2) / m.sum(-2).clamp_min(1.0)  # (N, captions, H)
        self.caption_embeds = torch.nn.functional.normalize(pooled, dim=-1)

    def frequent_value(self, cat: int, d: int, key):
        c = self.frequent.get((cat, d, key))
        return c.most_common(1)[0][0] if c else None

    def nearest_shape(self, prompt_embed_H: torch.Tensor) -> int:
        """Index of the training shape with the caption nearest to the prompt."""
        sims = (self.caption_embeds @ prompt_embed_H).amax(dim=1)
        return int(sims.argmax())


def level_values(seq, d: int) -> list:
    """The level-``d`` tokens of a sequence: child masks, or leaf payload rows as tuples."""
    sl = seq.level_slice(d)
    if d < seq.depth:
        return seq.token_T[sl].tolist()
    return [tuple(r) for r in seq.payload_TP[sl].tolist()]


def level_batch(seq, d: int):
    """The sampler's view of level ``d``: true levels < d, level ``d`` fully masked."""
    from ..model.sequence import pad_nodes

    sl = seq.level_slice(d)
    batch = pad_nodes([(seq.level_T[:sl.stop], seq.token_T[:sl.stop], seq.payload_TP[:sl.stop],
                        seq.centre_T3[:sl.stop])], seq.payload_TP.shape[1])
    batch.masked_BT[0, sl.start:sl.stop] = True
    return batch, sl


@torch.no_grad()
def teacher_forced(model, seq, cond) -> list[dict]:
    """Per level: model predictions of every node with the level fully masked."""
    out = []
    for d in range(seq.depth + 1):
        batch, sl = level_batch(seq, d)
        h = model(batch, cond)[0, sl]
        if d < seq.depth:
            pred = model.structure_logits(h).argmax(-1) + 1
            out.append({"level": d, "pred": pred, "true": seq.token_T[sl]})
        else:
            true = seq.payload_TP[sl]
            pred = torch.stack([lg.argmax(-1) for lg in model.payload_logits(h, true)], dim=1)
            out.append({"level": d, "pred": pred, "true": true})
    return out


def nearest_codes(sampled, true_seq):
    """``sampled`` (OctreeTokens) with each leaf's code replaced by the true code of
    the nearest true leaf cell."""
    from scipy.spatial import cKDTree

    from ..model.sequence import tokens_to_nodes
    from ..tokenize.tokens import OctreeTokens

    D = true_seq.depth
    gen = tokens_to_nodes(sampled)
    tl = true_seq.level_slice(D)
    _, j = cKDTree(true_seq.centre_T3[tl].numpy()).query(gen.centre_T3[gen.level_slice(D)].numpy())
    payload = true_seq.payload_TP[tl][torch.as_tensor(j)]
    return OctreeTokens(sampled.structure, payload.to(sampled.payload.dtype), sampled.payload_kind, sampled.meta)


def _acc(hits: list[float]) -> float | None:
    return float(np.mean(hits)) if hits else None


VARIANTS = ("a_true_tokens", "b_true_structure_sampled_codes", "c_sampled_structure_nearest_true_codes",
            "d_all_sampled")


def score_levels(model, seq, cond, near, base: Baselines, cat: int, hits: dict, bits: dict) -> None:
    """Add one source's teacher-forced hits of the model and both baselines, per level."""
    D = seq.depth
    for r in teacher_forced(model, seq, cond):
        d = r["level"]
        near_map = dict(zip(cell_keys(near, d), level_values(near, d)))
        true_vals = r["true"].tolist() if d < D else [tuple(x) for x in r["true"].tolist()]
        pred_vals = r["pred"].tolist() if d < D else [tuple(x) for x in r["pred"].tolist()]
        for key, t, p in zip(cell_keys(seq, d), true_vals, pred_vals):
            guesses = {"model": p, "frequent": base.frequent_value(cat, d, key), "nearest": near_map.get(key)}
            for k, v in guesses.items():
                hits[k][d].append(v == t)
                if d == D:
                    bits[k].append(np.mean([a == b for a, b in zip(v, t)]) if v else 0.0)


def decoded_variants(sampler, tok, true_tokens, seq, cond, generator) -> dict:
    """The four token sets of :data:`VARIANTS` for one source."""
    D = seq.depth
    [b_tokens] = sampler.sample(1, generator=generator, cond=cond, payload_kind=tok.payload_kind,
                                given=[true_tokens], given_levels=D)
    [d_tokens] = sampler.sample(1, generator=generator, cond=cond, payload_kind=tok.payload_kind)
    return dict(zip(VARIANTS, (true_tokens, b_tokens, nearest_codes(d_tokens, seq), d_tokens)))


def load_sources(tok, categories: list[str], per_category: int, split: str, seed: int) -> list[tuple]:
    """(item, true tokens, node sequence, category index) per held-out source shape."""
    from ..data.shapes import CATEGORIES
    from ..model.sequence import tokens_to_nodes
    from ..tokenize.shape_sdf import sdf_to_band
    from .shapes import make_items, split_sources_references

    ds, picked = split_sources_references(categories, per_category, 0, split)
    sources = []
    for c in categories:
        for item in make_items(ds, picked[c][0], "first", seed):
            [true_tokens] = tok.bands_to_tokens([sdf_to_band(item.sample.sdf, tok.config.fine_depth)])
            sources.append((item, true_tokens, tokens_to_nodes(true_tokens), CATEGORIES.index(c)))
    return sources


def run(args) -> dict:
    from ..metrics.shapes import (largest_part_area_fraction, mesh_occupancy_grid, sdf_occupancy_grid,
                                  volumetric_iou)
    from ..pipeline.pipeline import OctGenPipeline
    from ..sampling.sampler import OctreeSampler
    from ..train.shape_data import prepare_shape_data
    from .shapes import WHOLE_OBJECT_AREA, parse_categories, resolve_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    ckpt = resolve_checkpoint(args.checkpoint)
    pipe = OctGenPipeline.from_pretrained(ckpt)
    model, tok = pipe.transformer, pipe.tokenizer
    D = model.depth
    sources = load_sources(tok, parse_categories(args.categories), args.per_category, args.split, args.seed)
    needed = {(cat, d, key) for _, _, seq, cat in sources for d in range(D + 1) for key in cell_keys(seq, d)}
    train = prepare_shape_data(tok, tok.config.name, args.train_num, 2, 0, pipe.text_encoder_name)
    base = Baselines(train, D, needed)
    print(f"baselines from {len(train)} training shapes ({time.perf_counter() - t_start:.0f} s)", flush=True)

    hits = {k: defaultdict(list) for k in ("model", "frequent", "nearest")}
    bits = {k: [] for k in ("model", "frequent", "nearest")}
    ious, whole = {v: [] for v in VARIANTS}, {v: [] for v in VARIANTS}
    sampler = OctreeSampler(model, pipe.sampler_config)
    for n, (item, true_tokens, seq, cat) in enumerate(sources, 1):
        s = item.sample
        cond, _ = pipe.condition(1, prompt=item.prompt)
        near = train[base.nearest_shape(pipe.text_encoder.embed([item.prompt])[0])]
        score_levels(model, seq, cond, near, base, cat, hits, bits)
        g = torch.Generator().manual_seed(args.seed + s.index)
        ref = sdf_occupancy_grid(s.sdf, args.iou_res)
        for v, t in decoded_variants(sampler, tok, true_tokens, seq, cond, g).items():
            mesh = tok.decode(t)
            ious[v].append(volumetric_iou(ref, mesh_occupancy_grid(mesh, args.iou_res)))
            whole[v].append(largest_part_area_fraction(mesh) >= WHOLE_OBJECT_AREA)
        print(f"[{n}/{len(sources)}] {s.category}-{s.index}: IoU " +
              " ".join(f"{v[0]} {ious[v][-1]:.2f}" for v in VARIANTS), flush=True)

    levels = [{"level": d, "nodes": len(hits["model"][d]), **{f"{k}_accuracy": _acc(hits[k][d]) for k in hits},
               **({f"{k}_bit_accuracy": _acc(bits[k]) for k in bits} if d == D else {})} for d in range(D + 1)]
    result = {"bench": "shape-stages", "checkpoint": str(ckpt), "split": args.split,
              "per_category": args.per_category, "sources": len(sources), "train_num": args.train_num,
              "iou_res": args.iou_res, "sampler": vars(pipe.sampler_config), "teacher_forced": levels,
              "decoded_iou_mean": {v: _acc(ious[v]) for v in VARIANTS},
              "whole_objects": {v: _acc(whole[v]) for v in VARIANTS},
              "seconds": time.perf_counter() - t_start}
    print_report(result)
    return result


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def print_report(r: dict) -> None:
    print(f"octgen bench shape-stages: {r['checkpoint']} ({r['sources']} {r['split']} shapes, caption 0 prompts)")
    print(f"{'level':<6} {'nodes':>6}  {'model':>7}  {'frequent':>8}  {'nearest':>8}   (teacher-forced, level fully masked)")
    for row in r["teacher_forced"]:
        print(f"{row['level']:<6} {row['nodes']:>6}  {_pct(row['model_accuracy']):>7}  "
              f"{_pct(row['frequent_accuracy']):>8}  {_pct(row['nearest_accuracy']):>8}")
        if "model_bit_accuracy" in row:
            print(f"{'bits':<6} {'':>6}  {_pct(row['model_bit_accuracy']):>7}  {_pct(row['frequent_bit_accuracy']):>8}  "
                  f"{_pct(row['nearest_bit_accuracy']):>8}")
    for v, iou in r["decoded_iou_mean"].items():
        print(f"IoU {v:<42} {iou:.3f}   whole objects {_pct(r['whole_objects'][v])}")
