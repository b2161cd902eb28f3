"""``octgen bench shapes``: how well a shape pipeline follows prompts and sketches,
how close its shapes are to the data, and how fast it is on this machine.

Everything is measured on held-out shapes: the procedural test split
(:class:`~octgen.data.shapes.ShapeDataset` ``("test", seed=--data-seed)``). Per
category the first ``K = --per-category`` test shapes are the *sources*; the next
``K`` are the *references* of the distribution figures (never used as prompts or
sketches). Nothing is filtered or ranked: every generated shape counts.

1. **Prompt fidelity.** Each source's caption 0 (it names every attribute; or a
   seeded random caption with ``--caption random``) is the prompt of one shape,
   sampled with its own generator (``--seed`` + the shape's test index). The
   shape classifier (``checkpoints/shape-classifier``) reads the generated mesh:
   category accuracy, and attribute accuracy over the measurable attributes that
   the prompt names, compared with the source's values (a wrong category makes
   all of the shape's attributes wrong).
2. **Sketch fidelity.** Each source is drawn ``--sketch-views`` times from jittered
   views whose seeds (``10**6`` + run index) no training sketch used; one shape is
   generated per drawing and compared with the source solid: volumetric IoU of the
   generated mesh's ray-parity occupancy against ``sdf < 0`` of the exact SDF, on a
   ``--iou-res``^3 grid of cell centres.
3. **Distribution**, per category: the prompt-generated shapes against the
   reference shapes (marching cubes of their exact SDF on the tokenizer's own grid,
   so both sides have the same resolution), ``--surface-points`` surface samples
   each, Chamfer-L1 MMD / COV / 1-NNA (:mod:`octgen.metrics.distribution`). An empty
   generated mesh counts as a cloud at the origin: it is penalised, not dropped.
   With K = 1, 1-NNA is 0 by construction; read it at K >= 8.
4. **Meshes**: fraction of generated meshes that are non-empty and watertight, and
   of *whole objects*: meshes whose largest connected part holds at least 85 % of
   the surface area (scattered fragments fail it).
5. **Speed**: text -> mesh wall clock per prompt shape and the pipeline's
   per-stage timings (median over the prompt runs), after one warm-up call; the
   one-off load of the text encoder is timed and reported separately.

Targets (issue #12, printed next to the figures): category accuracy >= 90 %,
attribute accuracy >= 70 %, whole objects >= 95 % of meshes, sketch IoU mean
>= 0.6, mean 1-NNA <= 70 %, median text -> mesh <= 2 s (goals beyond them:
95 %, IoU 0.75, 1-NNA 60 %).
"""
from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..weights import DEFAULT_SHAPE_CHECKPOINT, DIFFUSERS_WEIGHTS_NAME, default_shape_checkpoint, load_checked
from .timing import machine_info

DEFAULT_CLASSIFIER = "checkpoints/shape-classifier"
SKETCH_SEED_OFFSET = 10**6  # training sketches use seeds below the training-set size
WHOLE_OBJECT_AREA = 0.85  # a mesh is one object when its largest part holds this share of the area
TARGETS = {"category_accuracy": {"min": 0.90}, "attribute_accuracy": {"min": 0.70},
           "whole_objects": {"min": 0.95}, "sketch_iou_mean": {"min": 0.60}, "nna_mean": {"max": 0.70},
           "text_to_mesh_seconds": {"max": 2.0}}


