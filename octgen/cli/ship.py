"""``octgen ship RUN CHECKPOINT --label TEXT``: make a learning-curve run's best
weights the next stage of a checkpoint folder (see :mod:`octgen.bench.ship`)."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("ship", help="make a curve run's best/ the next training stage of a checkpoint folder",
                       description="Copy RUN/best (the best measured EMA weights of 'octgen bench molecule-curve' "
                                   "or 'shape-curve') into CHECKPOINT as its next training stage: the curve and "
                                   "loss logs continue on one step / CPU-time axis, pipeline.json keeps the "
                                   "checkpoint's sampler defaults and adds the stage and its CPU time, figures of "
                                   "the previous weights move to ab/stage<K>_*, the learning curve is redrawn. "
                                   "Measure the new weights afterwards (octgen bench molecules / shapes).")
    p.add_argument("run", help="the run folder (its output_dir: best/, curve.jsonl, train_log.jsonl)")
    p.add_argument("checkpoint", help="the checkpoint folder to continue (created when missing)")
    p.add_argument("--label", required=True, help="the stage's name in curve.jsonl, e.g. '5: continued at lr 5e-4'")
    p.add_argument("--config", default="", help="the training config to name in pipeline.json's train_stages")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..bench.ship import ship

    r = ship(args.run, args.checkpoint, args.label, args.config)
    print(f"{r['checkpoint']}: stage {r['stage']} = step {r['step']} ({r['train_cpu_seconds']:.0f} CPU-s; "
          f"{r['train_cpu_seconds_all_stages']:.0f} CPU-s in all stages)")
    for m in r["moved"]:
        print(f"  moved {m}")
    return 0
