"""``octgen bench shape-curve``: train a shape generator in chunks and measure its
exported EMA weights after each chunk: the learning curve that decides recipes.

Every ``--every`` optimiser steps the run stops (saving an accelerate state) and
``octgen bench shapes`` measures the pipeline it exported on the *validation* split
(``--per-category`` source and reference shapes per category, one unseen sketch
view each): category and attribute accuracy of prompt-generated meshes, sketch
IoU, whole objects, 1-NNA. One JSON line per point goes to
``OUTPUT_DIR/curve.jsonl``, the best point so far (category accuracy + sketch IoU
+ whole objects) is copied to ``OUTPUT_DIR/best/`` and the curve is drawn into
``OUTPUT_DIR/learning_curve.png``. Rerunning the command continues the run.
"""
from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path

from .curve import curve_loop


def add_arguments(p) -> None:
    from .._args import int_in_range

    p.add_argument("--config", required=True, help="training config of the run (.json)")
    p.add_argument("--every", type=int_in_range(1, 10_000_000), default=500, help="steps between measurements")
    p.add_argument("--until", type=int_in_range(1, 10_000_000), default=None,
                   help="stop at this step (default: the config's max_steps)")
    p.add_argument("--per-category", type=int_in_range(1, 1000), default=4,
                   help="validation source shapes per category per point (default 4)")
    p.add_argument("--seed", type=int_in_range(0, 2**62), default=0, help="generation seed")
    p.add_argument("--threads", type=int_in_range(0, 1024), default=0, help="torch threads while measuring")


def score(p: dict) -> float:
    """One number to rank curve points."""
    return p["category_accuracy"] + (p["sketch_iou_mean"] or 0.0) + p["whole_objects"]


def summarise(report: dict) -> dict:
    """The curve's figures from an ``octgen bench shapes`` report."""
    pf, sk, m = report["prompt_fidelity"], report["sketch_fidelity"], report["meshes"]["all"]
    return {"category_accuracy": pf["category_accuracy"], "attribute_accuracy": pf["attribute_accuracy"],
            "sketch_iou_mean": sk["iou_mean"] if sk else None, "whole_objects": m["whole_objects"],
            "largest_part_area_median": m["largest_part_area_median"], "watertight": m["watertight"],
            "nna_mean": report["distribution"]["mean"]["nna"], "cov_mean": report["distribution"]["mean"]["cov"],
            "text_to_mesh_s": report["speed"]["wall_median_s"]}


def measure(pipeline_dir, per_category: int, seed: int = 0, threads: int = 0) -> dict:
    """Validation-split figures of a shape pipeline folder (see :func:`summarise`)."""
    from . import shapes

    parser = ArgumentParser()
    shapes.add_arguments(parser)  # the bench's own defaults for everything not set here
    args = parser.parse_args(["--checkpoint", str(pipeline_dir), "--per-category", str(per_category),
                              "--sketch-views", "1", "--seed", str(seed), "--split", "val", "--iou-res", "64",
                              "--surface-points", "512", "--threads", str(threads)])
    return {"per_category": per_category, "split": "val", **summarise(shapes.run(args))}


def _line(p: dict) -> str:
    iou = p["sketch_iou_mean"]
    return (f"step {p['step']} cpu {p['train_cpu_seconds'] / 60:.1f} min | category {100 * p['category_accuracy']:.1f} "
            f"attributes {100 * (p['attribute_accuracy'] or 0):.1f} | sketch IoU {iou if iou is None else round(iou, 3)} "
            f"| whole {100 * p['whole_objects']:.1f} | 1-NNA {100 * p['nna_mean']:.1f}")


def run(args) -> dict:
    from ..train.config import TrainConfig
    from .plots import plot_shape_curve

    cfg = TrainConfig.from_file(args.config)

    def plot_fn(points, path):
        plot_shape_curve(points, path, f"{Path(cfg.output_dir).name}: validation split, "
                                       f"{args.per_category} shapes per category per point")

    points = curve_loop(cfg, args.every, args.until,
                        lambda d: measure(d, args.per_category, args.seed, args.threads), score, _line, plot_fn)
    return {"output_dir": str(cfg.output_dir), "points": points}