def add_arguments(p) -> None:
    from .._args import int_in_range

    p.add_argument("--checkpoint", default=None, help="shape pipeline folder (default: the shipped checkpoints/shapes-xs)")
    p.add_argument("--classifier", default=None, help=f"shape classifier folder (default: {DEFAULT_CLASSIFIER})")
    p.add_argument("--per-category", type=int_in_range(1, 1000), default=8,
                   help="held-out source shapes per category (default 8); as many again are the references")
    p.add_argument("--categories", default=None,
                   help="comma-separated categories to measure (default: all 15)")
    p.add_argument("--caption", choices=("first", "random"), default="first",
                   help="prompt: caption 0, which names every attribute (default), or a seeded random caption")
    p.add_argument("--sketch-views", type=int_in_range(0, 100), default=1,
                   help="jittered sketches per source shape, one shape each (default 1; 0 skips sketches)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the checkpoint's)")
    p.add_argument("--steps", type=int_in_range(1, 10_000), default=None,
                   help="sampling steps per level (default: the checkpoint's)")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default: the checkpoint's)")
    p.add_argument("--leaf-temperature", type=float, default=None,
                   help="temperature of the leaf codes' bits (default: the checkpoint's; unset there: --temperature)")
    p.add_argument("--top-p", type=float, default=None,
                   help="nucleus sampling: keep the most likely values holding this probability mass "
                        "(0 < p <= 1; default: the checkpoint's)")
    p.add_argument("--confidence", default=None,
                   help="order in which each level's tokens are revealed: the sample's log-probability (logp), "
                        "its distribution's max probability or entropy, or random (default: the checkpoint's)")
    p.add_argument("--connect", type=int, default=None,
                   help="join each structure level's cells into one part with at most N added cells per stray "
                        "part, and draw again the leaf codes where the mesh comes apart (0: off; default: the "
                        "checkpoint's)")
    p.add_argument("--seed", type=int_in_range(0, 2**62), default=0,
                   help="generation seed; shape i of the split uses seed + i (default 0)")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="held-out split (default test; tune sampler settings on val)")
    p.add_argument("--data-seed", type=int_in_range(0, 2**62), default=0, help="dataset seed (default 0)")
    p.add_argument("--iou-res", type=int_in_range(16, 256), default=128,
                   help="grid for the sketch IoU (default 128^3)")
    p.add_argument("--surface-points", type=int_in_range(64, 100_000), default=2048,
                   help="surface samples per shape for MMD / COV / 1-NNA (default 2048)")
    p.add_argument("--threads", type=int_in_range(0, 1024), default=0,
                   help="torch threads (default 0: torch's default)")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _repo_path(rel: str) -> Path:
    return Path(__file__).resolve().parents[2] / rel


def resolve_checkpoint(path: str | None) -> Path:
    """The shape pipeline folder to measure; one-line error when the default one
    is not there yet."""
    from ..errors import InputError

    if path:
        return Path(path)
    default = default_shape_checkpoint()
    if not (default / "pipeline.json").is_file():
        raise InputError(f"no trained shape checkpoint at {DEFAULT_SHAPE_CHECKPOINT}: pass --checkpoint DIR")
    return default


def parse_categories(text: str | None) -> list[str]:
    """Category names from ``--categories`` (default all), in dataset order."""
    from ..data.shapes import CATEGORIES
    from ..errors import InputError

    if not text:
        return list(CATEGORIES)
    wanted = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in CATEGORIES]
    if unknown or not wanted:
        raise InputError(f"unknown categories {unknown or text!r}; choose from {', '.join(CATEGORIES)}")
    return [c for c in CATEGORIES if c in wanted]


# ----------------------------------------------------------------------------- held-out shapes
@dataclass
class Item:
    """One held-out source shape and the prompt made from it."""

    sample: object  # ShapeSample
    prompt: str
    named: list[str]  # measurable attributes the prompt names


def split_sources_references(categories: list[str], k: int, data_seed: int, split: str = "test"):
    """Per category, the ``split`` indices of ``k`` source and ``k`` reference shapes.

    Returns:
        (dataset, {category: (source indices, reference indices)}).
    """
    from ..data.shapes import ShapeDataset

    size = 1000
    while True:
        ds = ShapeDataset(split, size=size, seed=data_seed)
        cats = ds.categories()  # no geometry is built
        picked = {c: [i for i, ci in enumerate(cats) if ci == c][:2 * k] for c in categories}
        if all(len(v) == 2 * k for v in picked.values()):
            return ds, {c: (v[:k], v[k:]) for c, v in picked.items()}
        size *= 2


def _find(text: str, phrase: str | None):
    return None if phrase is None else re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text)


