"""``octgen generate shape``: files and manifest per item, per-item seeds, and
one-line errors (exit 2, nothing written) for every bad input."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from helpers import run_cli as _run

torch.set_num_threads(1)

TIMING_KEYS = {"encode_condition", "decode", "marching_cubes", "total"} | {f"sample_level_{d}" for d in range(5)}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from octgen.modality.shapes import make_untrained_shape_pipeline

    return make_untrained_shape_pipeline(tmp_path_factory.mktemp("ckpt") / "shapes")


@pytest.fixture(scope="module")
def sketch_pngs(tmp_path_factory):
    """Two rendered line drawings of dataset shapes, saved as PNG."""
    from octgen.data.shapes import ShapeDataset
    from octgen.data.sketches import render_sketch

    folder = tmp_path_factory.mktemp("sketches")
    ds = ShapeDataset("val", size=2, seed=0)
    paths = []
    for i, name in enumerate(["b_second.png", "a_first.png"]):
        Image.fromarray(render_sketch(ds[i].sdf, size=96)).save(folder / name)
        paths.append(folder / name)
    return folder, sorted(paths)


def _gen(capsys, ckpt, out, *flags):
    return _run(capsys, "generate", "shape", "--checkpoint", ckpt, "--out", out, "--steps", 1, *flags)


def _manifest(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _check_rows(out, rows, fmt):
    for i, r in enumerate(rows):
        assert r["index"] == i
        assert not r["empty"] and r["files"] == [f"shape_{i:04d}.{fmt}"]
        mesh = trimesh.load(out / r["files"][0], force="mesh")
        assert len(mesh.faces) == r["faces"] > 0
        assert isinstance(r["watertight"], bool)
        assert set(r["timings"]) == TIMING_KEYS and r["seconds"] >= r["timings"]["total"] > 0
    assert sorted(p.name for p in out.iterdir()) == sorted([f for r in rows for f in r["files"]] + ["manifest.jsonl"])


def test_prompt_writes_one_mesh_per_item_and_manifest(ckpt, tmp_path, capsys):
    out = tmp_path / "gen"
    code, stdout, _ = _gen(capsys, ckpt, out, "--prompt", "  a round   table ", "--num", 2, "--seed", 5)
    assert code == 0
    rows = _manifest(out)
    _check_rows(out, rows, "glb")
    assert [r["seed"] for r in rows] == [5, 6]
    assert all(r["prompt"] == "a round table" and r["sketch"] is None for r in rows)
    assert all(r["guidance"] == 3.0 and r["steps"] == 1 and r["temperature"] == 1.0 for r in rows)
    assert rows[0]["watertight"]  # marching cubes of a decoded field
    last = stdout.strip().splitlines()[-1]
    assert str(out / "shape_0000.glb") in last and "manifest.jsonl" in last


def test_prompts_file_skips_blank_lines_and_comments(ckpt, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# my prompts\n\na chair with four legs\n   \n  # indented comment\nà tall lamp ☃\n",
                       encoding="utf-8")
    out = tmp_path / "gen"
    code, _, _ = _gen(capsys, ckpt, out, "--prompts", prompts, "--guidance", 1.5, "--format", "ply", "--seed", 3)
    assert code == 0
    rows = _manifest(out)
    _check_rows(out, rows, "ply")
    assert [r["prompt"] for r in rows] == ["a chair with four legs", "à tall lamp ☃"]
    assert [r["seed"] for r in rows] == [3, 4] and all(r["guidance"] == 1.5 for r in rows)


def test_one_sketch_png(ckpt, sketch_pngs, tmp_path, capsys):
    _, (png, _) = sketch_pngs
    out = tmp_path / "gen"
    code, _, _ = _gen(capsys, ckpt, out, "--sketch", png, "--format", "stl", "--guidance", 0)
    assert code == 0
    [row] = _manifest(out)
    _check_rows(out, [row], "stl")
    assert row["sketch"] == str(png) and row["prompt"] is None and row["guidance"] == 0


def test_sketches_folder_in_sorted_order(ckpt, sketch_pngs, tmp_path, capsys):
    folder, pngs = sketch_pngs
    (folder / "notes.txt").write_text("not a sketch, ignored")
    out = tmp_path / "gen"
    code, _, _ = _gen(capsys, ckpt, out, "--sketches", folder, "--format", "obj")
    assert code == 0
    rows = _manifest(out)
    _check_rows(out, rows, "obj")
    assert [r["sketch"] for r in rows] == [str(p) for p in pngs]


def test_unconditional(ckpt, tmp_path, capsys):
    out = tmp_path / "gen"
    code, _, _ = _gen(capsys, ckpt, out, "--num", 2, "--seed", 11)
    assert code == 0
    rows = _manifest(out)
    _check_rows(out, rows, "glb")
    assert all(r["prompt"] is None and r["sketch"] is None and r["guidance"] is None for r in rows)
    assert [r["seed"] for r in rows] == [11, 12]


def test_same_seed_same_bytes_and_any_item_alone(ckpt, tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a chair\na box with a lid\n")
    a, b, alone = tmp_path / "a", tmp_path / "b", tmp_path / "alone"
    for out in (a, b):
        assert _gen(capsys, ckpt, out, "--prompts", prompts, "--num", 2, "--seed", 7, "--format", "obj")[0] == 0
    names = [f"shape_{i:04d}.obj" for i in range(4)]
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    assert (a / names[0]).read_bytes() != (a / names[1]).read_bytes()
    # Item 3 is the second prompt's second shape, seed 7 + 3: made again on its own.
    row = _manifest(a)[3]
    assert (row["prompt"], row["seed"]) == ("a box with a lid", 10)
    assert _gen(capsys, ckpt, alone, "--prompt", row["prompt"], "--seed", row["seed"], "--format", "obj")[0] == 0
    assert (alone / names[0]).read_bytes() == (a / names[3]).read_bytes()


def test_empty_meshes_are_listed_and_warned(ckpt, tmp_path, capsys, monkeypatch):
    from octgen.pipeline.pipeline import OctGenPipeline

    real_call = OctGenPipeline.__call__

    def no_surface_for_seed_1(self, *a, generator=None, **kw):
        results = real_call(self, *a, generator=generator, **kw)
        if generator.initial_seed() == 1:
            results[0].mesh = trimesh.Trimesh()
        return results

    monkeypatch.setattr(OctGenPipeline, "__call__", no_surface_for_seed_1)
    out = tmp_path / "gen"
    code, stdout, err = _gen(capsys, ckpt, out, "--num", 3, "--seed", 0, "--format", "obj")
    assert code == 0
    rows = _manifest(out)
    assert [r["empty"] for r in rows] == [False, True, False]
    assert rows[1]["files"] == [] and rows[1]["faces"] == 0 and rows[1]["watertight"] is False
    assert not (out / "shape_0001.obj").exists() and (out / "shape_0002.obj").exists()
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "1 of 3" in warnings[0]
    assert stdout.strip().splitlines()[-1].startswith("wrote 2 obj meshes")


def test_help_explains_per_item_seeds(capsys):
    code, stdout, _ = _run(capsys, "generate", "shape", "--help")
    assert code == 0
    for text in ("--prompts", "--sketches", "--guidance", "S + k", "--seed S+k --num 1", "manifest.jsonl"):
        assert text in stdout, text


def _bad_inputs(tmp, ckpt):
    """(name, CLI flags after --out) that must fail before anything is written."""
    (tmp / "blank.png").parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (64, 64), 255).save(tmp / "blank.png")
    (tmp / "notes.txt").write_text("hello")
    (tmp / "fake.png").write_bytes(b"\x89PNG not really")
    (tmp / "no_images").mkdir()
    (tmp / "no_images" / "readme.md").write_text("# nothing")
    (tmp / "bad_line.txt").write_text("a chair\n# ok\n" + "x" * 501 + "\n")
    (tmp / "comments.txt").write_text("# only\n\n#comments\n")
    (tmp / "latin1.txt").write_bytes("caf\xe9 table\n".encode("latin-1"))
    (tmp / "molecule_ckpt").mkdir()
    (tmp / "molecule_ckpt" / "pipeline.json").write_text(
        json.dumps({"_class_name": "OctGenPipeline", "version": 1, "modality": "molecule"}))
    (tmp / "a_file").write_text("keep me")
    c = ["--checkpoint", ckpt]
    return [
        ("missing checkpoint", ["--checkpoint", tmp / "nope", "--prompt", "a chair"]),
        ("molecule checkpoint", ["--checkpoint", tmp / "molecule_ckpt"]),
        ("empty prompt", [*c, "--prompt", "   "]),
        ("long prompt", [*c, "--prompt", "x" * 501]),
        ("bad prompts line", [*c, "--prompts", tmp / "bad_line.txt"]),
        ("only comments", [*c, "--prompts", tmp / "comments.txt"]),
        ("not utf-8", [*c, "--prompts", tmp / "latin1.txt"]),
        ("missing prompts file", [*c, "--prompts", tmp / "missing.txt"]),
        ("blank sketch", [*c, "--sketch", tmp / "blank.png"]),
        ("non-image sketch", [*c, "--sketch", tmp / "notes.txt"]),
        ("corrupt png", [*c, "--sketch", tmp / "fake.png"]),
        ("missing sketch", [*c, "--sketch", tmp / "missing.png"]),
        ("sketch is a folder", [*c, "--sketch", tmp / "no_images"]),
        ("no images in folder", [*c, "--sketches", tmp / "no_images"]),
        ("sketches is a file", [*c, "--sketches", tmp / "notes.txt"]),
        ("bad image in folder", [*c, "--sketches", tmp]),  # blank.png and fake.png
        ("negative guidance", [*c, "--prompt", "a chair", "--guidance", "-1"]),
        ("nan guidance", [*c, "--prompt", "a chair", "--guidance", "nan"]),
        ("inf guidance", [*c, "--prompt", "a chair", "--guidance", "inf"]),
        ("guidance without condition", [*c, "--guidance", "2"]),
        ("negative connect", [*c, "--prompt", "a chair", "--connect", "-1"]),
        ("fractional connect", [*c, "--prompt", "a chair", "--connect", "1.5"]),
        ("two conditions", [*c, "--prompt", "a chair", "--sketch", tmp / "blank.png"]),
        ("bad format", [*c, "--format", "fbx"]),
        ("zero num", [*c, "--num", "0"]),
        ("seed overflow", [*c, "--seed", str(2**63 - 1), "--num", "2"]),
    ]


def test_bad_inputs_one_line_exit_2_nothing_written(ckpt, tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name, flags in _bad_inputs(inputs, ckpt):
        out = tmp_path / "out"
        code, stdout, err = _run(capsys, "generate", "shape", "--out", out, *flags)
        assert code == 2, (name, err)
        assert err.count("\n") == 1 and "error" in err, (name, err)
        assert not out.exists(), name
    # Errors name the place: the prompt file's line, the sketch file.
    _, _, err = _run(capsys, "generate", "shape", "--out", tmp_path / "o", "--checkpoint", ckpt,
                     "--prompts", inputs / "bad_line.txt")
    assert "line 3" in err
    _, _, err = _run(capsys, "generate", "shape", "--out", tmp_path / "o", "--checkpoint", ckpt,
                     "--sketch", inputs / "blank.png")
    assert "blank.png" in err and "blank" in err
    # --out is an existing file: refused, and the file is untouched.
    code, _, err = _run(capsys, "generate", "shape", "--out", inputs / "a_file", "--checkpoint", ckpt)
    assert code == 2 and err.count("\n") == 1 and (inputs / "a_file").read_text() == "keep me"
    code, _, err = _run(capsys, "generate", "shape", "--out", inputs / "a_file" / "sub", "--checkpoint", ckpt)
    assert code == 2 and err.count("\n") == 1 and (inputs / "a_file").read_text() == "keep me"


def test_missing_default_checkpoint_says_how_to_fix(tmp_path, capsys, monkeypatch):
    from octgen.cli import generate

    monkeypatch.setattr(generate, "default_shape_checkpoint", lambda: tmp_path / "checkpoints" / "shapes-xs")
    code, _, err = _run(capsys, "generate", "shape", "--prompt", "a chair", "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1
    assert "shapes-xs" in err and "--checkpoint" in err
    assert not (tmp_path / "out").exists()


def test_console_script_exit_code_and_one_line(ckpt, tmp_path):
    # The installed `octgen` script (what users run); the same entry point when not installed.
    script = Path(sys.executable).with_name("octgen")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "import sys; from octgen.cli.main import "
                                                                       "main; sys.exit(main())"]
    out = tmp_path / "out"
    res = subprocess.run([*cmd, "generate", "shape", "--checkpoint", str(ckpt), "--prompt", "", "--out", str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("octgen: error:") and "empty" in res.stderr
    assert not out.exists()


def test_sampler_overrides_are_recorded(ckpt, tmp_path, capsys):
    out = tmp_path / "gen"
    assert _gen(capsys, ckpt, out, "--temperature", 0.5, "--steps", 2, "--seed", 4, "--connect", 3)[0] == 0
    [row] = _manifest(out)
    assert (row["temperature"], row["steps"], row["seed"], row["connect"]) == (0.5, 2, 4, 3)
    assert all(math.isfinite(v) and v >= 0 for v in row["timings"].values())
    _check_rows(out, [row], "glb")  # this seed gives a non-empty mesh: one file, never a silent skip
    assert np.isfinite(trimesh.load(out / row["files"][0], force="mesh").vertices).all()


def test_shipped_checkpoint_end_to_end(tmp_path, capsys, sketch_pngs):
    """The shipped checkpoints/shapes-xs (default --checkpoint): a prompt and a sketch
    each give a non-empty watertight mesh and a manifest line."""
    root = Path(__file__).resolve().parents[1]
    assert (root / "checkpoints" / "shapes-xs" / "pipeline.json").is_file()
    _, pngs = sketch_pngs
    for i, flags in enumerate([("--prompt", "a mug with a handle"), ("--sketch", pngs[0])]):
        out = tmp_path / f"o{i}"
        code, _, err = _run(capsys, "generate", "shape", *flags, "--seed", "0", "--format", "glb", "--out", out)
        assert code == 0, err
        [row] = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
        assert row["files"] and row["watertight"] and row["faces"] > 0
        mesh = trimesh.load(out / row["files"][0], force="mesh")
        assert len(mesh.faces) == row["faces"]
