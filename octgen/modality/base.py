"""``Modality``: what differs between the things octgen generates, behind one class.

The trainer, the sampler, the pipeline and the CLI never test a dataset name: a
training config names its modality (``"modality": "qm9"``), the trainer gets the
class from the registry, and every difference is one of these hooks:

- ``tokenizer()``: the frozen :class:`~octgen.tokenize.base.OctreeTokenizer`;
- ``prepare_data(tokenizer)``: the token shards (built once, then read), a
  dataset whose items are :class:`~octgen.model.sequence.NodeSequence`;
- ``model_settings(data)`` / ``build_model(transformer)``: extra
  transformer settings (a condition width...) and the module training optimises
  (the transformer, or the transformer with a trainable condition encoder);
- ``loss(model, batch, seqs, idx, data, generator, transformer)``: the training loss of a
  batch with its conditions (drawn from ``generator`` after the batch itself);
- ``export(module, out_dir, tokenizer, sampler, extra)``: the pipeline folder;
- ``evaluate(outputs)``: figures of merit of generated, decoded outputs;
- ``write_outputs(outputs, out_dir)``: generated outputs as files.

A modality is registered under its config name with :func:`register_modality`;
a new modality is a new tokenizer class plus a subclass of :class:`Modality` and
a config (``tests/test_toy_modality.py`` adds one without touching the library).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import InputError
from ..model.transformer import Condition
from ..pipeline.pipeline import save_pipeline
from ..sampling.scheduler import SamplerConfig
from ..train.config import TrainConfig
from ..train.objective import kind_counts, leaf_counts, masked_token_loss

_REGISTRY: dict[str, type["Modality"]] = {}


def register_modality(name: str):
    """Class decorator: register a :class:`Modality` subclass under ``name`` (the
    value of ``"modality"`` in training configs and in ``pipeline.json``)."""
    def deco(cls):
        if not (isinstance(cls, type) and issubclass(cls, Modality)):
            raise TypeError(f"{cls!r} is not a Modality subclass")
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return deco


def modality_names() -> list[str]:
    return sorted(_REGISTRY)


def get_modality(name: str) -> type["Modality"]:
    """The registered class of ``name``; one-line error for an unknown name."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown modality '{name}' (known: {', '.join(modality_names())})") from None


class Modality:
    """Base class: the hooks' defaults suit a modality with no condition encoder.

    Args:
        cfg: the training config (``cfg.data`` holds this modality's settings;
            :attr:`defaults` lists them with their defaults).

    Attributes:
        settings: ``defaults`` updated with the config's settings (unknown keys
            are refused).
        default_sampler: sampling defaults written into exported pipelines (the
            config's ``sampler`` entries override them).
    """

    name = ""
    defaults: dict = {}
    default_sampler: dict = {}
    legacy_settings_field = ""  # a TrainConfig field that held these settings before ``data``

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        # ``data`` holds the settings of the job a config runs: this modality's for the generator.
        given = {**(getattr(cfg, self.legacy_settings_field) if self.legacy_settings_field else {}),
                 **(cfg.data if cfg.job == "generator" else {})}
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            raise InputError(f"train config: unknown {self.name} setting '{unknown[0]}' "
                             f"(known: {', '.join(sorted(self.defaults)) or 'none'})")
        self.settings = {**self.defaults, **given}

    # ---------------------------------------------------------------- training
    jobs: dict = {}  # name -> TrainingJob class: what else this modality trains (config "job")

    def job(self, name: str):
        """The :class:`~octgen.train.job.TrainingJob` ``name`` of this modality."""
        if name not in self.jobs:
            raise InputError(f"train config: the {self.name} modality has no job '{name}' "
                             f"(known: {', '.join(['generator', *sorted(self.jobs)])})")
        return self.jobs[name](self.cfg)

    def tokenizer(self):
        """The frozen tokenizer, or None for a modality that only trains (no export)."""
        raise NotImplementedError

    def prepare_data(self, tokenizer):
        """The training sequences (built and cached on first use)."""
        raise NotImplementedError

    def payload_vocab_sizes(self, tokenizer) -> list[int]:
        return list(tokenizer.payload_vocab_sizes)

    def model_settings(self, data) -> dict:
        """Transformer settings the data fixes (beyond depth and payload sizes)."""
        return {}

    def build_model(self, transformer) -> torch.nn.Module:
        """The module training optimises (default: the transformer itself)."""
        return transformer

    def transformer_of(self, module) -> torch.nn.Module:
        """The transformer inside the module :meth:`build_model` made."""
        return module

    def components(self, module) -> dict[str, torch.nn.Module]:
        """The trained parts of ``module`` by their pipeline folder names (what
        ``init_from`` warm-starts); ``"transformer"`` always among them."""
        return {"transformer": self.transformer_of(module)}

    def loss(self, model, batch, seqs, idx, data, generator: torch.Generator, transformer) -> tuple:
        """``(loss, stats)`` of a batch (``model`` as prepared by accelerate,
        ``transformer`` the unwrapped one); the size (and count) condition when the model has one."""
        m = transformer.cfg
        size = batch.leaves_B if batch.leaves_B is not None else leaf_counts(seqs)
        count = kind_counts(seqs, m.count_value).to(batch.level_BT.device) if m.num_counts else None
        cond = Condition(size_B=size.to(batch.level_BT.device), count_B=count) if m.num_sizes else None
        return masked_token_loss(model, batch, cond)

    def export(self, module, out_dir: Path, tokenizer, sampler: dict, extra: dict) -> Path:
        """Write the pipeline folder of a trained (float32, EMA) ``module``."""
        return save_pipeline(out_dir, self.transformer_of(module), tokenizer,
                             SamplerConfig(**{**self.default_sampler, **sampler}), extra, modality=self.name)

    # ---------------------------------------------------------------- outputs
    @classmethod
    def evaluate(cls, outputs: list) -> dict:
        """Figures of merit of decoded outputs (default: their count)."""
        return {"num": len(outputs)}

    @classmethod
    def write_outputs(cls, outputs: list, out_dir: Path) -> list[str]:
        """Write decoded outputs under ``out_dir``; the file names written."""
        raise InputError(f"the {cls.name or 'this'} modality cannot write its outputs to files")