def named_attributes(category: str, attributes: dict, caption: str) -> list[str]:
    """Measurable attributes of a shape whose value the caption names (by the
    value's adjective or with-phrase, as :func:`~octgen.data.shapes.make_captions`
    writes them).

    Longer phrases are matched first and blanked out, so a phrase inside another
    attribute's phrase ("solid" in "solid side panels") is not counted twice.
    """
    from ..data.shapes import ATTRIBUTES

    phrases = [(ph, spec) for spec in ATTRIBUTES[category] for ph in spec.phrases[attributes[spec.name]] if ph]
    named = set()
    for phrase, spec in sorted(phrases, key=lambda x: -len(x[0])):
        m = _find(caption, phrase)
        if m is not None:
            named.add(spec.name)
            caption = caption[:m.start()] + "#" * len(phrase) + caption[m.end():]
    return [spec.name for spec in ATTRIBUTES[category] if spec.measurable and spec.name in named]


def make_items(ds, indices: list[int], caption: str, seed: int) -> list[Item]:
    items = []
    for i in indices:
        s = ds[i]
        k = 0 if caption == "first" else int(np.random.default_rng([seed, s.index]).integers(len(s.captions)))
        items.append(Item(s, s.captions[k], named_attributes(s.category, s.attributes, s.captions[k])))
    return items


# ----------------------------------------------------------------------------- measurements
def _generate(pipe, overrides: dict, seed: int, **condition):
    import torch

    t0 = time.perf_counter()
    [result] = pipe(generator=torch.Generator().manual_seed(seed), **condition, **overrides)
    return result, time.perf_counter() - t0


def judge_prompt(classifier, item: Item, mesh) -> dict:
    """Classifier verdict on one prompt-generated mesh."""
    from ..metrics.shape_classifier import mesh_to_voxels

    if len(mesh.faces) == 0:
        pred = {"category": None, "attributes": {}}
    else:
        [pred] = classifier.predict([mesh_to_voxels(mesh)])
    s = item.sample
    cat_ok = pred["category"] == s.category
    attr_ok = [cat_ok and pred["attributes"].get(a) == str(s.attributes[a]) for a in item.named]
    return {"predicted": pred["category"], "category_ok": cat_ok, "attributes_named": len(item.named),
            "attributes_ok": int(sum(attr_ok))}


def run_prompts(pipe, classifier, items: list[Item], args, overrides: dict) -> list[dict]:
    rows = []
    for n, item in enumerate(items, 1):
        s = item.sample
        res, wall = _generate(pipe, overrides, args.seed + s.index, prompt=item.prompt)
        row = {"category": s.category, "index": s.index, "prompt": item.prompt, "mesh": res.mesh,
               "wall_s": wall, "timings": res.timings, **judge_prompt(classifier, item, res.mesh)}
        rows.append(row)
        _log(f"[prompt {n}/{len(items)}] {s.category}-{s.index}: predicted {row['predicted']}, attributes "
             f"{row['attributes_ok']}/{row['attributes_named']}, {wall:.2f} s  '{item.prompt}'")
    return rows


def run_sketches(pipe, items: list[Item], args, overrides: dict) -> list[dict]:
    import torch

    from ..condition.sketch import SKETCH_SIZE
    from ..data.sketches import render_sketch
    from ..metrics.shapes import mesh_occupancy_grid, sdf_occupancy_grid, volumetric_iou

    rows, total = [], len(items) * args.sketch_views
    for item in items:
        s = item.sample
        ref_occ = sdf_occupancy_grid(s.sdf, args.iou_res)
        for v in range(args.sketch_views):
            run_id = s.index * args.sketch_views + v
            # Same size as the training sketches; only the view (and shape) is new.
            drawing = render_sketch(s.sdf, torch.Generator().manual_seed(SKETCH_SEED_OFFSET + run_id), size=SKETCH_SIZE)
            res, wall = _generate(pipe, overrides, args.seed + run_id, sketch=drawing)
            iou = volumetric_iou(ref_occ, mesh_occupancy_grid(res.mesh, args.iou_res))
            rows.append({"category": s.category, "index": s.index, "view": v, "mesh": res.mesh, "iou": iou,
                         "wall_s": wall})
            _log(f"[sketch {len(rows)}/{total}] {s.category}-{s.index} view {v}: IoU {iou:.3f}, {wall:.2f} s")
    return rows


def surface_cloud(mesh, n: int, seed: int):
    """(n, 3) float32 surface samples; an empty mesh gives ``n`` points at the origin."""
    import torch

    from ..metrics.shapes import sample_surface_with_normals

    if len(mesh.faces) == 0:
        return torch.zeros(n, 3)
    return torch.from_numpy(sample_surface_with_normals(mesh, n, seed)[0]).float()


