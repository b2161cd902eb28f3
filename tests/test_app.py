"""The Gradio app: handlers called directly (explorer, molecules, shape generation) and the demo build."""
import os

import gradio as gr
import pytest
import trimesh

import app


@pytest.fixture
def box_stl(tmp_path):
    path = tmp_path / "box.stl"
    trimesh.creation.box(extents=(1.0, 0.6, 0.3)).export(path)
    return path


def test_explorer_gives_preview_and_counts(box_stl):
    glb, table, summary = app.explore(str(box_stl), 4)
    mesh = trimesh.load(glb, force="mesh")
    assert len(mesh.faces) > 0
    assert [row[0] for row in table] == [0, 1, 2, 3, 4]
    assert table[0][1] == 1 and table[1][1] >= 1
    assert f"{table[-1][1]:,} occupied cells" in summary


@pytest.mark.parametrize("depth, match", [(0, "depth must be a whole number from 1 to 8, got 0"), (9, "got 9"),
                                          ("x", r"depth must be a whole number from 1 to 8\.")])
def test_explorer_rejects_bad_depth(box_stl, depth, match):
    with pytest.raises(gr.Error, match=match):
        app.explore(str(box_stl), depth)


def test_explorer_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0 0\nv 1 0 nan\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(gr.Error, match="bad.obj"):
        app.explore(str(bad), 3)
    with pytest.raises(gr.Error, match="Upload a mesh first"):
        app.explore(None, 3)


def test_demo_builds():
    assert isinstance(app.build_demo(), gr.Blocks)


def _write_sdf(path, with_bad_entry=False):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    w = Chem.SDWriter(str(path))
    for smi in ("CCO", "c1ccccc1"):
        m = Chem.AddHs(Chem.MolFromSmiles(smi))
        AllChem.EmbedMolecule(m, randomSeed=0)
        w.write(m)
    w.close()
    if with_bad_entry:
        with open(path, "a") as f:
            f.write("broken\n  nonsense\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\n$$$$\n")


def test_molecule_viewer_shows_entries_and_skips_bad_ones(tmp_path):
    sdf = tmp_path / "mols.sdf"
    _write_sdf(sdf, with_bad_entry=True)
    glb, rows, summary = app.view_molecules(str(sdf), 1)
    assert trimesh.load(glb).geometry  # a non-empty scene
    assert [r[1] for r in rows] == ["C2H6O", "C6H6"] and rows[0][3] == "yes" and rows[0][4] != "(invalid)"
    assert "2 molecule(s)" in summary and "Skipped 1 bad entry" in summary and "mols.sdf" in summary
    with pytest.raises(gr.Error, match="Entry 5"):
        app.view_molecules(str(sdf), 5)


def test_molecule_viewer_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.xyz"
    bad.write_text("3\ncomment\nC 0 0 0\nXx 1 1 1\n")
    with pytest.raises(gr.Error, match="bad.xyz"):
        app.view_molecules(str(bad), 0)
    with pytest.raises(gr.Error, match="Upload a molecule file first"):
        app.view_molecules(None, 0)


def test_generate_tab_with_shipped_checkpoint():
    names = app.molecule_checkpoints()
    assert "qm9-xs" in names
    glb, rows, sdf, summary, state = app.generate_molecules("qm9-xs", 3, 0, 1.0)
    assert len(rows) == 3 and all(r[2] > 0 for r in rows)
    from octgen.data.molecules import read_molecules
    mols = read_molecules(sdf)
    assert len(mols) == 3
    again = app.generate_molecules("qm9-xs", 3, 0, 1.0)
    assert again[1] == rows  # one seed, one output
    # Every molecule of the batch can be drawn.
    for i in range(3):
        path, caption = app.show_molecule(i, state)
        assert path.endswith(f"molecule_{i}.glb") and trimesh.load(path).geometry
        assert f"Molecule {i}: {mols[i].formula()}" in caption
    with pytest.raises(gr.Error, match="molecule number"):
        app.show_molecule(3, state)
    with pytest.raises(gr.Error, match="Generate molecules first"):
        app.show_molecule(0, None)


