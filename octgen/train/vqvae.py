"""The shape VQ-VAE tokenizer's training job (``"job": "tokenizer"`` of the shapes
modality), run by the one training loop (:func:`octgen.train.trainer.train`).

Data: shapes given as signed distance functions are preprocessed once into
surface bands (:class:`octgen.tokenize.shape_sdf.ShapeBand`) and stored in
shards under ``$OCTGEN_CACHE/vqvae/<source>-d<fine depth>-<split>-<n>-s<seed>.pt``;
a training step only runs the network. Sources (setting ``source``):

- ``primitives``: random unions / smooth unions / differences of 1-6 spheres,
  boxes, rounded boxes, cylinders, tori and capsules under random rigid motions,
  from thin rods and plates to blobs (a generic local-geometry prior);
- ``shapes``: the procedural everyday-object set :mod:`octgen.data.shapes`;
- ``mix``: both, half each.

Run (CPU, one thread; the same config trains on GPU with bf16)::

    octgen train configs/shape-vqvae.json            # "modality": "shapes", "job": "tokenizer"
    octgen train configs/shape-vqvae.json --resume

At every saved state the weights are written with ``save_pretrained`` to
``<output_dir>/last`` and, when the validation loss is the best so far, to
``<output_dir>/best`` (the best is remembered in ``<output_dir>/best.json``, so
resuming keeps it); validation losses go to ``<output_dir>/val_log.jsonl``.
"""
from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path

import torch

from ..data.sdf import normalize_sdf
from ..errors import InputError
from ..export.atomic import atomic_path
from ..tokenize.shape_sdf import ShapeBand, sdf_to_band
from ..tokenize.shape_vqvae import ShapeVQVAE
from ..weights import check_config_json
from .job import TrainingJob


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


def _band(depth: int, r: dict) -> ShapeBand:
    out = r.get("out_sdf")
    return ShapeBand(depth, r["keys"], r["features"].float(), r["fine_sdf"].float(),
                     None if out is None else out.float())


