"""``TrainConfig``: everything ``octgen train CONFIG`` reads from its JSON / YAML file."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import InputError
from ..sampling.scheduler import SamplerConfig


def parse_level_loss_scale(value) -> dict[int, float]:
    """``{level: factor}`` with int levels >= 0 and finite factors > 0 (JSON keys are strings)."""
    if not isinstance(value, dict):
        raise InputError(f"train config: level_loss_scale must be a mapping of level to factor, got {value!r}")
    out = {}
    for k, v in value.items():
        try:
            level = -1 if isinstance(k, bool) else int(k)
        except (TypeError, ValueError):
            level = -1
        if level < 0:
            raise InputError(f"train config: level_loss_scale keys are levels (0, 1, ...), got {k!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v < float("inf")):
            raise InputError(f"train config: level_loss_scale[{k}] must be a number > 0, got {v!r}")
        out[level] = float(v)
    return out


@dataclass
class TrainConfig:
    """One training run of the OctGen transformer.

    Attributes:
        output_dir: run folder: ``checkpoints/step_N`` (accelerate states),
            ``logs/`` (tensorboard), ``train_log.jsonl``, and what the job exports
            (the generator: ``pipeline/``, the EMA weights as a pipeline folder).
        modality: the registry name of the modality (:mod:`octgen.modality`):
            ``"qm9"``, ``"shapes"``, ``"synthetic"`` (random octrees, for tests and
            smoke runs) or one a plugin registered.
        dataset: the older name of ``modality`` (configs that set it still load).
        job: what the run trains: ``"generator"`` (the OctGen transformer) or a job
            the modality offers (shapes: ``"tokenizer"``, the VQ-VAE, and
            ``"classifier"``, the shape classifier).
        data: the settings of the job: the modality's own for the generator (see
            its class's ``defaults``), the job's otherwise.
        shard_dir: preprocessed token shards; empty = the modality's default folder.
        rotations: (qm9) random-rotation copies of each training molecule in the shards
            (0 = the original orientation only).
        max_train_sequences: (qm9) use only the first N training sequences (0 = all).
        model_size: a name of ``octgen.model.MODEL_SIZES`` (generator job).
        model: overrides of the named size (dim, n_layers, ... ``OctGenConfig`` fields),
            or for another job the keyword arguments of its model class.
        init_from: (generator) a pipeline folder (or its ``transformer/`` folder)
            whose weights start the model instead of a random init: a fine-tune
            (the transformer, and the conditioner of a shapes pipeline when the folder
            has one).
            Every weight of that model must fit this one; this model's parameters
            that it lacks (a newly added head, say) keep their init.
        batch_size: sequences per micro-batch per process.
        length_bucket: 0 draws batches uniformly; N > 0 draws each batch among N
            sequences of similar length (less padding, same coverage).
        objective: ``"all_levels"`` (every level a target in every pass, with
            probe copies) or ``"one_level"`` (one target level per row); see
            :mod:`octgen.train.objective`.
        node_deletion, node_deletion_rows: (``"all_levels"`` only) Uni-3DAR's coarse-node
            deletion: in a share ``node_deletion_rows`` of the rows, up to a fraction
            ``node_deletion`` of one structure level's nodes are deleted with their
            subtrees (see :func:`octgen.train.objective.make_all_levels_batch`); 0 is off.
            ``node_deletion_size``: ``"true"`` (the size condition stays the true leaf
            count) or ``"kept"`` (the corrupted tree's count; coarser probes untargeted).
        level_sampling: each level's share of the training signal: ``"tokens"``
            (proportional to its token count), ``"sqrt"`` or ``"uniform"``
            (see :func:`octgen.train.objective.level_weights`). ``"one_level"`` draws
            each row's target level so; ``"all_levels"`` weights the loss of each
            level's masked tokens so (:func:`octgen.train.objective.level_loss_weights`).
        level_loss_scale: (``"all_levels"`` only) ``{level: factor}`` multiplies the loss
            weight of that level's masked tokens on top of ``level_sampling`` (levels
            0..D, D the leaves; JSON keys are strings), e.g. ``{"3": 3, "6": 0.5}`` to
            move training signal from the leaf offsets onto the level-3 cell choice.
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
        synthetic, shapes: the settings of those modalities in configs written before
            ``data`` (same keys; ``data`` entries win).
    """

    output_dir: str = "runs/qm9-xs"
    modality: str = ""
    dataset: str = ""
    job: str = "generator"
    data: dict = field(default_factory=dict)
    shard_dir: str = ""
    rotations: int = 0
    max_train_sequences: int = 0
    model_size: str = "xs"
    model: dict = field(default_factory=dict)
    init_from: str = ""
    batch_size: int = 32
    length_bucket: int = 0
    objective: str = "one_level"
    level_sampling: str = "tokens"
    level_loss_scale: dict = field(default_factory=dict)
    node_deletion: float = 0.0
    node_deletion_rows: float = 0.5
    node_deletion_size: str = "true"
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
    synthetic: dict = field(default_factory=dict)
    shapes: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.modality and self.dataset and self.modality != self.dataset:
            raise InputError(f"train config: modality '{self.modality}' and dataset '{self.dataset}' differ "
                             f"(dataset is the older name of modality: give one)")
        self.modality = self.dataset = str(self.modality or self.dataset or "qm9")
        for name in ("data", "synthetic", "shapes"):
            if not isinstance(getattr(self, name), dict):
                raise InputError(f"train config: {name} must be a mapping of settings")
        if self.objective not in ("one_level", "all_levels"):
            raise InputError(f"train config: objective must be one_level or all_levels, got '{self.objective}'")
        for name in ("node_deletion", "node_deletion_rows"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise InputError(f"train config: {name} must be a number in [0, 1], got {v!r}")
        if self.node_deletion_size not in ("true", "kept"):
            raise InputError(f"train config: node_deletion_size must be true or kept, got '{self.node_deletion_size}'")
        if self.node_deletion and self.objective != "all_levels":
            raise InputError("train config: node_deletion needs objective all_levels")
        if self.level_sampling not in ("tokens", "sqrt", "uniform"):
            raise InputError(f"train config: level_sampling must be tokens, sqrt or uniform, got '{self.level_sampling}'")
        self.level_loss_scale = parse_level_loss_scale(self.level_loss_scale)
        if self.level_loss_scale and self.objective != "all_levels":
            raise InputError("train config: level_loss_scale needs objective all_levels")
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
