"""``octgen bench shapes`` on an untrained pipeline (structure and value ranges of the
figures) and on an oracle that returns the held-out shapes (perfect scores), the
prompt-attribute matching, and one-line errors."""
import json

import pytest

from octgen.bench import shapes as bench
from octgen.cli.main import main
from octgen.errors import InputError
from octgen.modality.shapes import make_untrained_shape_pipeline

CATEGORIES = ["chair", "mug"]


@pytest.fixture(scope="module")
def pipe_dir(tmp_path_factory):
    return make_untrained_shape_pipeline(tmp_path_factory.mktemp("shape_pipe"))


@pytest.fixture(scope="module")
def report(pipe_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "shapes.json"
    code = main(["bench", "shapes", "--checkpoint", str(pipe_dir), "--per-category", "1",
                 "--categories", ",".join(CATEGORIES), "--steps", "2", "--leaf-temperature", "0.5", "--top-p", "0.9", "--confidence", "maxprob", "--iou-res", "32",
                 "--surface-points", "256", "--json", str(out)])
    assert code == 0
    return json.loads(out.read_text())


def _frac(v):
    return v is not None and 0.0 <= v <= 1.0


def test_report_structure_and_ranges(report):
    s = report["settings"]
    assert s["categories"] == CATEGORIES and s["per_category"] == 1 and s["split"] == "test"
    assert report["sampler"]["steps"] == 2 and report["sampler"]["leaf_temperature"] == 0.5
    assert s["leaf_temperature"] == 0.5
    assert report["sampler"]["top_p"] == 0.9 and s["top_p"] == 0.9
    assert report["sampler"]["confidence"] == "maxprob" and s["confidence"] == "maxprob"
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
        assert _frac(m["non_empty"]) and _frac(m["watertight"]) and _frac(m["whole_objects"])
    assert report["meshes"]["all"]["n"] == 4

    sp = report["speed"]
    assert sp["runs"] == 2 and sp["torch_threads"] >= 1
    assert sp["text_encoder_load_s"] > 0 and sp["warmup_call_s"] > 0 and sp["wall_median_s"] > 0
    stages = sp["stage_median_s"]
    assert {"encode_condition", "sample_level_0", "decode", "marching_cubes", "total"} <= set(stages)
    assert all(v > 0 for v in stages.values())


class _OraclePipeline:
    """Stands in for a perfect generator: a prompt gives the held-out reference shape
    paired with its source (same category), a sketch gives the very shape it was
    drawn from. Shapes are found from the generator seed (seed 0 + test index)."""

    def __init__(self, categories, k):
        from types import SimpleNamespace

        from octgen.sampling import SamplerConfig

        self.ds, picked = bench.split_sources_references(categories, k, 0)
        self.reference_of = {s: r for src, ref in picked.values() for s, r in zip(src, ref)}
        self.tokenizer = SimpleNamespace(config=SimpleNamespace(fine_depth=6))
        self.sampler_config, self.info, self.text_encoder = SamplerConfig(), {}, None
        self.calls = []

    def __call__(self, generator, prompt=None, sketch=None, **overrides):
        from octgen.tokenize.shape_vqvae import ShapeResult

        source = generator.initial_seed()
        index = self.reference_of.get(source, source) if sketch is None else source
        self.calls.append(("prompt" if sketch is None else "sketch", source))
        [mesh] = bench.reference_meshes(self.ds, [index], self.tokenizer.config.fine_depth)
        timings = {"encode_condition": 1e-3, "sample_level_0": 1e-3, "decode": 1e-3, "marching_cubes": 1e-3}
        return [ShapeResult(mesh, None, {**timings, "total": 4e-3})]


def test_perfect_generator_gets_perfect_scores(tmp_path, monkeypatch):
    from octgen.pipeline.pipeline import OctGenPipeline

    oracle = _OraclePipeline(CATEGORIES, 2)
    monkeypatch.setattr(OctGenPipeline, "from_pretrained", classmethod(lambda cls, path: oracle))
    out = tmp_path / "oracle.json"
    assert main(["bench", "shapes", "--checkpoint", str(tmp_path), "--per-category", "2", "--categories",
                 ",".join(CATEGORIES), "--iou-res", "64", "--surface-points", "512", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    sources = sorted(s for s in oracle.reference_of)
    assert sorted(i for kind, i in oracle.calls[1:] if kind == "prompt") == sources  # after the warm-up call
    assert sorted(i for kind, i in oracle.calls if kind == "sketch") == sources
    assert r["prompt_fidelity"]["n"] == 4 and r["prompt_fidelity"]["category_accuracy"] == 1.0
    # Same 64^3 grid on both sides of the sketch IoU: exactly the source shape.
    assert r["sketch_fidelity"]["n"] == 4 and r["sketch_fidelity"]["iou_mean"] > 0.999
    d = r["distribution"]
    assert d["mean"]["cov"] == 1.0 and all(v["cov"] == 1.0 for v in d["per_category"].values())
    # Each generated cloud's nearest neighbour is its reference twin: 1-NNA is 0.
    assert d["mean"]["nna"] == 0.0
    m = r["meshes"]["all"]
    assert (m["n"], m["non_empty"], m["watertight"], m["whole_objects"]) == (8, 1.0, 1.0, 1.0)
    assert m["largest_part_area_median"] == pytest.approx(1.0)
    assert r["targets_met"]["category_accuracy"] and r["targets_met"]["sketch_iou_mean"]


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
    monkeypatch.setattr(bench, "default_shape_checkpoint", lambda: tmp_path / "checkpoints" / "shapes-xs")
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
    assert bench.mesh_summary([{"mesh": empty}]) == {"n": 1, "non_empty": 0.0, "watertight": 0.0,
                                                    "whole_objects": 0.0, "largest_part_area_median": 0.0}


def test_largest_part_area_fraction():
    import trimesh

    from octgen.metrics.shapes import largest_part_area_fraction

    big = trimesh.creation.box((1.0, 1.0, 1.0))                           # area 6
    small = trimesh.creation.box((0.5, 0.5, 0.5)).apply_translation((3, 0, 0))  # area 1.5, apart
    assert largest_part_area_fraction(big) == pytest.approx(1.0)
    assert largest_part_area_fraction(trimesh.util.concatenate([big, small])) == pytest.approx(6 / 7.5)
    assert largest_part_area_fraction(trimesh.Trimesh()) == 0.0


@pytest.mark.parametrize("flag, value", [("--leaf-temperature", "-1"), ("--temperature", "inf"), ("--guidance", "nan"),
                                         ("--top-p", "0"), ("--top-p", "1.5"), ("--top-p", "nan"),
                                         ("--confidence", "loud")])
def test_bad_sampler_flags_are_one_line_errors(pipe_dir, flag, value, capsys):
    code = main(["bench", "shapes", "--checkpoint", str(pipe_dir), "--categories", CATEGORIES[0], flag, value])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and flag in err
