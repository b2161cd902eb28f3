"""The shipped checkpoints give the same outputs for fixed seeds as recorded in
``tests/golden_outputs.json`` (tokens exactly; decoded molecules and meshes to
rounding). Refactors must keep them; a deliberate retrain rewrites the file
(``python tests/golden_outputs.py --write``)."""
import json

import numpy as np
import pytest

from golden_outputs import GOLDEN, file_sha, molecule_outputs, shape_outputs, ROOT


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


def _same_weights(golden, name):
    path = ROOT / "checkpoints" / name / "transformer" / "diffusion_pytorch_model.safetensors"
    assert file_sha(path) == golden[name]["weights"], (
        f"checkpoints/{name} changed: rewrite tests/golden_outputs.json with "
        f"`python tests/golden_outputs.py --write` if that was deliberate")


def test_molecule_checkpoint_outputs_unchanged(golden):
    _same_weights(golden, "qm9-xs")
    got, want = molecule_outputs(), golden["qm9-xs"]
    assert got["tokens"] == want["tokens"]
    assert got["elements"] == want["elements"]
    for a, b in zip(got["positions"], want["positions"]):
        np.testing.assert_allclose(a, b, atol=2e-4)


def test_shape_checkpoint_outputs_unchanged(golden):
    _same_weights(golden, "shapes-xs")
    got, want = shape_outputs(), golden["shapes-xs"]
    for g, w in zip(got["items"], want["items"], strict=True):
        assert g["tokens"] == w["tokens"], g["prompt"]
        assert (g["vertices"], g["faces"]) == (w["vertices"], w["faces"]), g["prompt"]
        np.testing.assert_allclose(g["vertex_sum"], w["vertex_sum"], atol=0.05)
        assert g["area"] == pytest.approx(w["area"], rel=1e-4)