@pytest.mark.parametrize("args, match", [
    (("nope", 2, 0, 1.0), "checkpoint"), (("qm9-xs", 0, 0, 1.0), "number of molecules"),
    (("qm9-xs", 500, 0, 1.0), "number of molecules"), (("qm9-xs", 2, -1, 1.0), "seed"),
    (("qm9-xs", 2, 0, 9.0), "temperature"), (("qm9-xs", "x", 0, 1.0), "number of molecules"),
    (("qm9-xs", 2.5, 0, 1.0), "number of molecules")])
def test_generate_tab_rejects_bad_settings(args, match):
    with pytest.raises(gr.Error, match=match):
        app.generate_molecules(*args)


# --------------------------------------------------------------------------- shape generation tab
@pytest.fixture(scope="module")
def untrained_shape_dir(tmp_path_factory):
    from octgen.modality.shapes import make_untrained_shape_pipeline

    return make_untrained_shape_pipeline(tmp_path_factory.mktemp("shape-pipeline"))


@pytest.fixture
def shape_checkpoint(untrained_shape_dir, monkeypatch):
    monkeypatch.setenv(app.SHAPE_CHECKPOINT_ENV, str(untrained_shape_dir))
    return untrained_shape_dir


@pytest.fixture
def no_shape_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv(app.SHAPE_CHECKPOINT_ENV, str(tmp_path / "missing"))


def _stroke_sketch(size=96):
    """White RGB canvas with a black rectangle outline and a diagonal."""
    import numpy as np

    img = np.full((size, size, 3), 255, dtype=np.uint8)
    img[20:24, 20:76] = img[72:76, 20:76] = 0
    img[20:76, 20:24] = img[20:76, 72:76] = 0
    for i in range(20, 76):
        img[i, i - 1:i + 2] = 0
    return img


def _editor_value(strokes):
    """The dict a gr.Sketchpad(type="numpy", image_mode="RGB") passes to its handler."""
    import numpy as np

    white = np.full_like(strokes, 255)
    return {"background": white, "layers": [strokes.copy()], "composite": strokes}


def _check_glb(path):
    assert path.endswith(".glb")
    mesh = trimesh.load(path, force="mesh")
    assert len(mesh.faces) > 0
    return mesh


STAGES = {"encode_condition", "decode", "marching_cubes", "total"}


def _final(condition, prompt, sketch, seed, randomize=False, guidance=3.0, steps=None, temperature=None):
    """Run the generator handler; -> (all yields, the last one)."""
    yields = list(app.generate_shape(condition, prompt, sketch, seed, randomize, guidance, steps, temperature))
    return yields, yields[-1]


def test_shape_tab_prompt_gives_previews_glb_timings_and_exports(shape_checkpoint):
    yields, (glb, seed, summary, timings, mesh_path) = _final("Prompt", "  a mug with a handle ", None, 0)
    mesh = _check_glb(glb)
    assert mesh_path == glb and seed == 0
    # Coarse-to-fine: one voxel preview per structure level (depths 1..D), then the mesh.
    previews = yields[:-1]
    depth = app._shape_pipeline(str(shape_checkpoint)).transformer.depth
    assert [os.path.basename(p[0]) for p in previews] == [f"preview_depth{d}.glb" for d in range(1, depth + 1)]
    cells = [int(p[2].split(": ")[1].split(" ")[0].replace(",", "")) for p in previews]
    assert cells == sorted(cells) and all(p[3] is None and p[4] is None for p in previews)
    for p in previews:
        _check_glb(p[0])
    assert STAGES <= set(timings) and any(k.startswith("sample_level_") for k in timings)
    assert all(v >= 0 for v in timings.values()) and timings["total"] > 0
    assert f"{len(mesh.faces):,} faces" in summary and "watertight" in summary
    assert '"a mug with a handle"' in summary  # the cleaned prompt that was used
    # One seed, one shape; every call writes to its own fresh folder.
    _, (glb2, *_rest) = _final("Prompt", "a mug with a handle", None, 0)
    assert os.path.dirname(glb2) != os.path.dirname(glb)
    assert len(trimesh.load(glb2, force="mesh").faces) == len(mesh.faces)
    # Export from the same result in every format.
    for fmt in app.SHAPE_FORMATS:
        out = app.export_shape(glb2, fmt)
        assert out.endswith("." + fmt.lower()) and os.path.dirname(out) == os.path.dirname(glb2)
        assert len(trimesh.load(out, force="mesh").faces) == len(mesh.faces)
    assert not [f for f in os.listdir(os.path.dirname(glb2)) if ".part" in f]  # atomic writes left nothing


