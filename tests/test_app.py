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
    with pytest.raises(gr.Error):
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


@pytest.mark.parametrize("args", [("nope", 2, 0, 1.0), ("qm9-xs", 0, 0, 1.0), ("qm9-xs", 500, 0, 1.0),
                                  ("qm9-xs", 2, -1, 1.0), ("qm9-xs", 2, 0, 9.0), ("qm9-xs", "x", 0, 1.0)])
def test_generate_tab_rejects_bad_settings(args):
    with pytest.raises(gr.Error):
        app.generate_molecules(*args)
