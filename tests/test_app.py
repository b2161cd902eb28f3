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


@pytest.mark.parametrize("depth, match", [(0, "Depth must be from 1 to 8, got 0"), (9, "got 9"),
                                          ("x", "Depth must be a whole number from 1 to 8")])
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
    glb, rows, sdf, summary = app.generate_molecules("qm9-xs", 2, 0, 1.0)
    assert len(rows) == 2 and all(r[2] > 0 for r in rows)
    from octgen.data.molecules import read_molecules
    assert len(read_molecules(sdf)) == 2
    again = app.generate_molecules("qm9-xs", 2, 0, 1.0)
    assert again[1] == rows  # one seed, one output


@pytest.mark.parametrize("args, match", [
    (("nope", 2, 0, 1.0), "Choose one of the shipped molecule checkpoints"),
    (("qm9-xs", 0, 0, 1.0), "Generate between 1 and"),
    (("qm9-xs", 500, 0, 1.0), "Generate between 1 and"),
    (("qm9-xs", 2, -1, 1.0), "seed must be a non-negative integer"),
    (("qm9-xs", 2, 0, 9.0), "Temperature must be between"),
    (("qm9-xs", "x", 0, 1.0), "must be numbers"),
])
def test_generate_tab_rejects_bad_settings(args, match):
    with pytest.raises(gr.Error, match=match):
        app.generate_molecules(*args)


# --------------------------------------------------------------------------- shape generation tab
@pytest.fixture(scope="module")
def untrained_shape_dir(tmp_path_factory):
    from octgen.pipeline.shape import make_untrained_shape_pipeline

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


def test_shape_tab_prompt_gives_glb_timings_and_downloads(shape_checkpoint):
    glb, download, summary, timings = app.generate_shape("Prompt", "  a mug with a handle ", None, 3.0, 0, "GLB")
    mesh = _check_glb(glb)
    assert download == glb
    assert STAGES <= set(timings) and any(k.startswith("sample_level_") for k in timings)
    assert all(v >= 0 for v in timings.values()) and timings["total"] > 0
    assert f"{len(mesh.faces):,} faces" in summary and "watertight" in summary
    assert '"a mug with a handle"' in summary  # the cleaned prompt that was used
    # One seed, one shape; every call writes to its own fresh folder.
    glb2, obj, _, _ = app.generate_shape("Prompt", "a mug with a handle", None, 3.0, 0, "OBJ")
    assert os.path.dirname(glb2) != os.path.dirname(glb)
    assert obj.endswith(".obj") and os.path.dirname(obj) == os.path.dirname(glb2)
    assert len(trimesh.load(obj, force="mesh").faces) == len(mesh.faces)
    assert len(trimesh.load(glb2, force="mesh").faces) == len(mesh.faces)
    assert not [f for f in os.listdir(os.path.dirname(glb2)) if ".part" in f]  # atomic writes left nothing


def test_shape_tab_sketch_array_and_editor_dict(shape_checkpoint):
    strokes = _stroke_sketch()
    glb, _, summary, timings = app.generate_shape("Sketch", "ignored prompt", strokes, 2.0, 1, "GLB")
    _check_glb(glb)
    assert "the sketch" in summary and STAGES <= set(timings)
    glb_dict, stl, _, _ = app.generate_shape("Sketch", "", _editor_value(strokes), 2.0, 1, "STL")
    # The same drawing as an ImageEditor dict gives the same shape.
    assert len(trimesh.load(glb_dict, force="mesh").faces) == len(trimesh.load(glb, force="mesh").faces)
    assert stl.endswith(".stl") and len(trimesh.load(stl).faces) > 0


def test_shape_tab_unconditional(shape_checkpoint):
    glb, download, summary, timings = app.generate_shape("Nothing (unconditional)", "", None, 0, 0, "GLB")
    _check_glb(glb)
    assert "unconditional" in summary and download == glb and STAGES <= set(timings)


def _blank_dict():
    import numpy as np

    white = np.full((64, 64, 3), 255, dtype=np.uint8)
    return {"background": white, "layers": [white.copy()], "composite": white}


