"""``TrainingJob``: what one training run optimises, for the one training loop
(:func:`octgen.train.trainer.train`).

The loop owns everything jobs share: ``accelerate`` (devices, bf16, gradient
accumulation, data parallelism), AdamW with the cosine LR schedule, gradient
clipping, EMA, the log, and ``save_state`` checkpoints with exact resume (batch
``s`` of process ``p`` is drawn from a generator seeded by ``(seed, s, micro-step,
p)`` only). A job says what is trained and how a batch is scored:

- ``prepare()``: build (or read the cached) training data; returns a summary dict;
- ``build()``: the module to optimise (``trainable(module)`` its trained parameters);
- ``loss(model, unwrapped, generator, device)``: draw a batch from ``generator``
  and return ``(loss, stats)``;
- ``on_save(unwrapped, ema, step, cpu_seconds)``: after each saved state, on the
  main process: export, evaluate, keep the best weights...

The generator's job comes from the config's modality
(:class:`~octgen.train.trainer.GeneratorJob`); a modality may offer more jobs
(the shapes modality trains its VQ-VAE tokenizer and its shape classifier this
way), chosen by the config's ``"job"``.
"""
from __future__ import annotations

import torch

from ..errors import InputError
from .config import TrainConfig


class TrainingJob:
    """Base class (see the module docstring).

    Attributes:
        defaults: the job's settings (config ``data``) with their defaults.
        settings: ``defaults`` updated with the config's ``data``.
    """

    defaults: dict = {}

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        unknown = sorted(set(cfg.data) - set(self.defaults))
        if unknown:
            raise InputError(f"train config: unknown {cfg.job} setting '{unknown[0]}' "
                             f"(known: {', '.join(sorted(self.defaults)) or 'none'})")
        self.settings = {**self.defaults, **cfg.data}

    def prepare(self) -> dict:
        raise NotImplementedError

    def build(self) -> torch.nn.Module:
        raise NotImplementedError

    def trainable(self, module: torch.nn.Module) -> list[torch.nn.Parameter]:
        return [p for p in module.parameters() if p.requires_grad]

    def num_items(self) -> int:
        """Training items (sequences, shapes...) for the start-up line."""
        raise NotImplementedError

    def loss(self, model, unwrapped, generator: torch.Generator, device) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def on_save(self, unwrapped, ema, step: int, cpu_seconds: float) -> None:
        """Called on the main process after every saved state."""
