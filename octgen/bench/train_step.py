"""``octgen bench train-step``: the cost of one optimiser step of a training config,
in fp32 and under bf16 autocast.

The config's own job, data, batches (the same ``batch_generator`` draws as
``octgen train``), AdamW, learning-rate schedule, gradient clipping and EMA step; one copy of the model
and optimiser per precision, run in alternating blocks of ``--block`` steps so
that a change in the machine's load hits every precision alike. Reported per
precision: median wall seconds and process CPU-seconds per step (the learning
curves' axis), steps per CPU-minute, and the mean loss of the timed steps; and,
on the same weights and batch before any step, the loss under each precision
(how far bf16's loss is from fp32's).

bf16 autocast on a CPU is fast only where oneDNN has native bf16 kernels (AVX-512
BF16 or AMX: ``lscpu`` lists ``avx512_bf16`` / ``amx_bf16``); elsewhere it is
emulated and slower. Speed alone does not decide a recipe: a faster precision is
kept only if its learning curve (quality against CPU-minutes) is better.
"""
from __future__ import annotations

import copy
import statistics
import time

import torch

from ..errors import InputError
from .timing import machine_summary

PRECISIONS = ("no", "bf16")


def add_arguments(p) -> None:
    p.add_argument("config", help="training config (.json / .yaml), as for octgen train")
    p.add_argument("--precision", default="no,bf16",
                   help="comma-separated precisions to time: no (fp32), bf16 (autocast) (default no,bf16)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per precision (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per precision first (default 3)")
    p.add_argument("--block", type=int, default=5, help="steps per precision before switching (default 5)")
    p.add_argument("--init-from", default=None,
                   help="weights to start from (default: the config's init_from; 'none': fresh weights)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")


def _precisions(text: str) -> list[str]:
    out = [p.strip() for p in str(text).split(",") if p.strip()]
    bad = [p for p in out if p not in PRECISIONS]
    if not out or bad:
        raise InputError(f"--precision: choose among {', '.join(PRECISIONS)}, comma-separated; got '{text}'")
    return list(dict.fromkeys(out))


class _Arm:
    """One precision: its own model, optimiser and EMA, stepped on the run's batches."""

    def __init__(self, precision: str, job, model, cfg):
        from diffusers.training_utils import EMAModel

        from ..train.trainer import cosine_with_warmup

        self.precision, self.job, self.cfg = precision, job, cfg
        self.model = copy.deepcopy(model).train()
        self.opt = torch.optim.AdamW(job.trainable(self.model), lr=cfg.lr, betas=cfg.betas,
                                     weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, cosine_with_warmup(cfg.warmup_steps, cfg.max_steps))
        self.ema = EMAModel(self.model.parameters(), decay=cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.wall, self.cpu, self.losses = [], [], []

    def autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def loss_of(self, step: int) -> torch.Tensor:
        from ..train.trainer import batch_generator

        g = batch_generator(self.cfg.seed, step, 0, 0)
        with self.autocast():
            loss, _ = self.job.loss(self.model, self.model, g, torch.device("cpu"))
        return loss

    def step(self, step: int, timed: bool) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        loss = self.loss_of(step)
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.sched.step()
        if self.ema is not None:
            self.ema.step(self.model.parameters())
        if timed:
            self.wall.append(time.perf_counter() - t0)
            self.cpu.append(time.process_time() - c0)
            self.losses.append(float(loss.detach()))


def run(args) -> dict:
    from ..train.config import TrainConfig
    from ..train.trainer import make_job

    precisions = _precisions(args.precision)
    for name in ("steps", "block", "threads"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise InputError(f"--warmup must be >= 0, got {args.warmup}")
    cfg = TrainConfig.from_file(args.config)
    if args.init_from is not None:
        cfg.init_from = "" if args.init_from.lower() == "none" else args.init_from
    if cfg.job != "generator":
        raise InputError(f"{args.config}: train-step times generator configs; this one trains a {cfg.job}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(cfg.seed)
    job = make_job(cfg)
    job.prepare()
    model = job.build()
    arms = [_Arm(p, job, model, cfg) for p in precisions]
    # The same weights and batch before any step: how far each precision's loss is from fp32's.
    with torch.no_grad():
        first = {a.precision: float(a.loss_of(0)) for a in arms}
    step = 0
    for _ in range(args.warmup):
        for a in arms:
            a.step(step, timed=False)
        step += 1
    done = 0
    while done < args.steps:
        n = min(args.block, args.steps - done)
        for a in arms:
            for k in range(n):
                a.step(step + k, timed=True)
        step, done = step + n, done + n
    machine = machine_summary()
    print(f"machine: {machine}")
    print(f"config {args.config}: batch {cfg.batch_size}, {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{args.steps} timed steps per precision after {args.warmup} warm-up, blocks of {args.block}")
    rows = {}
    for a in arms:
        wall, cpu = statistics.median(a.wall), statistics.median(a.cpu)
        rows[a.precision] = {"wall_s_per_step": wall, "cpu_s_per_step": cpu, "steps_per_cpu_minute": 60.0 / cpu,
                             "mean_loss": statistics.fmean(a.losses), "first_loss": first[a.precision]}
        print(f"  {a.precision:>4}: {wall:.3f} s / step wall, {cpu:.3f} CPU-s / step ({60.0 / cpu:.1f} steps per "
              f"CPU-minute), mean loss {rows[a.precision]['mean_loss']:.4f}, loss before any step {first[a.precision]:.4f}")
    out = {"bench": "train-step", "machine": machine, "config": str(args.config), "batch_size": cfg.batch_size,
           "precisions": rows}
    if "no" in rows and "bf16" in rows:
        out["bf16_speedup_cpu"] = rows["no"]["cpu_s_per_step"] / rows["bf16"]["cpu_s_per_step"]
        out["bf16_first_loss_diff"] = rows["bf16"]["first_loss"] - rows["no"]["first_loss"]
        print(f"bf16 autocast: {out['bf16_speedup_cpu']:.2f}x fp32's steps per CPU-second; loss on the same weights "
              f"and batch {out['bf16_first_loss_diff']:+.4f} from fp32's")
    return out