@pytest.mark.parametrize("args, match", [
    (("Prompt", "", None, 3.0, 0), "prompt is empty"),
    (("Prompt", "   \n ", None, 3.0, 0), "prompt is empty"),
    (("Prompt", None, None, 3.0, 0), "prompt is empty"),
    (("Prompt", "x" * 600, None, 3.0, 0), "characters"),
    (("Sketch", "a mug", None, 3.0, 0), "sketch is empty"),
    (("Sketch", "", "blank-array", 3.0, 0), "sketch is blank"),
    (("Sketch", "", "blank-dict", 3.0, 0), "sketch is blank"),
    (("Sketch", "", {"background": None, "layers": [], "composite": None}, 3.0, 0), "sketch is empty"),
    (("Prompt", "a mug", None, 3.0, -1), "seed"),
    (("Prompt", "a mug", None, 3.0, 1.5), "seed"),
    (("Prompt", "a mug", None, 3.0, "x"), "seed"),
    (("Prompt", "a mug", None, 3.0, None), "seed"),
    (("Prompt", "a mug", None, 3.0, 2**64), "seed"),
    (("Prompt", "a mug", None, -0.5, 0), "guidance"),
    (("Prompt", "a mug", None, 10.5, 0), "guidance"),
    (("Prompt", "a mug", None, float("nan"), 0), "guidance"),
    (("Prompt", "a mug", None, None, 0), "guidance"),
    (("Text", "a mug", None, 3.0, 0), "condition"),
])
def test_shape_tab_rejects_bad_input(shape_checkpoint, args, match):
    import numpy as np

    args = list(args)
    if args[2] == "blank-array":
        args[2] = np.full((64, 64, 3), 255, dtype=np.uint8)
    elif args[2] == "blank-dict":
        args[2] = _blank_dict()
    with pytest.raises(gr.Error, match=match) as info:
        app.generate_shape(*args)
    message = str(info.value.message)
    assert "\n" not in message and "Traceback" not in message and message[0].isupper()


def test_shape_tab_rejects_bad_format(shape_checkpoint):
    with pytest.raises(gr.Error, match="format"):
        app.generate_shape("Prompt", "a mug", None, 3.0, 0, "FBX")


def test_shape_tab_without_checkpoint(no_shape_checkpoint):
    with pytest.raises(gr.Error, match="No shape checkpoint is installed.*octgen train configs/shapes-xs.json"):
        app.generate_shape("Prompt", "a mug with a handle", None, 3.0, 0)


def test_shape_checkpoint_defaults_to_shapes_xs(monkeypatch):
    monkeypatch.delenv(app.SHAPE_CHECKPOINT_ENV, raising=False)
    assert app.shape_checkpoint() == app.ROOT / "checkpoints" / "shapes-xs"


def test_shape_checkpoint_of_wrong_modality(monkeypatch):
    monkeypatch.setenv(app.SHAPE_CHECKPOINT_ENV, str(app.CHECKPOINTS / "qm9-xs"))
    with pytest.raises(gr.Error, match="not a shape one"):
        app.generate_shape("Nothing (unconditional)", "", None, 3.0, 0)


def _components(demo, kind):
    return [b for b in demo.blocks.values() if isinstance(b, kind)]


def test_demo_builds_with_shape_checkpoint(shape_checkpoint):
    demo = app.build_demo()
    tabs = [t.label for t in _components(demo, gr.Tab)]
    assert tabs[0] == "Generate shapes" and "Generate molecules" in tabs
    assert len(_components(demo, gr.Sketchpad)) == 1
    [slider] = [s for s in _components(demo, gr.Slider) if s.label.startswith("Guidance")]
    assert slider.value == 3.0 and slider.minimum == 0 and slider.maximum == 10  # the checkpoint's default


def test_demo_builds_without_shape_checkpoint(no_shape_checkpoint):
    demo = app.build_demo()
    assert [t.label for t in _components(demo, gr.Tab)][0] == "Generate shapes"
    assert not _components(demo, gr.Sketchpad)
    notes = [m.value for m in _components(demo, gr.Markdown) if "No shape checkpoint" in (m.value or "")]
    assert len(notes) == 1 and "octgen train configs/shapes-xs.json" in notes[0] and "\n" not in notes[0]


def test_app_script_serves_on_loopback_only(monkeypatch):
    """`python app.py` binds the server to 127.0.0.1 on OCTGEN_PORT, even where the
    environment asks Gradio for every interface."""
    import runpy
    import socket

    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OCTGEN_PORT", str(port))
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
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
