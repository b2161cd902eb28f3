"""Shape classifier: consistent voxelisation of SDFs and meshes, heads, learning."""
from pathlib import Path

import numpy as np
import torch
import trimesh

from octgen.metrics.shape_classifier import (
    ShapeClassifier, classifier_loss, dataset_label_space, evaluate_classifier, mesh_to_voxels, sdf_to_voxels,
    voxelise_split,
)

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "shape-classifier"


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_mesh_and_sdf_voxelisations_agree():
    box_sdf = lambda p: (lambda q: q.clamp_min(0).norm(dim=1) + q.amax(dim=1).clamp_max(0))(p.abs() - torch.tensor([0.6, 0.3, 0.45]))
    box_mesh = trimesh.creation.box(extents=(1.2, 0.6, 0.9))
    a, b = sdf_to_voxels(box_sdf), mesh_to_voxels(box_mesh)
    assert a.shape == b.shape == (32, 32, 32)
    assert _iou(a, b) > 0.85
    # Solid, not a shell: the centre is filled.
    assert a[16, 16, 16] and b[16, 16, 16]


def test_tiny_classifier_learns_a_few_shapes():
    torch.manual_seed(0)
    vox, labels = voxelise_split("train", 6)
    cats, attrs = dataset_label_space()
    model = ShapeClassifier(cats, attrs, channels=(8, 8))
    x = torch.from_numpy(vox).float()[:, None]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(25):
        loss = classifier_loss(model, x, labels)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first
    m = evaluate_classifier(model.eval(), vox, labels)
    assert m["category_accuracy"] == 1.0


def test_shipped_classifier_on_held_out_shapes():
    # The classifier is committed: a missing folder is a failure, not a skip.
    assert (SHIPPED / "config.json").is_file(), f"shipped classifier missing: {SHIPPED}"
    model = ShapeClassifier.from_pretrained(SHIPPED).eval()
    vox, labels = voxelise_split("test", 15)
    m = evaluate_classifier(model, vox, labels)
    # The shipped weights get all 15 categories and 28 of the 29 attributes right.
    assert m["n"] == 15 and m["category_accuracy"] == 1.0
    assert m["attribute_accuracy_given_category"] >= 0.93


def test_classifier_trains_through_octgen_train(tmp_path, monkeypatch):
    """The shapes modality's classifier job in the one training loop: the loss falls
    and the exported classifier loads with its validation figures."""
    import json

    from octgen.cli.main import main

    monkeypatch.setenv("OCTGEN_CACHE", str(tmp_path / "cache"))
    cfg = tmp_path / "clf.json"
    cfg.write_text(json.dumps({"output_dir": str(tmp_path / "run"), "modality": "shapes", "job": "classifier",
                               "data": {"num_train": 6, "num_val": 2}, "model": {"channels": [8, 8]},
                               "batch_size": 6, "lr": 0.01, "warmup_steps": 1, "max_steps": 30, "ema_decay": 0.0,
                               "save_every": 30, "log_every": 10, "num_threads": 1}))
    assert main(["train", str(cfg)]) == 0
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20, 30] and log[-1]["loss"] < 0.5 * log[0]["loss"]
    model = ShapeClassifier.from_pretrained(tmp_path / "run" / "classifier")
    metrics = json.loads((tmp_path / "run" / "classifier" / "metrics.json").read_text())
    assert model.config.channels == [8, 8] and metrics["n"] == 2 and metrics["train_step"] == 30
