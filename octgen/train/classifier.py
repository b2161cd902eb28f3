"""The shape classifier's training job (``"job": "classifier"`` of the shapes
modality), run by the one training loop (:func:`octgen.train.trainer.train`).

The classifier (:class:`~octgen.metrics.shape_classifier.ShapeClassifier`) reads
32^3 solid voxels of procedural shapes; the voxels of each split are made once and
cached under ``$OCTGEN_CACHE/classifier``. Each batch is drawn at random from the
training split, half of it mirrored left-right (a mirror keeps every label). At
every saved state the weights go to ``<output_dir>/classifier`` with their
validation figures in ``<output_dir>/classifier/metrics.json``::

    octgen train configs/shape-classifier.json      # "modality": "shapes", "job": "classifier"
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..data.cache import cache_dir
from ..errors import InputError
from ..export.atomic import atomic_path
from ..metrics.shape_classifier import (
    VOXEL_DEPTH, ShapeClassifier, classifier_loss, dataset_label_space, evaluate_classifier, voxelise_split,
)
from .job import TrainingJob


def cached_voxels(split: str, n: int, seed: int) -> tuple[np.ndarray, list]:
    """:func:`~octgen.metrics.shape_classifier.voxelise_split`, cached as an ``.npz``."""
    path = cache_dir() / "classifier" / f"{split}-{n}-s{seed}-d{VOXEL_DEPTH}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return z["vox"], json.loads(str(z["labels"]))
    vox, labels = voxelise_split(split, n, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, vox=vox, labels=np.array(json.dumps(labels)))
    return vox, labels


class ShapeClassifierJob(TrainingJob):
    """Train the shape classifier (config ``model``: its ``channels``).

    Settings (config ``data``): ``num_train`` / ``num_val`` shapes of the
    procedural train / val splits.
    """

    defaults = {"num_train": 3000, "num_val": 300}

    def prepare(self) -> dict:
        s = self.settings
        self.vox, self.labels = cached_voxels("train", int(s["num_train"]), self.cfg.seed)
        self.val_vox, self.val_labels = cached_voxels("val", int(s["num_val"]), self.cfg.seed)
        self.x_N1XYZ = torch.from_numpy(self.vox).float()[:, None]
        return {"shapes": len(self.labels), "val_shapes": len(self.val_labels)}

    def num_items(self) -> int:
        return len(self.labels)

    def build(self) -> ShapeClassifier:
        cats, attrs = dataset_label_space()
        try:
            return ShapeClassifier(cats, attrs, **self.cfg.model)
        except (TypeError, ValueError) as e:
            raise InputError(f"train config: bad ShapeClassifier settings ({e})") from None

    def loss(self, model, unwrapped, g: torch.Generator, device) -> tuple[torch.Tensor, dict]:
        idx = torch.randint(len(self.labels), (self.cfg.batch_size,), generator=g)
        x = self.x_N1XYZ[idx].clone()
        flip = torch.rand(len(idx), generator=g) < 0.5
        x[flip] = x[flip].flip(2)
        return classifier_loss(model, x.to(device), [self.labels[i] for i in idx.tolist()]), {}

    def on_save(self, unwrapped, ema, step: int, cpu_seconds: float) -> None:
        out = Path(self.cfg.output_dir) / "classifier"
        metrics = {**evaluate_classifier(unwrapped.eval(), self.val_vox, self.val_labels), "split": "val",
                   "n_train": len(self.labels), "train_step": step, "train_cpu_seconds": round(cpu_seconds, 1)}
        unwrapped.train()
        unwrapped.save_pretrained(str(out))
        with atomic_path(out / "metrics.json") as tmp:
            tmp.write_text(json.dumps(metrics, indent=2))
