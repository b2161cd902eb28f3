"""``octgen train CONFIG [--resume | --prepare-only]``: train the OctGen transformer
with accelerate, on the modality the config names (``--prepare-only`` builds its
training data and stops).

Multi-GPU / multi-node: ``accelerate launch [--multi_gpu --num_processes N ...]
-m octgen.cli.main train CONFIG`` (see :mod:`octgen.train.trainer`).
"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train the generator from a JSON/YAML config",
                       description="Train the OctGen transformer with accelerate (bf16 on GPU, gradient "
                                   "accumulation, cosine LR with warmup, EMA, save_state checkpoints, "
                                   "tensorboard logs). Launch with 'accelerate launch -m octgen.cli.main train "
                                   "CONFIG' for multi-GPU / multi-node.")
    p.add_argument("config", help="training config (.json, .yaml or .yml; fields of octgen.train.TrainConfig)")
    p.add_argument("--resume", action="store_true", help="continue from the latest saved state of output_dir")
    p.add_argument("--prepare-only", action="store_true",
                   help="build the config's training data (token shards, conditions) and stop")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="stop (after saving) at this step without changing the LR schedule: train in "
                        "resumable chunks")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import InputError
    from ..train.config import TrainConfig
    from ..train.trainer import train

    cfg = TrainConfig.from_file(args.config)
    if args.stop_at is not None and args.stop_at < 1:
        raise InputError(f"--stop-at must be >= 1, got {args.stop_at}")
    if args.prepare_only:
        ready = train(cfg, prepare_only=True)
        if "sequences" in ready:
            print(f"training data ready: {ready['sequences']:,} sequences of depth {ready['depth']}")
        else:  # the other jobs (tokenizer, classifier) report their own counts
            print("training data ready: " + ", ".join(f"{v:,} {k.replace('_', ' ')}" if isinstance(v, int) and k != "depth"
                                                      else f"{k.replace('_', ' ')} {v}" for k, v in ready.items()))
        return 0
    result = train(cfg, resume=args.resume, stop_at=args.stop_at)
    print(f"trained to step {result['step']} (loss {result['loss']:.4f}) in {result['seconds']:.0f} s; "
          f"states under {result['output_dir']}/checkpoints")
    return 0