def test_shape_tab_whole_objects_switch_reaches_the_sampler(shape_checkpoint, monkeypatch):
    """On: the checkpoint's bridge size (the untrained one has none: WHOLE_BRIDGE);
    off: connect 0, said in the summary; unset: the checkpoint's default."""
    seen = []
    real = app._sample_in_thread

    def spy(pipe, inputs, seed, sampler):
        seen.append(dict(sampler))
        return real(pipe, inputs, seed, sampler)

    monkeypatch.setattr(app, "_sample_in_thread", spy)
    *_, (_, _, summary_on, _, _) = app.generate_shape("Prompt", "a mug", None, 0, False, 3.0, None, None, True)
    *_, (_, _, summary_off, _, _) = app.generate_shape("Prompt", "a mug", None, 0, False, 3.0, None, None, False)
    list(app.generate_shape("Prompt", "a mug", None, 0, False, 3.0))
    assert [s.get("connect") for s in seen] == [app.WHOLE_BRIDGE, 0, None]
    assert "stray parts kept" in summary_off and "stray parts kept" not in summary_on


def test_shape_tab_randomize_writes_the_seed_back(shape_checkpoint):
    _, last = _final("Prompt", "a mug", None, 5, randomize=True)
    assert isinstance(last[1], int) and 0 <= last[1] < app.RANDOM_SEED_BELOW
    assert f"seed {last[1]}" in last[2]
    # The written-back seed reproduces the shape.
    _, again = _final("Prompt", "a mug", None, last[1])
    assert len(trimesh.load(again[0], force="mesh").faces) == len(trimesh.load(last[0], force="mesh").faces)


def test_shape_tab_advanced_settings_reach_the_sampler(shape_checkpoint, monkeypatch):
    from octgen.pipeline.pipeline import OctGenPipeline

    seen = []
    original = OctGenPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append({k: v for k, v in kwargs.items() if k in ("guidance_scale", "steps", "temperature")})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(OctGenPipeline, "__call__", spy)
    _final("Prompt", "a mug", None, 2, guidance=2.5, steps=3, temperature=0.0)
    _final("Prompt", "a mug", None, 2, guidance=0, steps=0, temperature=1.5)
    _final("Prompt", "a mug", None, 2, guidance=None)  # API callers may leave them out: the checkpoint's
    assert seen == [{"guidance_scale": 2.5, "steps": 3, "temperature": 0.0},
                    {"guidance_scale": 0.0, "steps": None, "temperature": 1.5}, {}]


def test_shape_tab_sketch_array_and_editor_dict(shape_checkpoint):
    strokes = _stroke_sketch()
    _, (glb, _, summary, timings, _) = _final("Sketch", "ignored prompt", strokes, 1, guidance=2.0)
    _check_glb(glb)
    assert "the sketch" in summary and STAGES <= set(timings)
    _, (glb_dict, *_rest) = _final("Sketch", "", _editor_value(strokes), 1, guidance=2.0)
    # The same drawing as an ImageEditor dict gives the same shape.
    assert len(trimesh.load(glb_dict, force="mesh").faces) == len(trimesh.load(glb, force="mesh").faces)


