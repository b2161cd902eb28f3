"""The octgen CLI: tokenize / decode round trip and one-line errors for bad input."""
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from octgen.cli.main import main
from octgen.tokenize import OctreeTokens


@pytest.fixture
def sphere_obj(tmp_path):
    path = tmp_path / "sphere.obj"
    trimesh.creation.icosphere(subdivisions=3, radius=0.7).export(path)
    return path


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_tokenize_then_decode_round_trip(tmp_path, sphere_obj, capsys):
    tok = tmp_path / "sphere.npz"
    code, out, _ = _run(capsys, "tokenize", sphere_obj, "--depth", 5, "--out", tok)
    assert code == 0 and tok.exists()
    tokens = OctreeTokens.load(tok)
    assert tokens.depth == 5 and tokens.payload_kind == "none"
    assert tokens.tokens_per_level()[:2] == [1, 8]
    for fmt in ("glb", "obj", "ply", "stl"):
        mesh_path = tmp_path / f"cells.{fmt}"
        code, _, _ = _run(capsys, "decode", tok, "--out", mesh_path)
        assert code == 0 and mesh_path.stat().st_size > 0
    mesh = trimesh.load(tmp_path / "cells.ply", force="mesh")
    # The cells hug the sphere: every cell vertex within a cell diagonal of radius 0.7 (after normalising).
    r = np.linalg.norm(mesh.vertices, axis=1)
    assert r.min() > 0.95 * (1 - 0.05) - 2 * np.sqrt(3) / 32 and r.max() < 0.95 + 2 * np.sqrt(3) / 32


def _bad_meshes(tmp_path):
    (tmp_path / "garbage.obj").write_bytes(b"\x00\x01 not a mesh \xff")
    (tmp_path / "empty.stl").write_bytes(b"")
    (tmp_path / "nan.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 nan 0\nf 1 2 3\n")
    (tmp_path / "inf.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 inf 0\nf 1 2 3\n")
    (tmp_path / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")  # zero area
    (tmp_path / "point.obj").write_text("v 0 0 0\nv 0 0 0\nv 0 0 0\nf 1 2 3\n")
    (tmp_path / "novertex.obj").write_text("# nothing\n")
    (tmp_path / "mesh.txt").write_text("hello")
    return ["garbage.obj", "empty.stl", "nan.obj", "inf.obj", "flat.obj", "point.obj", "novertex.obj",
            "mesh.txt", "missing.obj"]


def test_bad_meshes_give_one_line_error_and_no_output(tmp_path, capsys):
    for name in _bad_meshes(tmp_path):
        out = tmp_path / f"{name}.npz"
        code, _, err = _run(capsys, "tokenize", tmp_path / name, "--depth", 4, "--out", out)
        assert code == 2, name
        assert err.count("\n") == 1 and err.startswith("octgen: error:"), (name, err)
        assert not out.exists(), name
    assert not list(tmp_path.glob(".*part*")), "temporary files left behind"


@pytest.mark.parametrize("depth", ["0", "11", "-3", "six", "2.5"])
def test_depth_out_of_range(tmp_path, sphere_obj, capsys, depth):
    out = tmp_path / "x.npz"
    with pytest.raises(SystemExit) as e:
        main(["tokenize", str(sphere_obj), "--depth", depth, "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--depth" in err
    assert not out.exists()


def test_bad_token_files_and_outputs(tmp_path, sphere_obj, capsys):
    (tmp_path / "junk.npz").write_bytes(b"PK junk")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    good = tmp_path / "good.npz"
    assert _run(capsys, "tokenize", sphere_obj, "--depth", 3, "--out", good)[0] == 0
    cases = [("junk.npz", "out.glb"), ("other.npz", "out.glb"), ("missing.npz", "out.glb"),
             ("good.npz", "out.xyz3"), ("good.npz", "out")]
    for src, dst in cases:
        code, _, err = _run(capsys, "decode", tmp_path / src, "--out", tmp_path / dst)
        assert code == 2 and err.count("\n") == 1, (src, dst, err)
        assert not (tmp_path / dst).exists()
    code, _, err = _run(capsys, "tokenize", sphere_obj, "--out", tmp_path / "tokens.txt")
    assert code == 2 and ".npz" in err


def test_corrupted_token_levels_are_rejected(tmp_path, sphere_obj, capsys):
    good = tmp_path / "good.npz"
    _run(capsys, "tokenize", sphere_obj, "--depth", 3, "--out", good)
    with np.load(good) as z:
        data = dict(z)
    data["structure"][0] = 0  # a zero child mask can never occur
    np.savez(tmp_path / "bad.npz", **data)
    code, _, err = _run(capsys, "decode", tmp_path / "bad.npz", "--out", tmp_path / "o.glb")
    assert code == 2 and "corrupt" in err


def test_console_script_help():
    res = subprocess.run([sys.executable, "-m", "octgen.cli.main", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "tokenize" in res.stdout and "decode" in res.stdout
    for cmd in ("tokenize", "decode", "bench"):
        res = subprocess.run([sys.executable, "-m", "octgen.cli.main", cmd, "--help"], capture_output=True, text=True)
        assert res.returncode == 0 and "usage" in res.stdout


def test_bench_octree_runs_small(capsys, tmp_path):
    code, out, _ = _run(capsys, "bench", "octree", "--points", 2000, "--depths", 4, "--repeats", 1,
                        "--json", tmp_path / "b.json")
    assert code == 0 and "nodes per depth" in out and (tmp_path / "b.json").exists()


def test_outputs_get_normal_permissions(tmp_path, sphere_obj, capsys):
    import os
    import stat

    tok = tmp_path / "s.npz"
    assert _run(capsys, "tokenize", sphere_obj, "--depth", 3, "--out", tok)[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(tok.stat().st_mode) == 0o666 & ~umask