def reference_meshes(ds, indices: list[int], depth: int) -> list:
    """Marching cubes of the exact SDF on the same 2^depth grid the tokenizer decodes to."""
    from ..data.grid import grid_to_mesh, sdf_grid

    return [grid_to_mesh(sdf_grid(ds[i].sdf, 1 << depth, sampling="centre"), sampling="centre") for i in indices]


def run_distribution(gen_rows: list[dict], refs: dict, n_points: int) -> dict:
    """Per category MMD / COV / 1-NNA of prompt-generated vs reference meshes."""
    import torch

    from ..metrics.distribution import distribution_metrics

    out = {}
    for cat, ref_list in refs.items():
        gen = [r for r in gen_rows if r["category"] == cat]
        gen_P = torch.stack([surface_cloud(r["mesh"], n_points, r["index"]) for r in gen])
        ref_P = torch.stack([surface_cloud(m, n_points, j) for j, m in enumerate(ref_list)])
        out[cat] = distribution_metrics(gen_P, ref_P)
        _log(f"[distribution] {cat}: MMD {out[cat]['mmd']:.4f}, COV {out[cat]['cov']:.0%}, 1-NNA {out[cat]['nna']:.0%}")
    return out


# ----------------------------------------------------------------------------- summaries
def _mean(values) -> float | None:
    return float(np.mean(values)) if len(values) else None


def prompt_summary(rows: list[dict]) -> dict:
    named = sum(r["attributes_named"] for r in rows)
    return {"n": len(rows), "category_accuracy": _mean([r["category_ok"] for r in rows]),
            "attributes_judged": named,
            "attribute_accuracy": sum(r["attributes_ok"] for r in rows) / named if named else None}


def sketch_summary(rows: list[dict]) -> dict:
    ious = [r["iou"] for r in rows]
    return {"n": len(rows), "iou_mean": _mean(ious), "iou_median": float(np.median(ious)) if ious else None}


def mesh_summary(rows: list[dict]) -> dict:
    from ..metrics.shapes import largest_part_area_fraction

    meshes = [r["mesh"] for r in rows]
    largest = [largest_part_area_fraction(m) for m in meshes]
    return {"n": len(meshes), "non_empty": _mean([len(m.faces) > 0 for m in meshes]),
            "watertight": _mean([len(m.faces) > 0 and bool(m.is_watertight) for m in meshes]),
            "whole_objects": _mean([f >= WHOLE_OBJECT_AREA for f in largest]),
            "largest_part_area_median": float(np.median(largest)) if largest else None}


def speed_summary(rows: list[dict], encoder_load_s: float, warmup_s: float) -> dict:
    import torch

    stages = list(rows[0]["timings"])  # encode_condition, sample_level_0.., decode, marching_cubes, total
    return {"runs": len(rows), "torch_threads": torch.get_num_threads(),
            "text_encoder_load_s": encoder_load_s, "warmup_call_s": warmup_s,
            "wall_median_s": float(np.median([r["wall_s"] for r in rows])),
            "stage_median_s": {k: float(np.median([r["timings"][k] for r in rows])) for k in stages}}


def targets_met(result: dict) -> dict:
    """Per target: True / False, or None where the figure was not measured (or, for
    1-NNA, is 0 by construction: one shape per side)."""
    sk = result["sketch_fidelity"]
    values = {"category_accuracy": result["prompt_fidelity"]["category_accuracy"],
              "attribute_accuracy": result["prompt_fidelity"]["attribute_accuracy"],
              "whole_objects": result["meshes"]["all"]["whole_objects"],
              "sketch_iou_mean": sk["iou_mean"] if sk else None,
              "nna_mean": result["distribution"]["mean"]["nna"] if result["settings"]["per_category"] > 1 else None,
              "text_to_mesh_seconds": result["speed"]["wall_median_s"]}
    met = {}
    for name, bound in TARGETS.items():
        v = values[name]
        met[name] = None if v is None else bool(v >= bound["min"] if "min" in bound else v <= bound["max"])
    return met


