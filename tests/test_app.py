"""The Gradio app's octree explorer (handlers called directly, and a served page)."""
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


@pytest.mark.parametrize("depth", [0, 9, "x"])
def test_explorer_rejects_bad_depth(box_stl, depth):
    with pytest.raises(gr.Error):
        app.explore(str(box_stl), depth)


def test_explorer_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0 0\nv 1 0 nan\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(gr.Error, match="bad.obj"):
        app.explore(str(bad), 3)
    with pytest.raises(gr.Error):
        app.explore(None, 3)


def test_demo_builds():
    assert isinstance(app.build_demo(), gr.Blocks)
