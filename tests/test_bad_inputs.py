"""The bad-input corpus (tests/corpus.py) through the CLI and the library API.

Every bad input gives one line ``octgen: error: ...`` on stderr naming the file and
the problem (and the line or entry where there is one), exit code 2, no traceback
and no output file (not even a temporary one); the documented accepted cases give
their documented result.
"""
import warnings

import numpy as np
import pytest
import torch
import trimesh

from corpus import (METHANE_XYZ, MESH_ERRORS, MESH_OK, MOL_ERRORS, build, lattice_xyz, png_header_only, save_png,
                    stroke_image, write_big_ply)
from octgen.condition.sketch import load_sketch_image, preprocess_sketch
from octgen.condition.text import MAX_PROMPT_CHARS, check_prompt
from octgen.data.meshes import load_mesh
from octgen.data.molecules import read_molecules
from octgen.errors import InputError
from octgen.tokenize import OctreeTokens
from helpers import run_cli as _run

torch.set_num_threads(1)


def _one_line_error(code, err, *fragments):
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("octgen: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert str(f) in err, (f, err)


def _only(folder, names):
    """The folder holds exactly ``names``: no output, no leftover temporary file."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


# --------------------------------------------------------------------------- meshes

@pytest.mark.parametrize("item", MESH_ERRORS, ids=[i[0] for i in MESH_ERRORS])
def test_bad_mesh_cli_and_api(item, tmp_path, capsys):
    name, builder, fragments = item
    [path] = build(tmp_path / "in", [item])
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = _run(capsys, "tokenize", path, "--depth", 4, "--out", out / "t.npz")
    _one_line_error(code, err, path, *fragments)
    _only(out, [])
    if path.suffix != ".fbx":
        with pytest.raises(InputError) as e:
            load_mesh(path)
        assert all(f in str(e.value) for f in fragments) and "\n" not in str(e.value)


@pytest.mark.parametrize("item", MESH_OK, ids=[i[0] for i in MESH_OK])
def test_accepted_meshes_tokenize(item, tmp_path, capsys):
    [path] = build(tmp_path, [item])
    code, _, err = _run(capsys, "tokenize", path, "--depth", 4, "--out", tmp_path / "t.npz")
    assert code == 0, err
    tokens = OctreeTokens.load(tmp_path / "t.npz")
    assert tokens.depth == 4 and tokens.tokens_per_level()[0] == 1 and tokens.num_tokens() > 8


def test_mesh_faces_are_read_whole(tmp_path):
    """The accepted files are read with every face: none dropped, none invented."""
    [neg, quads] = build(tmp_path, [i for i in MESH_OK if i[0] in ("negative_indices.obj", "quads.obj")])
    assert len(load_mesh(quads).faces) == 3  # one quad = two triangles, plus one triangle
    assert len(load_mesh(neg).faces) == 4


def test_two_million_face_mesh(tmp_path, capsys):
    """A 2,000,000-face binary PLY (written on the fly) is read whole and tokenized."""
    path = tmp_path / "torus.ply"
    n_faces = write_big_ply(path, 1000)
    assert n_faces == 2_000_000
    mesh = load_mesh(path)
    assert len(mesh.faces) == n_faces
    code, out, err = _run(capsys, "tokenize", path, "--depth", 5, "--out", tmp_path / "t.npz")
    assert code == 0, err
    assert OctreeTokens.load(tmp_path / "t.npz").depth == 5
    path.write_bytes(path.read_bytes()[:-1000])  # the same file cut short
    code, _, err = _run(capsys, "tokenize", path, "--depth", 5, "--out", tmp_path / "u.npz")
    _one_line_error(code, err, path)
    assert not (tmp_path / "u.npz").exists()


def test_mesh_folder_reports_each_bad_file_and_keeps_the_good(tmp_path, capsys):
    src = tmp_path / "meshes"
    build(src, MESH_ERRORS[:6] + MESH_OK[:1])
    code, out, err = _run(capsys, "tokenize", src, "--depth", 4, "--out", tmp_path / "tok")
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("octgen: warning:")]
    assert len(warnings) == 6 and "Traceback" not in err
    assert [p.name for p in (tmp_path / "tok").iterdir()] == ["degenerate_faces_mixed.npz"]


# --------------------------------------------------------------------------- molecules

@pytest.mark.parametrize("item", MOL_ERRORS, ids=[i[0] for i in MOL_ERRORS])
def test_bad_molecule_file(item, tmp_path, capsys):
    name, builder, fragments = item
    [path] = build(tmp_path / "in", [item])
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = _run(capsys, "eval", "molecules", path, "--novelty", "none", "--strict")
    _one_line_error(code, err, path, *fragments)
    # tokenize: a bad single entry is an error; in a multi-entry file it is a one-line
    # warning naming it, and only the good entries are written.
    code, _, err = _run(capsys, "tokenize", path, "--out", out / "t.npz")
    assert "Traceback" not in err and all(str(f) in err for f in fragments), err
    if code == 2:
        _one_line_error(code, err, path)
        _only(out, [])
    else:
        n_good = len(read_molecules(path, on_skip=None))
        assert code == 0 and err.count("octgen: warning:") == err.count("\n") == 1
        assert len(list(out.iterdir())) == n_good
    with pytest.raises(InputError) as e:
        read_molecules(path, strict=True)
    assert all(f in str(e.value) for f in fragments)


def test_malformed_entry_is_never_read_as_a_smaller_molecule(tmp_path, capsys):
    """A multi-molecule file with one malformed record: lenient mode warns naming the
    entry and line and keeps the others whole; --strict stops with that line."""
    good = (tmp_path / "good.xyz")
    good.write_text(METHANE_XYZ)
    path = tmp_path / "mixed.xyz"
    path.write_text(METHANE_XYZ + "5\ncut\nC 0 0 0\nH 0.63 0.63 0.63\nH -0.63 -0.63\nH 0 0 1\nH 0 1 0\n"
                    + METHANE_XYZ)
    mols = read_molecules(path, on_skip=None)
    assert [len(m) for m in mols] == [5, 5]
    code, out, err = _run(capsys, "eval", "molecules", path, "--novelty", "none", "--json")
    assert code == 0 and '"n_molecules": 2' in out
    assert err.count("\n") == 1 and "entry 2" in err and "line 12" in err and "skipped" in err
    code, _, err = _run(capsys, "eval", "molecules", path, "--novelty", "none", "--strict")
    _one_line_error(code, err, path, "entry 2", "line 12")


def test_500_atom_molecule_is_read_evaluated_and_tokenized(tmp_path, capsys):
    """Up to 2,000 atoms are accepted (MAX_ATOMS); a 500-atom lattice fits the QM9 box."""
    path = tmp_path / "big.xyz"
    path.write_text(lattice_xyz(500))
    [mol] = read_molecules(path, strict=True)
    assert len(mol) == 500
    code, out, err = _run(capsys, "eval", "molecules", path, "--novelty", "none", "--json")
    assert code == 0 and '"n_atoms": 500' in out, err
    code, out, err = _run(capsys, "tokenize", path, "--out", tmp_path / "big.npz")
    assert code == 0, err
    assert OctreeTokens.load(tmp_path / "big.npz").payload.shape == (500, 4)
    (tmp_path / "huge.xyz").write_text(lattice_xyz(2001))
    code, _, err = _run(capsys, "eval", "molecules", tmp_path / "huge.xyz", "--novelty", "none")
    _one_line_error(code, err, "2001 atoms", "2000")


# --------------------------------------------------------------------------- sketches

def _sketch_errors(folder):
    """(path, fragments) of bad sketches."""
    folder.mkdir(exist_ok=True)
    white = np.full((64, 64), 255, np.uint8)
    rgba_clear = np.zeros((64, 64, 4), np.uint8)
    items = [
        (save_png(folder / "blank.png", white), ["blank"]),
        (save_png(folder / "all_black.png", np.zeros((64, 64), np.uint8)), ["blank"]),
        (save_png(folder / "one_pixel_white.png", white[:1, :1]), ["blank"]),
        (save_png(folder / "one_pixel_black.png", white[:1, :1] * 0), ["blank"]),
        (save_png(folder / "alpha_only_transparent.png", rgba_clear), ["blank"]),
    ]
    (folder / "huge.png").write_bytes(png_header_only(20000, 20000))
    (folder / "not_an_image.png").write_text("this is text, not a PNG")
    (folder / "empty.png").write_bytes(b"")
    good = folder / "good.png"
    save_png(good, stroke_image())
    (folder / "cut.png").write_bytes(good.read_bytes()[:60])
    (folder / "garbage.jpg").write_bytes(bytes(range(256)) * 4)
    (folder / "drawing.gif").write_bytes(b"GIF89a")
    return items + [(folder / "huge.png", ["400,000,000 pixels", "too large"]),
                    (folder / "not_an_image.png", ["not a readable image"]),
                    (folder / "empty.png", ["not a readable image"]),
                    (folder / "cut.png", ["not a readable image"]),
                    (folder / "garbage.jpg", ["not a readable image"]),
                    (folder / "drawing.gif", ["unsupported sketch format"])]


def test_bad_sketches_cli_and_api(tmp_path, capsys):
    """Sketches are checked before the checkpoint loads: a missing one is never reached."""
    for path, fragments in _sketch_errors(tmp_path / "in"):
        out = tmp_path / "out"
        code, _, err = _run(capsys, "generate", "shape", "--sketch", path, "--checkpoint", tmp_path / "no_ckpt",
                            "--out", out)
        _one_line_error(code, err, path.name, *fragments)
        assert not out.exists()
        with pytest.raises(InputError) as e:
            preprocess_sketch(path)
        assert all(f in str(e.value) for f in fragments)
    assert len(list((tmp_path / "in").iterdir())) == 12


def test_huge_image_is_refused_from_its_header(tmp_path):
    """20000 x 20000 (and just past our limit, below PIL's) refused before any pixel is decoded."""
    for w in (20000, 9000):
        path = tmp_path / f"h{w}.png"
        path.write_bytes(png_header_only(w, w))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(InputError, match="too large"):
                load_sketch_image(path)
        assert not caught, [str(w.message) for w in caught]  # no multi-line PIL warning on stderr


def test_sketch_documented_results():
    """Alpha-only strokes (black RGB, ink in alpha, as sketchpads save) are composited on
    white and accepted; light strokes on black are inverted; array inputs of any dtype work."""
    ink = stroke_image() < 128
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 3] = ink * 255
    from_alpha = preprocess_sketch(rgba)
    from_gray = preprocess_sketch(stroke_image())
    inverted = preprocess_sketch(255 - stroke_image())
    assert from_alpha.shape == (1, 128, 128) and torch.allclose(from_alpha, from_gray, atol=1e-2)
    assert torch.allclose(inverted, from_gray, atol=1e-2)
    assert torch.allclose(preprocess_sketch(stroke_image().astype(np.float64) / 255), from_gray, atol=1e-2)
    for bad in (np.zeros((0, 5)), np.zeros((4, 4, 2)), "not/a/file.png", 3.5, {"composite": None}):
        with pytest.raises(InputError):
            preprocess_sketch(bad)


# --------------------------------------------------------------------------- prompts

def test_bad_prompts_cli(tmp_path, capsys):
    cases = [("", "empty"), ("   \t ", "empty"), ("\x07\x1b", "empty"), ("x" * 10_000, "10000 characters")]
    for prompt, fragment in cases:
        code, _, err = _run(capsys, "generate", "shape", "--prompt", prompt, "--checkpoint", tmp_path / "no_ckpt",
                            "--out", tmp_path / "out")
        _one_line_error(code, err, fragment)
        assert not (tmp_path / "out").exists()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a chair\n" + "y" * 10_000 + "\n")
    code, _, err = _run(capsys, "generate", "shape", "--prompts", prompts, "--checkpoint", tmp_path / "no_ckpt",
                        "--out", tmp_path / "out")
    _one_line_error(code, err, "line 2", str(MAX_PROMPT_CHARS))
    prompts.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = _run(capsys, "generate", "shape", "--prompts", prompts, "--checkpoint", tmp_path / "no_ckpt",
                        "--out", tmp_path / "out")
    _one_line_error(code, err, "not UTF-8")


def test_prompt_normalisation_is_documented():
    """Control characters are dropped and whitespace folded; non-Latin text is kept."""
    assert check_prompt("a\x00 round\x07\ttable\n") == "a round table"
    for text in ("椅子", "стул с четырьмя ножками", "كرسي", "🪑 chair"):
        assert check_prompt(text) == text
    for bad in (None, 3, b"bytes", ["list"]):
        with pytest.raises(InputError, match="must be text"):
            check_prompt(bad)
    assert len(check_prompt("z" * MAX_PROMPT_CHARS)) == MAX_PROMPT_CHARS


# --------------------------------------------------------------------------- token files

def _token_files(folder, sphere_tokens):
    folder.mkdir(exist_ok=True)
    good = sphere_tokens.save(folder / "good.npz")
    data = good.read_bytes()
    (folder / "cut.npz").write_bytes(data[: len(data) // 2])
    (folder / "garbage.npz").write_bytes(bytes(range(256)) * 4)
    np.savez(folder / "other_program.npz", weights=np.zeros(3), labels=np.arange(4))
    np.savez(folder / "pickled.npz", obj=np.array([{"evil": 1}], dtype=object))
    atoms = OctreeTokens(sphere_tokens.structure, torch.full((sphere_tokens.payload.shape[0], 4), 9),
                         "atoms", {"elements": ["H", "C"]})
    atoms.save(folder / "atoms_out_of_vocab.npz")
    other = OctreeTokens(sphere_tokens.structure, torch.zeros(sphere_tokens.payload.shape[0], 16, dtype=torch.long),
                         "shape_bits", {"tokenizer": "shape-vqvae-d6t4k16", "config_hash": "0123456789ab"})
    other.save(folder / "other_tokenizer.npz")
    return [(folder / "cut.npz", "not a readable octgen token file"),
            (folder / "garbage.npz", "not a readable octgen token file"),
            (folder / "other_program.npz", "not an octgen token file"),
            (folder / "pickled.npz", "not a readable octgen token file"),
            (folder / "atoms_out_of_vocab.npz", "atoms_out_of_vocab.npz"),
            (folder / "other_tokenizer.npz", "made by tokenizer config 0123456789ab"),
            (folder / "missing.npz", "no such token file")]


def test_bad_token_files(tmp_path, capsys):
    from octgen.octree import mesh_to_octree

    sphere = OctreeTokens.from_octree(mesh_to_octree(trimesh.creation.icosphere(2), 4))
    out = tmp_path / "out"
    out.mkdir()
    for path, fragment in _token_files(tmp_path / "in", sphere):
        target = out / ("x.sdf" if "atoms" in path.name else "x.obj")
        code, _, err = _run(capsys, "decode", path, "--out", target)
        _one_line_error(code, err, path.name, fragment)
        _only(out, [])


# --------------------------------------------------------------------------- pipeline API

@pytest.fixture(scope="module")
def shape_pipe(tmp_path_factory):
    from octgen.modality.shapes import make_untrained_shape_pipeline
    from octgen.pipeline.pipeline import OctGenPipeline

    return OctGenPipeline.from_pretrained(make_untrained_shape_pipeline(tmp_path_factory.mktemp("ckpt") / "shapes"))


def test_shape_pipeline_refuses_bad_conditions(shape_pipe, tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(20000, 20000))
    white = np.full((64, 64), 255, np.uint8)
    bad = [({"sketch": white}, "blank"), ({"sketch": np.zeros((1, 1), np.uint8)}, "blank"),
           ({"sketch": huge}, "too large"), ({"sketch": tmp_path / "missing.png"}, "no such sketch"),
           ({"sketch": "not an image"}, "no such sketch"), ({"sketch": 42}, "must be an image"),
           ({"prompt": ""}, "empty"), ({"prompt": "\x00\x01"}, "empty"), ({"prompt": "x" * 10_000}, "at most"),
           ({"prompt": "a chair", "sketch": stroke_image()}, "not both")]
    for kwargs, fragment in bad:
        with pytest.raises(InputError, match=fragment):
            shape_pipe(**kwargs, num=1, steps=1, generator=torch.Generator().manual_seed(0))


def test_shape_pipeline_accepts_non_latin_and_alpha_only_inputs(shape_pipe):
    """Documented results: non-Latin prompts and alpha-channel sketches generate shapes."""
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 3] = (stroke_image() < 128) * 255
    for kwargs in ({"prompt": "椅子 стул"}, {"sketch": rgba}):
        [result] = shape_pipe(**kwargs, num=1, steps=1, generator=torch.Generator().manual_seed(0))
        assert result.tokens.payload_kind == "shape_bits"