# ----------------------------------------------------------------------------- run
def sampler_overrides(args) -> dict:
    """The sampler settings ``--guidance``, ``--steps``, ``--temperature``,
    ``--leaf-temperature``, ``--top-p``, ``--confidence`` and ``--connect`` change, each checked by
    :class:`SamplerConfig` itself (a one-line error naming the flag)."""
    from ..errors import InputError
    from ..sampling.scheduler import SamplerConfig

    flags = {"guidance_scale": "guidance", "steps": "steps", "temperature": "temperature",
             "leaf_temperature": "leaf_temperature", "top_p": "top_p", "confidence": "confidence",
             "connect": "connect"}
    overrides = {}
    for key, attr in flags.items():
        value = getattr(args, attr)
        if value is None:
            continue
        try:
            SamplerConfig(**{key: value})
        except ValueError as e:
            raise InputError(f"--{attr.replace('_', '-')}: {e}") from None
        overrides[key] = value
    return overrides


def run(args) -> dict:
    import torch

    from ..errors import InputError
    from ..metrics.shape_classifier import ShapeClassifier
    from ..pipeline.pipeline import OctGenPipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    categories = parse_categories(args.categories)
    ckpt = resolve_checkpoint(args.checkpoint)
    clf_dir = Path(args.classifier) if args.classifier else _repo_path(DEFAULT_CLASSIFIER)
    if not (clf_dir / "config.json").is_file():
        raise InputError(f"no shape classifier at {clf_dir}: pass --classifier DIR")
    overrides = sampler_overrides(args)

    t0 = time.perf_counter()
    pipe = OctGenPipeline.from_pretrained(ckpt)
    classifier = load_checked(ShapeClassifier, clf_dir, DIFFUSERS_WEIGHTS_NAME, "shape classifier").eval()
    load_s = time.perf_counter() - t0
    machine = machine_info()
    _log(f"checkpoint {ckpt} ({load_s:.1f} s to load); {machine['summary']}")

    ds, picked = split_sources_references(categories, args.per_category, args.data_seed, args.split)
    items = [it for c in categories for it in make_items(ds, picked[c][0], args.caption, args.seed)]

    t0 = time.perf_counter()
    pipe.text_encoder  # noqa: B018 - the one-off load, timed apart from the per-shape figures
    encoder_load_s = time.perf_counter() - t0
    _, warmup_s = _generate(pipe, overrides, args.seed, prompt=items[0].prompt)
    _log(f"text encoder loaded in {encoder_load_s:.1f} s; warm-up call {warmup_s:.2f} s")

    prompt_rows = run_prompts(pipe, classifier, items, args, overrides)
    sketch_rows = run_sketches(pipe, items, args, overrides) if args.sketch_views else []
    depth = pipe.tokenizer.config.fine_depth
    refs = {}
    for c in categories:
        refs[c] = reference_meshes(ds, picked[c][1], depth)
        _log(f"[references] {c}: {len(refs[c])} held-out meshes")
    dist = run_distribution(prompt_rows, refs, args.surface_points)

    def by_category(rows, summary):
        return {c: summary([r for r in rows if r["category"] == c]) for c in categories}

    dist_mean = {k: float(np.mean([d[k] for d in dist.values()])) for k in ("mmd", "cov", "nna")}
    result = {
        "bench": "shapes", "checkpoint": str(ckpt),
        "checkpoint_info": {k: pipe.info[k] for k in ("train_step", "note") if k in pipe.info},
        "sampler": {**vars(pipe.sampler_config), **overrides}, "machine": machine, "targets": TARGETS,
        "settings": {"per_category": args.per_category, "categories": categories, "caption": args.caption,
                     "sketch_views": args.sketch_views, "guidance": args.guidance, "steps": args.steps,
                     "temperature": args.temperature, "leaf_temperature": args.leaf_temperature,
                     "top_p": args.top_p, "confidence": args.confidence, "connect": args.connect,
                     "seed": args.seed, "data_seed": args.data_seed, "iou_res": args.iou_res,
                     "surface_points": args.surface_points, "split": args.split,
                     "classifier": str(clf_dir)},
        "prompt_fidelity": {**prompt_summary(prompt_rows), "per_category": by_category(prompt_rows, prompt_summary)},
        "sketch_fidelity": ({**sketch_summary(sketch_rows), "per_category": by_category(sketch_rows, sketch_summary)}
                            if sketch_rows else None),
        "distribution": {"reference": f"the next {args.per_category} test shapes of each category (disjoint from "
                                      f"the prompt sources), marching cubes of the exact SDF at {1 << depth}^3",
                         "surface_points": args.surface_points, "per_category": dist, "mean": dist_mean},
        "meshes": {"prompt": mesh_summary(prompt_rows), "sketch": mesh_summary(sketch_rows) if sketch_rows else None,
                   "all": mesh_summary(prompt_rows + sketch_rows)},
        "speed": {**speed_summary(prompt_rows, encoder_load_s, warmup_s), "pipeline_load_s": load_s},
    }
    result["targets_met"] = targets_met(result)
    print_report(result)
    return result


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _num(v, fmt: str = ".3f") -> str:
    return "-" if v is None else format(v, fmt)


