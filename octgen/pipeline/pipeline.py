"""``OctGenPipeline``: transformer + sampler + tokenizer decode, diffusers-style.

A pipeline folder::

    pipeline.json            class, modality, sampler defaults, training facts
    transformer/             OctGenTransformer.save_pretrained (config.json + fp16 safetensors)
    tokenizer/config.json    the frozen tokenizer (MoleculeTokenizer.save_pretrained)

``OctGenPipeline.from_pretrained(dir)`` rebuilds it; calling it samples token
sequences with :class:`octgen.sampling.OctreeSampler` and decodes them.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from ..errors import InputError
from ..export.atomic import atomic_path
from ..model import Condition, OctGenTransformer
from ..sampling.scheduler import SamplerConfig
from ..weights import DIFFUSERS_WEIGHTS_NAME, load_checked

PIPELINE_NAME = "pipeline.json"
PIPELINE_VERSION = 1


def save_transformer(directory: Path, model: OctGenTransformer) -> None:
    """``config.json`` and fp16 safetensors weights of the transformer (weights atomically)."""
    from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    model.save_config(directory)
    half = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / SAFETENSORS_WEIGHTS_NAME) as tmp:
        save_file(half, str(tmp), metadata={"format": "pt"})


def save_pipeline(out_dir: str | Path, model: OctGenTransformer, tokenizer, sampler: SamplerConfig | None = None,
                  extra: dict | None = None) -> Path:
    """Write a pipeline folder (weights as fp16 safetensors). ``pipeline.json`` is
    written last, so an interrupted save never looks complete."""
    out_dir = Path(out_dir)
    save_transformer(out_dir / "transformer", model)
    tokenizer.save_pretrained(out_dir / "tokenizer")
    info = {"_class_name": "OctGenPipeline", "version": PIPELINE_VERSION, "modality": "molecule",
            "tokenizer_class": type(tokenizer).__name__,
            "sampler": asdict(sampler or SamplerConfig()), **(extra or {})}
    with atomic_path(out_dir / PIPELINE_NAME) as tmp:
        tmp.write_text(json.dumps(info, indent=2, default=str) + "\n")
    return out_dir


def read_pipeline_info(directory: str | Path) -> dict:
    """The parsed ``pipeline.json`` of a checkpoint folder (one-line errors)."""
    directory = Path(directory)
    path = directory / PIPELINE_NAME
    if not path.is_file():
        raise InputError(f"{directory}: not an octgen checkpoint (missing {PIPELINE_NAME})")
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path}: unreadable pipeline description") from None
    if not isinstance(info, dict) or info.get("_class_name") != "OctGenPipeline" \
            or int(info.get("version", -1)) != PIPELINE_VERSION:
        raise InputError(f"{path}: not an OctGenPipeline version {PIPELINE_VERSION} description")
    return info


class OctGenPipeline:
    """Generate molecules (and later meshes) from a trained OctGen transformer.

    Attributes:
        transformer: the :class:`OctGenTransformer` (float32, eval mode).
        tokenizer: the frozen tokenizer that decodes token sequences.
        sampler_config: default :class:`SamplerConfig` of this checkpoint.
        info: the parsed ``pipeline.json``.
    """

    def __init__(self, transformer: OctGenTransformer, tokenizer, sampler_config: SamplerConfig | None = None,
                 info: dict | None = None):
        self.transformer = transformer.eval()
        self.tokenizer = tokenizer
        self.sampler_config = sampler_config or SamplerConfig()
        self.info = dict(info or {})

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "OctGenPipeline":
        """Load a pipeline folder written by :func:`save_pipeline`."""
        directory = Path(directory)
        path = directory / PIPELINE_NAME
        info = read_pipeline_info(directory)
        if info.get("modality") != "molecule":
            raise InputError(f"{path}: a '{info.get('modality')}' checkpoint; load it with "
                             f"octgen.pipeline.load_pipeline or ShapePipeline")
        from ..tokenize.molecule import MoleculeTokenizer

        tokenizer = MoleculeTokenizer.from_pretrained(directory / "tokenizer")
        model = load_checked(OctGenTransformer, directory / "transformer", DIFFUSERS_WEIGHTS_NAME,
                             "transformer").float()
        known = SamplerConfig.__dataclass_fields__
        sampler = SamplerConfig(**{k: v for k, v in info.get("sampler", {}).items() if k in known})
        return cls(model, tokenizer, sampler, info)

    def draw_sizes(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """(num,) leaf counts (atoms) drawn from the training histogram in
        ``pipeline.json``, or None when the model has no size condition."""
        if not self.transformer.cfg.num_sizes:
            return None
        hist = torch.tensor(self.info.get("size_histogram") or [], dtype=torch.float64)
        if hist.numel() != self.transformer.cfg.num_sizes or hist.sum() <= 0:
            raise InputError("this checkpoint is size-conditioned but its pipeline.json has no valid size_histogram")
        return torch.multinomial(hist, num, replacement=True, generator=generator)

    def sample_tokens(self, num: int, generator: torch.Generator | None = None, batch_size: int = 500,
                      progress=None, num_atoms: int | None = None, **overrides) -> list:
        """Sample ``num`` token sequences in batches.

        Args:
            num: how many.
            generator: seeds every random choice.
            batch_size: sequences sampled together.
            progress: optional callable ``progress(n_done)`` after each batch.
            num_atoms: for size-conditioned models, the number of atoms asked of
                every sample (default: drawn per sample from the training histogram).
            overrides: :class:`SamplerConfig` fields (steps, temperature, ...).
        """
        from dataclasses import replace

        from ..sampling.sampler import OctreeSampler

        sampler = OctreeSampler(self.transformer, replace(self.sampler_config, **overrides))
        num_sizes = self.transformer.cfg.num_sizes
        if num_atoms is not None and not 1 <= int(num_atoms) < max(num_sizes, 1):
            raise InputError(f"num_atoms must be in 1..{num_sizes - 1} for this checkpoint"
                             if num_sizes else "this checkpoint is not size-conditioned: it cannot take num_atoms")
        sizes = None
        if num_sizes:
            sizes = torch.full((num,), int(num_atoms)) if num_atoms is not None else self.draw_sizes(num, generator)
            # Batches of similar sizes pad each level little; results go back in draw order.
            order = torch.argsort(sizes, stable=True)
        out: list = [None] * num
        for start in range(0, num, batch_size):
            n = min(batch_size, num - start)
            rows = order[start:start + n] if sizes is not None else torch.arange(start, start + n)
            cond = Condition(size_B=sizes[rows]) if sizes is not None else None
            for r, t in zip(rows.tolist(), sampler.sample(n, generator=generator, cond=cond, payload_kind="atoms")):
                out[r] = t
            if progress is not None:
                progress(start + n)
        return out

    @torch.no_grad()
    def __call__(self, num: int = 1, generator: torch.Generator | None = None, batch_size: int = 500,
                 **overrides) -> list:
        """Generate ``num`` molecules (:class:`octgen.data.molecules.Molecule`, Angstrom, centred)."""
        return [self.tokenizer.decode(t) for t in self.sample_tokens(num, generator, batch_size, **overrides)]
