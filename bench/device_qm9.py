"""One prepared training run of a molecule model on the lent GPU (the workplace's
``device`` tool: one H200, about 15 minutes of device time a session, no network,
nothing kept between sessions, at most 8 files of 16 MB back).

The run is timed to a wall-clock budget: a short probe measures the seconds per
optimiser step, then the cosine schedule is re-timed (``max_steps``) so that it ends
inside the budget, and the run resumes from the probe's state. The EMA export (a
pipeline folder, fp16 weights), the training log and a summary land under ``--out``;
score them on the CPU machine with ``octgen bench molecules --checkpoint DIR``.

Prepared here, once per session (both folders are git-ignored; they travel with
``carry``; with the repository, about 45 MB of the 64 MiB a call may send):

    octgen train configs/qm9-s-gpu.json --prepare-only     # QM9 token shards, 21 MB compressed
    mkdir -p .devcache/shards && cp -r ${OCTGEN_CACHE:-~/.cache/octgen}/shards/qm9-train-r0-s0 .devcache/shards/
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 importlib_metadata

(the device image has torch, accelerate, transformers, safetensors, scipy and numpy, not
diffusers; the QM9 modality trains from the shards without rdkit or qm9pack). On the
device, one ``run`` call with ``carry`` [".devcache", ".whl"] and a 600 s timeout:

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && \
    export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 && \
    python3 bench/device_qm9.py configs/qm9-s-gpu.json --budget-s 420 --out $OUT

Then, here: ``octgen bench molecules --checkpoint <files_at>/pipeline --num 10000 ...`` and,
if it is better, ship it. Checked on the CPU (``tests/test_device_script.py``, and this
command with ``--size tiny --batch-size 8 --threads 1`` on the real shards with trimesh,
rdkit, qm9pack and gradio made unimportable); never run on the GPU yet: the first device
session should read the probe's seconds per step and the loss in ``train_log.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="training config (fields of octgen.train.TrainConfig)")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="wall-clock seconds for the whole run, probe and exports included (default 420)")
    p.add_argument("--probe-steps", type=int, default=100, help="steps timed before the schedule is set (default 100)")
    p.add_argument("--out", required=True, help="folder for the export, the log and summary.json")
    p.add_argument("--shards", default=str(ROOT / ".devcache/shards/qm9-train-r0-s0"),
                   help="token shards to train on (default: the carried .devcache copy)")
    p.add_argument("--run-dir", default="/tmp/octgen-device-run", help="scratch run folder (states stay there)")
    p.add_argument("--size", default=None, help="override the config's model_size (tiny: a CPU dry run)")
    p.add_argument("--batch-size", type=int, default=None, help="override the config's batch_size (a CPU dry run)")
    p.add_argument("--threads", type=int, default=None, help="override the config's num_threads (a CPU dry run)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from octgen.train.config import TrainConfig
    from octgen.train.shards import read_index
    from octgen.train.trainer import train

    t_start = time.perf_counter()
    cfg = TrainConfig.from_file(args.config)
    run_dir = Path(args.run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    overrides = {k: v for k, v in (("model_size", args.size), ("batch_size", args.batch_size),
                                   ("num_threads", args.threads)) if v is not None}
    cfg = replace(cfg, output_dir=str(run_dir), shard_dir=str(args.shards), save_every=args.probe_steps, **overrides)
    if read_index(args.shards) is None:
        print(f"no token shards at {args.shards} (see this script's docstring)", file=sys.stderr)
        return 2

    probe = train(cfg, stop_at=args.probe_steps)
    per_step = probe["seconds"] / args.probe_steps  # includes the first steps' warm-up: on the safe side
    export_s = max(10.0, 0.05 * args.budget_s)
    left = args.budget_s - (time.perf_counter() - t_start) - export_s
    steps = args.probe_steps + max(0, int(left / per_step))
    save_every = max(args.probe_steps, int(60.0 / per_step))  # an export about every minute, in case of a kill
    cfg = replace(cfg, max_steps=steps, save_every=save_every)
    print(f"probe: {per_step:.3f} s/step; training to step {steps} (save every {save_every})", flush=True)
    result = train(cfg, resume=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    export = out / "pipeline"
    shutil.rmtree(export, ignore_errors=True)
    shutil.copytree(run_dir / "pipeline", export)
    shutil.copy(run_dir / "train_log.jsonl", out / "train_log.jsonl")
    summary = {"config": args.config, "model_size": cfg.model_size, "parameters": result["parameters"],
               "steps": result["step"], "loss": result["loss"], "seconds_per_step": per_step,
               "train_seconds": probe["seconds"] + result["seconds"],
               "wall_seconds": time.perf_counter() - t_start, "budget_s": args.budget_s}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
