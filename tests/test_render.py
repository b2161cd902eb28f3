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
