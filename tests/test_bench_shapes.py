"""``octgen bench shapes`` on an untrained pipeline: structure and value ranges of the
figures, the prompt-attribute matching, and one-line errors."""
import json

import pytest

from octgen.bench import shapes as bench
from octgen.cli.main import main
from octgen.errors import InputError
from octgen.pipeline.shape import make_untrained_shape_pipeline

CATEGORIES = ["chair", "mug"]


@pytest.fixture(scope="module")
def pipe_dir(tmp_path_factory):
    return make_untrained_shape_pipeline(tmp_path_factory.mktemp("shape_pipe"))


@pytest.fixture(scope="module")
def report(pipe_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "shapes.json"
    code = main(["bench", "shapes", "--checkpoint", str(pipe_dir), "--per-category", "1",
                 "--categories", ",".join(CATEGORIES), "--steps", "2", "--iou-res", "32",
                 "--surface-points", "256", "--json", str(out)])
    assert code == 0
    return json.loads(out.read_text())


def _frac(v):
    return v is not None and 0.0 <= v <= 1.0


def test_report_structure_and_ranges(report):
    s = report["settings"]
    assert s["categories"] == CATEGORIES and s["per_category"] == 1 and s["split"] == "test"
    assert report["sampler"]["steps"] == 2
    assert {"processor", "cpu_count", "torch", "torch_threads"} <= set(report["machine"])
    assert set(report["targets"]) == set(report["targets_met"])

    p = report["prompt_fidelity"]
    assert p["n"] == 2 and _frac(p["category_accuracy"])
    assert p["attributes_judged"] > 0 and _frac(p["attribute_accuracy"])
    assert set(p["per_category"]) == set(CATEGORIES) and all(v["n"] == 1 for v in p["per_category"].values())

    k = report["sketch_fidelity"]
    assert k["n"] == 2 and _frac(k["iou_mean"]) and _frac(k["iou_median"])
    assert all(_frac(v["iou_mean"]) for v in k["per_category"].values())

    d = report["distribution"]
    assert set(d["per_category"]) == set(CATEGORIES) and d["surface_points"] == 256
    for v in [*d["per_category"].values(), d["mean"]]:
        assert v["mmd"] >= 0 and _frac(v["cov"]) and _frac(v["nna"])
    assert report["targets_met"]["nna_mean"] is None  # meaningless with one shape per side

    for m in report["meshes"].values():
        assert _frac(m["non_empty"]) and _frac(m["watertight"])
    assert report["meshes"]["all"]["n"] == 4

    sp = report["speed"]
    assert sp["runs"] == 2 and sp["torch_threads"] >= 1
    assert sp["text_encoder_load_s"] > 0 and sp["warmup_call_s"] > 0 and sp["wall_median_s"] > 0
    stages = sp["stage_median_s"]
    assert {"encode_condition", "sample_level_0", "decode", "marching_cubes", "total"} <= set(stages)
    assert all(v > 0 for v in stages.values())


def test_named_attributes_longest_phrase_first():
    attrs = {"backrest": False, "length": "long", "support": "panels", "seat": "solid"}
    # "solid" inside "solid side panels" does not name the seat ...
    named = bench.named_attributes("bench", attrs, "a long bench with solid side panels")
    assert "support" in named and "length" in named and "seat" not in named
    # ... a standalone "solid" does.
    assert "seat" in bench.named_attributes("bench", attrs, "a solid bench with solid side panels")


def test_sources_and_references_are_disjoint():
    ds, picked = bench.split_sources_references(CATEGORIES, 3, 0)
    cats = ds.categories()
    for c, (src, ref) in picked.items():
        assert len(src) == len(ref) == 3 and not set(src) & set(ref)
        assert all(cats[i] == c for i in src + ref)


def test_one_line_errors(tmp_path, monkeypatch, capsys):
    with pytest.raises(InputError):
        bench.parse_categories("chair,spaceship")
    from octgen.cli import generate

    monkeypatch.setattr(generate, "default_shape_checkpoint", lambda: tmp_path / "checkpoints" / "shapes-xs")
    with pytest.raises(InputError, match="--checkpoint"):
        bench.resolve_checkpoint(None)
    code = main(["bench", "shapes", "--categories", "teapot"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "teapot" in err


def test_empty_mesh_is_penalised_not_dropped():
    import trimesh

    from octgen.data.shapes import ShapeDataset
    from octgen.metrics.shapes import mesh_occupancy_grid

    empty = trimesh.Trimesh()
    [item] = bench.make_items(ShapeDataset("test", size=20), [0], "first", 0)
    verdict = bench.judge_prompt(None, item, empty)  # the classifier is never asked
    assert not verdict["category_ok"] and verdict["attributes_ok"] == 0 and verdict["attributes_named"] > 0
    assert bench.surface_cloud(empty, 64, 0).abs().sum() == 0
    assert not mesh_occupancy_grid(empty, 16).any()
    assert bench.mesh_summary([{"mesh": empty}]) == {"n": 1, "non_empty": 0.0, "watertight": 0.0}