def test_shape_tab_sketch_file_payload(shape_checkpoint, tmp_path):
    from PIL import Image

    png = tmp_path / "drawing.png"
    Image.fromarray(_stroke_sketch()).save(png)
    payload = {"background": None, "layers": [], "composite": {"path": str(png), "meta": {"_type": "gradio.FileData"}}}
    _, (glb, *_rest) = _final("Sketch", "", payload, 1, guidance=2.0)
    _check_glb(glb)
    no_suffix = tmp_path / "composite"  # upload names need not carry an image suffix
    no_suffix.write_bytes(png.read_bytes())
    _, (glb2, *_rest) = _final("Sketch", "", {"composite": {"path": str(no_suffix)}}, 1, guidance=2.0)
    assert len(trimesh.load(glb2, force="mesh").faces) == len(trimesh.load(glb, force="mesh").faces)
    bad = tmp_path / "drawing2.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(gr.Error, match="drawing2.png: not a readable image"):
        _final("Sketch", "", {"composite": {"path": str(bad)}}, 1)


@pytest.mark.parametrize("side", [20000, 9000])
def test_shape_tab_refuses_huge_sketch_before_decoding(shape_checkpoint, tmp_path, monkeypatch, side):
    """A side x side PNG (a decompression bomb: tiny file, 81-400 M pixels) is refused from its header."""
    import struct
    import zlib

    from PIL import ImageFile

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    assert bomb.stat().st_size < 1000
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    with pytest.raises(gr.Error, match="bomb.png: .*too large for a sketch"):
        _final("Sketch", "", {"composite": {"path": str(bomb)}}, 1)
    assert not decoded


def test_shape_tab_unconditional(shape_checkpoint):
    _, (glb, seed, summary, timings, path) = _final("Nothing (unconditional)", "", None, 0, guidance=0)
    _check_glb(glb)
    assert "unconditional" in summary and path == glb and STAGES <= set(timings)


def _blank_dict():
    import numpy as np

    white = np.full((64, 64, 3), 255, dtype=np.uint8)
    return {"background": white, "layers": [white.copy()], "composite": white}


@pytest.mark.parametrize("args, match", [
    (("Prompt", "", None, 0), "prompt is empty"),
    (("Prompt", "   \n ", None, 0), "prompt is empty"),
    (("Prompt", None, None, 0), "prompt is empty"),
    (("Prompt", "x" * 600, None, 0), "characters"),
    (("Sketch", "a mug", None, 0), "sketch is empty"),
    (("Sketch", "", "blank-array", 0), "sketch is blank"),
    (("Sketch", "", "blank-dict", 0), "sketch is blank"),
    (("Sketch", "", {"background": None, "layers": [], "composite": None}, 0), "sketch is empty"),
    (("Prompt", "a mug", None, -1), "seed"),
    (("Prompt", "a mug", None, 1.5), "seed"),
    (("Prompt", "a mug", None, "x"), "seed"),
    (("Prompt", "a mug", None, None), "seed"),
    (("Prompt", "a mug", None, 2**64), "seed"),
    (("Prompt", "a mug", None, 0, False, -0.5), "guidance"),
    (("Prompt", "a mug", None, 0, False, 10.5), "guidance"),
    (("Prompt", "a mug", None, 0, False, float("nan")), "guidance"),
    (("Prompt", "a mug", None, 0, False, "x"), "guidance"),
    (("Prompt", "a mug", None, 0, False, 3.0, -1), "steps"),
    (("Prompt", "a mug", None, 0, False, 3.0, 2.5), "steps"),
    (("Prompt", "a mug", None, 0, False, 3.0, None, 5.0), "temperature"),
    (("Prompt", "a mug", None, 0, False, 3.0, None, None, "yes"), "Whole objects"),
    (("Text", "a mug", None, 0), "condition"),
])
def test_shape_tab_rejects_bad_input(shape_checkpoint, args, match):
    import numpy as np

    args = list(args)
    if args[2] == "blank-array":
        args[2] = np.full((64, 64, 3), 255, dtype=np.uint8)
    elif args[2] == "blank-dict":
        args[2] = _blank_dict()
    with pytest.raises(gr.Error, match=match) as info:
        list(app.generate_shape(*args))
    message = str(info.value.message)
    assert "\n" not in message and "Traceback" not in message and message[0].isupper()
    assert info.value.print_exception is False  # logged as one line, not a traceback


