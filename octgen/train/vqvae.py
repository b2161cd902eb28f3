"""Train the shape VQ-VAE tokenizer with ``accelerate``.

Data: shapes given as signed distance functions are preprocessed once into
surface bands (:class:`octgen.tokenize.shape_sdf.ShapeBand`) and stored in
shards under ``$OCTGEN_CACHE/vqvae/<data>-<fine depth>-<split>-<n>-<seed>/``; a
training step only runs the network. Two sources:

- ``primitives``: random unions / smooth unions / differences of 1-6 spheres,
  boxes, rounded boxes, cylinders, tori and capsules under random rigid motions,
  from thin rods and plates to blobs (a generic local-geometry prior);
- ``shapes``: the procedural everyday-object set :mod:`octgen.data.shapes`;
- ``mix``: both, half each.

Run (CPU, one thread; the same code runs on GPU with bf16)::

    python -m octgen.train.vqvae --out runs/shape-vqvae --minutes 70

``--resume`` continues from ``<out>/state`` (accelerate ``save_state``). The best
weights by validation loss are written with ``save_pretrained`` to ``<out>/best``.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..data.sdf import normalize_sdf
from ..tokenize.shape_sdf import ShapeBand, sdf_to_band
from ..weights import DIFFUSERS_WEIGHTS_NAME, load_checked


@dataclass
class VQVAETrainConfig:
    """Everything a training run needs; saved as ``train_config.json`` beside the run."""

    out: str = "runs/shape-vqvae"
    data: str = "mix"  # primitives | shapes | mix
    num_train: int = 2400
    num_val: int = 48
    batch_size: int = 4
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    max_steps: int = 100_000
    minutes: float = 70.0
    log_every: int = 25
    eval_every: int = 250
    seed: int = 0
    threads: int = 1
    model: dict = field(default_factory=dict)  # ShapeVQVAE keyword arguments
    init: str = ""  # start from these saved weights (a tokenizer folder) instead of random ones
    freeze_encoder: bool = False  # tune the decoder only: the codes (and token files) stay valid


# --------------------------------------------------------------------------- random primitive SDFs


def _random_rotation(gen: torch.Generator) -> torch.Tensor:
    q = torch.randn(4, generator=gen)
    w, x, y, z = (q / q.norm()).tolist()
    return torch.tensor([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                         [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                         [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _uniform(gen, lo, hi, n=None):
    if n is None:
        return float(lo + (hi - lo) * torch.rand((), generator=gen))
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _log_uniform(gen, lo, hi, n=None):
    return torch.exp(torch.as_tensor(_uniform(gen, math.log(lo), math.log(hi), n))).tolist() if n \
        else math.exp(_uniform(gen, math.log(lo), math.log(hi)))


def _primitive(gen: torch.Generator):
    """One random primitive SDF in its local frame, as a closure over tensors."""
    kind = int(torch.randint(6, (1,), generator=gen))
    if kind == 0:
        r = _log_uniform(gen, 0.08, 0.6)
        return lambda p: p.norm(dim=-1) - r
    if kind in (1, 2):
        b = torch.tensor(_log_uniform(gen, 0.02, 0.6, 3))
        rr = 0.0 if kind == 1 else _uniform(gen, 0.0, 0.5) * float(b.min())
        b = b - rr

        def box(p):
            q = p.abs() - b
            return q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0) - rr
        return box
    if kind == 3:
        r, hh = _log_uniform(gen, 0.02, 0.5), _log_uniform(gen, 0.03, 0.6)

        def cyl(p):
            d = torch.stack([p[:, [0, 2]].norm(dim=-1) - r, p[:, 1].abs() - hh], dim=-1)
            return d.clamp(min=0).norm(dim=-1) + d.max(dim=-1).values.clamp(max=0)
        return cyl
    if kind == 4:
        big = _uniform(gen, 0.12, 0.55)
        small = _uniform(gen, 0.02, 0.45) * big

        def torus(p):
            q = torch.stack([p[:, [0, 2]].norm(dim=-1) - big, p[:, 1]], dim=-1)
            return q.norm(dim=-1) - small
        return torus
    length, r = _uniform(gen, 0.1, 0.7), _log_uniform(gen, 0.02, 0.25)

    def capsule(p):
        y = p[:, 1].clamp(-length / 2, length / 2)
        return torch.stack([p[:, 0], p[:, 1] - y, p[:, 2]], dim=-1).norm(dim=-1) - r
    return capsule


def random_primitive_sdf(gen: torch.Generator):
    """A random composite SDF (1-6 parts), not yet normalised."""
    n = int(torch.randint(1, 7, (1,), generator=gen))
    parts = []
    for _ in range(n):
        rot = _random_rotation(gen)
        t = _uniform(gen, -0.45, 0.45, 3)
        op = int(torch.randint(10, (1,), generator=gen))  # 0-5 union, 6-7 smooth union, 8-9 subtract
        k = _uniform(gen, 0.02, 0.15)
        parts.append((_primitive(gen), rot, t, op, k))

    def sdf(p: torch.Tensor) -> torch.Tensor:
        d = None
        for i, (f, rot, t, op, k) in enumerate(parts):
            v = f((p - t) @ rot)
            if d is None:
                d = v
            elif op <= 5:
                d = torch.minimum(d, v)
            elif op <= 7:
                hmix = (0.5 + 0.5 * (v - d) / k).clamp(0, 1)
                d = v + (d - v) * hmix - k * hmix * (1 - hmix)
            else:
                d = torch.maximum(d, -v)
        return d
    return sdf


# --------------------------------------------------------------------------- shards


def _cache_root() -> Path:
    from ..data.cache import cache_dir

    return cache_dir() / "vqvae"


def _source_sdfs(data: str, split: str, n: int, seed: int):
    """Yield (name, sdf_fn) for ``n`` shapes of one source and split."""
    if data == "primitives":
        base = {"train": 0, "val": 1 << 20, "test": 2 << 20}[split] + seed * (3 << 20)
        i = 0
        made = 0
        while made < n:
            gen = torch.Generator().manual_seed(base + i)
            i += 1
            fn = normalize_sdf(random_primitive_sdf(gen))
            if fn is not None:
                made += 1
                yield f"prim-{split}-{base + i - 1}", fn
    elif data == "shapes":
        from ..data.shapes import ShapeDataset

        ds = ShapeDataset(split, size=n, seed=seed)
        for i in range(min(n, len(ds))):
            s = ds[i]
            yield f"{s.category}-{split}-{s.index}", s.sdf
    else:
        raise ValueError(f"unknown data source '{data}'")


def build_bands(data: str, split: str, n: int, depth: int, seed: int = 0, log=print) -> list[ShapeBand]:
    """Preprocessed bands for one source/split, cached as a ``.pt`` shard file."""
    if data == "mix":
        half = n // 2
        a = build_bands("primitives", split, n - half, depth, seed, log)
        b = build_bands("shapes", split, half, depth, seed, log)
        return [x for pair in zip(a, b) for x in pair] + a[len(b):]
    path = _cache_root() / f"{data}-d{depth}-{split}-{n}-s{seed}.pt"
    if path.is_file():
        rows = torch.load(path, weights_only=True)
        return [ShapeBand(depth, r["keys"], r["features"].float(), r["fine_sdf"].float()) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.time()
    for name, fn in _source_sdfs(data, split, n, seed):
        try:
            b = sdf_to_band(fn, depth)
        except ValueError as e:
            log(f"skip {name}: {e}")
            continue
        rows.append({"keys": b.keys, "features": b.features.half(), "fine_sdf": b.fine_sdf.half()})
        if len(rows) % 200 == 0:
            log(f"preprocessed {len(rows)}/{n} {data}/{split} shapes ({time.time() - t0:.0f} s)")
    from ..export.atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(rows, tmp)
    return [ShapeBand(depth, r["keys"], r["features"].float(), r["fine_sdf"].float()) for r in rows]


# --------------------------------------------------------------------------- training loop


def _lr_at(step: int, cfg: VQVAETrainConfig, total: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))


def train(cfg: VQVAETrainConfig, resume: bool = False) -> dict:
    """Train; returns the final metrics dict (also written to ``<out>/train_log.jsonl``)."""
    from accelerate import Accelerator

    from ..tokenize.shape_vqvae import ShapeVQVAE

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    accel = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no")
    log_file = open(out / "train_log.jsonl", "a")

    def log(msg):
        if accel.is_main_process:
            print(msg, flush=True)

    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    if cfg.init:
        model = load_checked(ShapeVQVAE, cfg.init, DIFFUSERS_WEIGHTS_NAME, "shape tokenizer").float()
    else:
        model = ShapeVQVAE(**cfg.model)
    code_hash = model.code_hash()
    if cfg.freeze_encoder:
        for m in model.encoder_modules():
            m.requires_grad_(False)
    depth = model.config.fine_depth
    train_set = build_bands(cfg.data, "train", cfg.num_train, depth, cfg.seed, log)
    val_set = build_bands(cfg.data, "val", cfg.num_val, depth, cfg.seed, log)
    log(f"{len(train_set)} train / {len(val_set)} val shapes; "
        f"{sum(p.numel() for p in model.parameters()):,} parameters")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    model, opt = accel.prepare(model, opt)
    state_dir = out / "state"
    progress = {"step": 0, "best_val": float("inf"), "elapsed_s": 0.0}
    if resume and state_dir.is_dir():
        accel.load_state(str(state_dir))
        progress = json.loads((out / "progress.json").read_text())
        log(f"resumed at step {progress['step']}")
    gen = torch.Generator().manual_seed(cfg.seed + progress["step"])
    t_start = time.time() - progress["elapsed_s"]
    budget_s = cfg.minutes * 60
    # The cosine schedule spans the time budget: estimate total steps from the pace so far.
    est_total = cfg.max_steps
    running: dict[str, float] = {}
    step = progress["step"]
    unwrapped = accel.unwrap_model(model)
    while step < cfg.max_steps and time.time() - t_start < budget_s:
        elapsed = time.time() - t_start
        if step > 50:
            est_total = min(cfg.max_steps, int(step * budget_s / max(elapsed, 1e-6)))
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg, est_total)
        idx = torch.randint(len(train_set), (cfg.batch_size,), generator=gen).tolist()
        model.train()
        with accel.autocast():
            losses = model([train_set[i] for i in idx])
        accel.backward(losses["loss"])
        accel.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        for k, v in losses.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        if step % cfg.log_every == 0:
            row = {k: v / cfg.log_every for k, v in running.items()}
            row.update(step=step, lr=opt.param_groups[0]["lr"], elapsed_min=(time.time() - t_start) / 60)
            log_file.write(json.dumps(row) + "\n")
            log_file.flush()
            log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            running = {}
        if step % cfg.eval_every == 0:
            val = evaluate(unwrapped, val_set, cfg.batch_size)
            log(f"val step={step} " + " ".join(f"{k}={v:.4g}" for k, v in val.items()))
            log_file.write(json.dumps({"val": val, "step": step}) + "\n")
            if val["loss"] < progress["best_val"]:
                progress["best_val"] = val["loss"]
                progress["best_step"] = step
                if accel.is_main_process:
                    unwrapped.save_pretrained(str(out / "best"))
            progress.update(step=step, elapsed_s=time.time() - t_start)
            accel.save_state(str(state_dir))
            (out / "progress.json").write_text(json.dumps(progress))
    val = evaluate(unwrapped, val_set, cfg.batch_size)
    if val["loss"] < progress["best_val"]:
        progress.update(best_val=val["loss"], best_step=step)
        unwrapped.save_pretrained(str(out / "best"))
    unwrapped.save_pretrained(str(out / "last"))
    if cfg.freeze_encoder and unwrapped.code_hash() != code_hash:
        raise RuntimeError("the frozen encoder changed: the codes are no longer those of the start weights")
    progress.update(step=step, elapsed_s=time.time() - t_start)
    accel.save_state(str(state_dir))
    (out / "progress.json").write_text(json.dumps(progress))
    log(f"done: step {step}, {progress['elapsed_s'] / 60:.1f} min, best val loss {progress['best_val']:.4f} "
        f"at step {progress.get('best_step')}")
    return {"val": val, **progress}


@torch.no_grad()
def evaluate(model, bands: list[ShapeBand], batch_size: int) -> dict:
    """Mean validation losses (teacher-forced structure) over ``bands``."""
    model.eval()
    tot: dict[str, float] = {}
    n = 0
    for i in range(0, len(bands), batch_size):
        losses = model(bands[i:i + batch_size])
        for k, v in losses.items():
            tot[k] = tot.get(k, 0.0) + float(v)
        n += 1
    return {k: v / max(n, 1) for k, v in tot.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m octgen.train.vqvae", description="Train the shape VQ-VAE tokenizer.")
    p.add_argument("--out", default=VQVAETrainConfig.out)
    p.add_argument("--data", default=VQVAETrainConfig.data, choices=("primitives", "shapes", "mix"))
    p.add_argument("--num-train", type=int, default=VQVAETrainConfig.num_train)
    p.add_argument("--num-val", type=int, default=VQVAETrainConfig.num_val)
    p.add_argument("--batch-size", type=int, default=VQVAETrainConfig.batch_size)
    p.add_argument("--lr", type=float, default=VQVAETrainConfig.lr)
    p.add_argument("--minutes", type=float, default=VQVAETrainConfig.minutes)
    p.add_argument("--max-steps", type=int, default=VQVAETrainConfig.max_steps)
    p.add_argument("--eval-every", type=int, default=VQVAETrainConfig.eval_every)
    p.add_argument("--threads", type=int, default=VQVAETrainConfig.threads)
    p.add_argument("--seed", type=int, default=VQVAETrainConfig.seed)
    p.add_argument("--model", default="{}", help="ShapeVQVAE keyword arguments as JSON")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--init", default="", help="start from the weights of this saved tokenizer folder")
    p.add_argument("--freeze-encoder", action="store_true",
                   help="train the decoder only (token files made with --init's encoder stay valid)")
    a = p.parse_args(argv)
    cfg = VQVAETrainConfig(out=a.out, data=a.data, num_train=a.num_train, num_val=a.num_val, batch_size=a.batch_size,
                           lr=a.lr, minutes=a.minutes, max_steps=a.max_steps, eval_every=a.eval_every,
                           threads=a.threads, seed=a.seed, model=json.loads(a.model), init=a.init,
                           freeze_encoder=a.freeze_encoder)
    train(cfg, resume=a.resume)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