def build_bands(data: str, split: str, n: int, depth: int, seed: int = 0, log=print,
                out_depth: int | None = None) -> list[ShapeBand]:
    """Preprocessed bands for one source/split, cached as a ``.pt`` shard file (with
    ``out_depth = depth + 1``, also the SDF at the band cells' children: a decoder's
    output level, :attr:`ShapeBand.out_sdf`)."""
    if data == "mix":
        half = n // 2
        a = build_bands("primitives", split, n - half, depth, seed, log, out_depth)
        b = build_bands("shapes", split, half, depth, seed, log, out_depth)
        return [x for pair in zip(a, b) for x in pair] + a[len(b):]
    extra = f"-o{out_depth}" if out_depth not in (None, depth) else ""
    path = _cache_root() / f"{data}-d{depth}{extra}-{split}-{n}-s{seed}.pt"
    if path.is_file():
        return [_band(depth, r) for r in torch.load(path, weights_only=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.time()
    for name, fn in _source_sdfs(data, split, n, seed):
        try:
            b = sdf_to_band(fn, depth, out_depth)
        except ValueError as e:
            log(f"skip {name}: {e}")
            continue
        rows.append({"keys": b.keys, "features": b.features.half(), "fine_sdf": b.fine_sdf.half(),
                     **({} if b.out_sdf is None else {"out_sdf": b.out_sdf.half()})})
        if len(rows) % 200 == 0:
            log(f"preprocessed {len(rows)}/{n} {data}/{split} shapes ({time.time() - t0:.0f} s)")
    with atomic_path(path) as tmp:
        torch.save(rows, tmp)
    return [_band(depth, r) for r in rows]


# --------------------------------------------------------------------------- the job

# What a config's "model" may set next to "init": the decoder growth of ShapeVQVAE.grow_decoder.
GROW_SETTINGS = ("output_blocks", "output_channels", "output_depth", "refine_blocks")


class ShapeVQVAEJob(TrainingJob):
    """Train :class:`~octgen.tokenize.shape_vqvae.ShapeVQVAE` (config ``model``: its
    keyword arguments).

    Settings (config ``data``): ``source`` (primitives | shapes | mix),
    ``num_train`` / ``num_val`` shapes, ``init`` (start from the weights of this
    saved tokenizer folder instead of random ones), ``freeze_encoder`` (tune the
    decoder only: the codes, and token files made with ``init``'s encoder, stay valid),
    ``code_flip`` (train the decoder on codes with up to this share of bits flipped,
    :meth:`ShapeVQVAE.forward`, so that it survives a generator's bit errors; the
    validation loss stays on clean codes). With ``init``, ``model`` may hold only
    ``refine_blocks`` (the decoder grows by zero-initialised blocks) and an output
    level (``output_depth`` = fine depth + 1, ``output_channels``, ``output_blocks``:
    the decoded grid gets twice the resolution), :meth:`ShapeVQVAE.grow_decoder`.
    """

    defaults = {"source": "mix", "num_train": 2400, "num_val": 48, "init": "", "freeze_encoder": False,
                "code_flip": 0.0}

    def prepare(self) -> dict:
        s, planned = self.settings, self._planned_model()
        depth = int(planned.get("fine_depth", inspect.signature(ShapeVQVAE.__init__).parameters["fine_depth"].default))
        if s["source"] not in ("primitives", "shapes", "mix"):
            raise InputError(f"train config: source must be primitives, shapes or mix, got '{s['source']}'")
        flip = s["code_flip"]
        if isinstance(flip, bool) or not isinstance(flip, (int, float)) or not 0 <= flip <= 0.5:
            raise InputError(f"train config: code_flip must be a share of bits from 0 to 0.5, got {s['code_flip']}")
        out = planned.get("output_depth")
        if out is not None and (isinstance(out, bool) or out not in (depth, depth + 1)):
            raise InputError(f"train config: output_depth must be the fine depth ({depth}) or one more, got {out!r}")
        self.train_set = build_bands(s["source"], "train", int(s["num_train"]), depth, self.cfg.seed, out_depth=out)
        self.val_set = build_bands(s["source"], "val", int(s["num_val"]), depth, self.cfg.seed, out_depth=out)
        return {"shapes": len(self.train_set), "val_shapes": len(self.val_set), "depth": depth}

    def _planned_model(self) -> dict:
        """The settings of the model ``build`` will make (its fine depth is the bands'
        depth, its output depth decides whether they carry ``out_sdf``): ``init``'s
        config with the decoder settings ``model`` may grow, or ``model`` itself."""
        if not self.settings["init"]:
            return dict(self.cfg.model)
        init = check_config_json(Path(self.settings["init"]) / "config.json")
        return {**init, **{k: v for k, v in self.cfg.model.items() if k in GROW_SETTINGS}}

    def num_items(self) -> int:
        return len(self.train_set)

    def build(self) -> ShapeVQVAE:
        try:
            if self.settings["init"]:
                model = ShapeVQVAE.load(self.settings["init"])
                extra = set(self.cfg.model) - set(GROW_SETTINGS)
                if extra:
                    raise ValueError(f"with init, model may only set {', '.join(GROW_SETTINGS)}, not {sorted(extra)}")
                if self.cfg.model:
                    model = model.grow_decoder(**self.cfg.model)
            else:
                model = ShapeVQVAE(**self.cfg.model)
        except (TypeError, ValueError) as e:
            raise InputError(f"train config: bad ShapeVQVAE settings ({e})") from None
        self.code_hash = model.code_hash()
        if self.settings["freeze_encoder"]:
            for m in model.encoder_modules():
                m.requires_grad_(False)
        return model.train()

    def loss(self, model, unwrapped, g: torch.Generator, device) -> tuple[torch.Tensor, dict]:
        idx = torch.randint(len(self.train_set), (self.cfg.batch_size,), generator=g).tolist()
        losses = model([self.train_set[i] for i in idx], code_flip=float(self.settings["code_flip"]), generator=g)
        return losses["loss"], {k: float(v.detach()) for k, v in losses.items() if k != "loss"}

    def on_save(self, unwrapped, ema, step: int, cpu_seconds: float) -> None:
        out = Path(self.cfg.output_dir)
        val = evaluate(unwrapped, self.val_set, self.cfg.batch_size)
        unwrapped.train()
        with open(out / "val_log.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "cpu_seconds": cpu_seconds, **val}) + "\n")
        best_path = out / "best.json"
        best = json.loads(best_path.read_text()) if best_path.is_file() else {"loss": float("inf")}
        unwrapped.save_pretrained(str(out / "last"))
        if val["loss"] < best["loss"]:
            unwrapped.save_pretrained(str(out / "best"))
            with atomic_path(best_path) as tmp:
                tmp.write_text(json.dumps({"step": step, "loss": val["loss"]}))
        if self.settings["freeze_encoder"] and unwrapped.code_hash() != self.code_hash:
            raise RuntimeError("the frozen encoder changed: the codes are no longer those of the start weights")


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