def print_report(r: dict) -> None:
    """The readable table on stdout."""
    s, p, sk, d = r["settings"], r["prompt_fidelity"], r["sketch_fidelity"], r["distribution"]
    print(f"octgen bench shapes: {r['checkpoint']}  ({r['machine']['summary']})")
    print(f"held-out {s['split']} split (data seed {s['data_seed']}), {s['per_category']} source + {s['per_category']} "
          f"reference shapes per category, caption {s['caption']}, {s['sketch_views']} sketch view(s), seed "
          f"{s['seed']}, guidance {r['sampler']['guidance_scale']}, steps {r['sampler']['steps']}")
    head = f"{'category':<10} {'n':>3}  {'cat acc':>7}  {'attr acc':>8}  {'IoU mean':>8}  {'IoU med':>7}  " \
           f"{'MMD':>7}  {'COV':>6}  {'1-NNA':>6}"
    print(head)
    print("-" * len(head))
    for c in s["categories"]:
        pc, dc = p["per_category"][c], d["per_category"][c]
        kc = sk["per_category"][c] if sk else {"iou_mean": None, "iou_median": None}
        print(f"{c:<10} {pc['n']:>3}  {_pct(pc['category_accuracy']):>7}  {_pct(pc['attribute_accuracy']):>8}  "
              f"{_num(kc['iou_mean']):>8}  {_num(kc['iou_median']):>7}  {dc['mmd']:>7.4f}  {_pct(dc['cov']):>6}  "
              f"{_pct(dc['nna']):>6}")
    print("-" * len(head))
    k_all = sk or {"iou_mean": None, "iou_median": None}
    print(f"{'all':<10} {p['n']:>3}  {_pct(p['category_accuracy']):>7}  {_pct(p['attribute_accuracy']):>8}  "
          f"{_num(k_all['iou_mean']):>8}  {_num(k_all['iou_median']):>7}  {d['mean']['mmd']:>7.4f}  "
          f"{_pct(d['mean']['cov']):>6}  {_pct(d['mean']['nna']):>6}")
    print(f"attributes judged: {p['attributes_judged']} (measurable ones the prompt names); distribution reference: "
          f"{d['reference']}, {d['surface_points']} surface points, Chamfer-L1")
    m = r["meshes"]["all"]
    print(f"meshes: {m['n']} generated, non-empty {_pct(m['non_empty'])}, watertight {_pct(m['watertight'])}, "
          f"whole objects {_pct(m['whole_objects'])} (largest part >= {WHOLE_OBJECT_AREA:.0%} of the area; "
          f"median share {_num(m['largest_part_area_median'])})")
    sp = r["speed"]
    stages = ", ".join(f"{k} {v:.3f}" for k, v in sp["stage_median_s"].items())
    print(f"speed (text -> mesh, median of {sp['runs']}, {sp['torch_threads']} torch threads): wall "
          f"{sp['wall_median_s']:.3f} s; stages (s): {stages}")
    print(f"  text encoder load {sp['text_encoder_load_s']:.2f} s and warm-up call {sp['warmup_call_s']:.2f} s "
          f"excluded")
    verdicts = []
    for name, bound in r["targets"].items():
        rule = f">= {bound['min']}" if "min" in bound else f"<= {bound['max']}"
        verdicts.append(f"{name} {rule}: {({None: 'n/a', True: 'met', False: 'NOT met'})[r['targets_met'][name]]}")
    print("targets: " + "; ".join(verdicts))