def test_export_needs_a_result_and_a_format(tmp_path):
    with pytest.raises(gr.Error, match="Generate a shape first"):
        app.export_shape(None, "OBJ")
    with pytest.raises(gr.Error, match="format"):
        app.export_shape(str(tmp_path / "x.glb"), "FBX")


def test_shape_tab_without_checkpoint(no_shape_checkpoint):
    with pytest.raises(gr.Error, match="No shape checkpoint is installed.*octgen train configs/shapes-xs.json"):
        list(app.generate_shape("Prompt", "a mug with a handle", None, 0))


def test_shape_checkpoint_defaults_to_shapes_xs(monkeypatch):
    monkeypatch.delenv(app.SHAPE_CHECKPOINT_ENV, raising=False)
    assert app.shape_checkpoint() == app.ROOT / "checkpoints" / "shapes-xs"


def test_shape_checkpoint_of_wrong_modality(monkeypatch):
    monkeypatch.setenv(app.SHAPE_CHECKPOINT_ENV, str(app.CHECKPOINTS / "qm9-xs"))
    with pytest.raises(gr.Error, match="not a shape one"):
        list(app.generate_shape("Nothing (unconditional)", "", None, 0))


def _components(demo, kind):
    return [b for b in demo.blocks.values() if isinstance(b, kind)]


def test_demo_builds_with_shape_checkpoint(shape_checkpoint):
    demo = app.build_demo()
    tabs = [t.label for t in _components(demo, gr.Tab)]
    assert tabs[0] == "Generate shapes" and "Generate molecules" in tabs
    assert len(_components(demo, gr.Sketchpad)) == 1
    [slider] = [s for s in _components(demo, gr.Slider) if s.label.startswith("Guidance")]
    assert slider.value == 3.0 and slider.minimum == 0 and slider.maximum == 10  # the checkpoint's default
    # Conditions as tabs, Generate outside them (always in view), randomize on by default, an Advanced accordion.
    assert {"Prompt", "Sketch", "Nothing"} <= set(tabs)
    [randomize] = [c for c in _components(demo, gr.Checkbox) if c.label == "Randomize seed"]
    assert randomize.value is True
    assert [a.label for a in _components(demo, gr.Accordion)] == ["Advanced"]
    [fmt] = [r for r in _components(demo, gr.Radio) if r.label == "Export format"]
    assert list(c[0] for c in fmt.choices) == list(app.SHAPE_FORMATS)


def test_demo_builds_without_shape_checkpoint(no_shape_checkpoint):
    demo = app.build_demo()
    assert [t.label for t in _components(demo, gr.Tab)][0] == "Generate shapes"
    assert not _components(demo, gr.Sketchpad)
    notes = [m.value for m in _components(demo, gr.Markdown) if "No shape checkpoint" in (m.value or "")]
    assert len(notes) == 1 and "octgen train configs/shapes-xs.json" in notes[0] and "\n" not in notes[0]


def test_app_script_serves_on_loopback_only(monkeypatch):
    """`python app.py` binds the server to 127.0.0.1 on OCTGEN_PORT when nothing asks
    for another interface (GRADIO_SERVER_NAME, the explicit opt-in, is unset)."""
    import runpy
    import socket

    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OCTGEN_PORT", str(port))
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    launched = []
    real_launch = gr.Blocks.launch

    def launch(self, *args, **kwargs):  # the real launch, without blocking the test
        launched.append(self)
        return real_launch(self, *args, **{**kwargs, "prevent_thread_lock": True})

    monkeypatch.setattr(gr.Blocks, "launch", launch)
    runpy.run_path(str(app.ROOT / "app.py"), run_name="__main__")
    [demo] = launched
    try:
        assert demo.server.config.host == "127.0.0.1" and demo.server_port == port
        socket.create_connection(("127.0.0.1", port), timeout=10).close()  # it is serving
    finally:
        demo.close()
