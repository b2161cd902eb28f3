"""Off-screen mesh pictures: shaded, framed the same way every time, empty meshes blank."""
import numpy as np
import trimesh

from octgen.export.render import MeshRenderer


def test_renderer_shades_frames_and_resets():
    r = MeshRenderer(96)
    try:
        blank = r(trimesh.Trimesh())
        box = r(trimesh.creation.box((1.2, 0.4, 0.8)))
        again = r(trimesh.creation.box((1.2, 0.4, 0.8)))
        small = r(trimesh.creation.box((0.3, 0.1, 0.2)))
        after = r(trimesh.Trimesh())
    finally:
        r.close()
    assert blank.shape == (96, 96, 3) and blank.dtype == np.uint8
    assert (blank == 255).all() and (after == 255).all()  # nothing left over from earlier meshes
    ink = (box < 250).any(-1)
    assert 0.05 < ink.mean() < 0.6
    assert np.array_equal(box, again)  # same mesh, same picture
    assert (small < 250).any(-1).mean() < ink.mean() / 4  # fixed camera: a smaller shape looks smaller
    # lit: the visible faces of the box come out in more than one shade
    shades = {tuple(px) for px in box[ink].reshape(-1, 3)[:: 7]}
    assert len({round(sum(map(int, s)) / 30) for s in shades}) >= 3


def test_shape_sheets_on_an_untrained_pipeline(tmp_path):
    import json

    from PIL import Image

    from octgen.cli.main import main
    from octgen.modality.shapes import make_untrained_shape_pipeline

    ckpt = make_untrained_shape_pipeline(tmp_path / "pipe")
    out = tmp_path / "sheets"
    assert main(["bench", "shape-sheets", "--checkpoint", str(ckpt), "--categories", "mug,chair", "--seeds", "2",
                 "--size", "64", "--out-dir", str(out), "--json", str(tmp_path / "s.json")]) == 0
    r = json.loads((tmp_path / "s.json").read_text())
    assert [row["category"] for row in r["rows"]] == ["chair", "mug"]  # the dataset's category order
    assert all(len(row["largest_part_area"]) == 2 for row in r["rows"])
    for name in ("contact_sheet.png", "sketch_sheet.png"):
        w, h = Image.open(out / name).size
        assert h > 100 and w > 100
    assert sorted(p.name for p in out.iterdir()) == ["contact_sheet.png", "sketch_sheet.png"]  # no temp files left
