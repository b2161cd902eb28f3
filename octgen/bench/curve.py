"""``octgen bench molecule-curve``: train a molecule generator in chunks and measure
its exported EMA weights after each chunk: the learning curve that decides recipes.

Every ``--every`` optimiser steps the run stops (saving an accelerate state), the
EMA pipeline it exported is sampled (``--num`` molecules, seeds from ``--seed``: a
validation seed range disjoint from the reported benchmark's seed 0) and scored
without filtering: EDM stability / validity / uniqueness, the atom-count
total-variation distance to QM9's validation split, and nearest-neighbour
distances per element pair against QM9's. One JSON line per point goes to
``OUTPUT_DIR/curve.jsonl`` (step, training CPU-seconds, metrics), the best point
so far is copied to ``OUTPUT_DIR/best/`` (the folder to ship) and the curve is drawn
into ``OUTPUT_DIR/learning_curve.png``. Rerunning the same
command continues the run where it stopped (exact resume).
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path


def add_arguments(p) -> None:
    from .._args import int_in_range

    p.add_argument("--config", required=True, help="training config of the run (.json)")
    p.add_argument("--every", type=int_in_range(1, 10_000_000), default=500, help="steps between measurements")
    p.add_argument("--until", type=int_in_range(1, 10_000_000), default=None,
                   help="stop at this step (default: the config's max_steps)")
    p.add_argument("--num", type=int_in_range(1, 1_000_000), default=1000, help="samples per measurement")
    p.add_argument("--seed", type=int_in_range(0, 2**62), default=1_000_003, help="first validation seed")
    p.add_argument("--batch-size", type=int_in_range(1, 100_000), default=500, help="molecules sampled together")


def score(q: dict) -> float:
    """One number to rank curve points: atom stability + molecule stability + validity."""
    return q["atom_stability"] + q["mol_stability"] + q["validity"]


def validation_molecules() -> list:
    """QM9's validation split: the reference the curve and the sampler sweep score against."""
    from ..data.qm9 import load_qm9

    qm9 = load_qm9(progress=False)
    return qm9.molecules(qm9.split_indices("val"))


def measure(pipe, num: int, seed: int, batch_size: int, reference, **overrides) -> dict:
    """Unfiltered quality and speed of ``num`` samples of a molecule pipeline (an
    :class:`~octgen.pipeline.OctGenPipeline` or its folder), with optional sampler
    ``overrides``."""
    import torch

    from ..metrics.molecules import distribution_report, evaluate_molecules
    from ..pipeline.pipeline import OctGenPipeline

    if not isinstance(pipe, OctGenPipeline):
        pipe = OctGenPipeline.from_pretrained(pipe)
    t0 = time.perf_counter()
    mols = pipe(num, generator=torch.Generator().manual_seed(seed), batch_size=batch_size, **overrides)
    seconds = time.perf_counter() - t0
    q = evaluate_molecules(mols)
    dist = distribution_report(mols, reference)
    for k in ("atom_count_histogram", "reference_atom_count_histogram"):
        dist.pop(k)
    return {**{k: q[k] for k in ("atom_stability", "mol_stability", "validity", "uniqueness", "valid_unique")},
            **dist, "molecules_per_second": round(num / seconds, 2)}


def curve_loop(cfg, every: int, until: int | None, measure_fn, score_fn, line_fn, plot_fn) -> list[dict]:
    """Train the run ``cfg`` in chunks of ``every`` steps up to ``until`` (default its
    max_steps), resuming from its latest state; after each chunk measure the exported
    EMA pipeline with ``measure_fn(pipeline_dir) -> dict``, append the point to
    ``curve.jsonl``, copy the pipeline to ``best/`` when ``score_fn(point)`` beats every
    earlier point, print ``line_fn(point)`` and finally ``plot_fn(points, png_path)``."""
    from ..train.trainer import _latest_state, train

    out = Path(cfg.output_dir)
    until = until or cfg.max_steps
    curve_path = out / "curve.jsonl"
    points = [json.loads(line) for line in curve_path.read_text().splitlines()] if curve_path.is_file() else []
    best = max((score_fn(p) for p in points), default=-1.0)
    while True:
        state = _latest_state(out / "checkpoints")
        step = int(state.name.split("_")[1]) if state else 0
        if step >= until:
            break
        target = min(until, (step // every + 1) * every)
        result = train(cfg, resume=state is not None, stop_at=target, progress=True)
        q = measure_fn(out / "pipeline")
        point = {"step": result["step"], "train_cpu_seconds": round(result["cpu_seconds"], 3),
                 "loss": result["loss"], **q}
        points.append(point)
        with open(curve_path, "a") as f:
            f.write(json.dumps(point) + "\n")
        print(line_fn(point), flush=True)
        if score_fn(point) > best:
            best = score_fn(point)
            tmp = out / "best.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(out / "pipeline", tmp)
            shutil.rmtree(out / "best", ignore_errors=True)
            tmp.rename(out / "best")
    if points:
        plot_fn(points, out / "learning_curve.png")
    return points


def _line(p: dict) -> str:
    return (f"step {p['step']} cpu {p['train_cpu_seconds'] / 60:.1f} min | atom stab "
            f"{100 * p['atom_stability']:.1f} mol stab {100 * p['mol_stability']:.1f} valid "
            f"{100 * p['validity']:.1f} | atoms {p['atoms_mean']:.1f} TV {p['atom_count_tv']:.3f} | "
            f"H-C {p.get('H-C', {}).get('quantiles_10_50_90')}")


def run(args) -> dict:
    from ..train.config import TrainConfig
    from .plots import plot_learning_curve

    cfg = TrainConfig.from_file(args.config)
    reference = validation_molecules()

    def measure_fn(pipeline_dir):
        return {"num": args.num, "seed": args.seed,
                **measure(pipeline_dir, args.num, args.seed, args.batch_size, reference)}

    def plot_fn(points, path):
        plot_learning_curve(points, path, f"{Path(cfg.output_dir).name}: {args.num} samples per point")

    points = curve_loop(cfg, args.every, args.until, measure_fn, score, _line, plot_fn)
    return {"output_dir": str(cfg.output_dir), "points": points}
