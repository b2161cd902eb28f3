"""Procedural shape data set, SDF <-> octree / mesh, and real-mesh ingestion."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from octgen.data.sdf import (
    GridSDF, iter_mesh_files, mesh_file_to_sdf, mesh_to_sdf, sdf_to_mesh, sdf_to_octree,
)
from octgen.data.grid import sdf_grid
from octgen.data.shapes import ATTRIBUTES, CATEGORIES, CATEGORY_BY_NAME, ShapeDataset, make_shape, split_of
from octgen.data.shapes.primitives import Box, Cylinder, Revolve, polygon_sdf
from octgen.errors import InputError
from octgen.octree import key_to_xyz, xyz_to_centres


def _points(n=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g) * 2 - 1


def _sphere(r=0.6):
    return lambda p: p.norm(dim=-1) - r


def _box_sdf(half):
    def f(p):
        q = p.abs() - half
        return q.clamp_min(0).norm(dim=-1) + q.amax(dim=-1).clamp_max(0)
    return f


# ----------------------------------------------------------------------------- data set
def test_categories_and_attributes():
    assert len(CATEGORIES) == 15 and len(set(CATEGORIES)) == 15
    assert set(ATTRIBUTES) == set(CATEGORIES)
    for cat in CATEGORIES:
        assert 3 <= len(ATTRIBUTES[cat]) <= 5, cat  # the README: 3-5 named attributes each
        for spec in ATTRIBUTES[cat]:
            assert len(spec.values) >= 2 and set(spec.values) == set(spec.phrases)
            assert all(any(spec.phrases[v]) for v in spec.values), (cat, spec.name)  # every value can be said


def test_same_seed_same_shape_and_captions():
    a, b, c = ShapeDataset("train", 30, seed=3), ShapeDataset("train", 30, seed=3), ShapeDataset("train", 30, seed=4)
    p = _points()
    differs = 0
    for i in range(0, 30, 7):
        sa, sb, sc = a[i], b[i], c[i]
        assert sa.captions == sb.captions and sa.attributes == sb.attributes and sa.category == sb.category
        assert torch.equal(sa.sdf(p), sb.sdf(p))
        differs += not torch.allclose(sa.sdf(p), sc.sdf(p))
    assert differs > 0  # another seed gives other shapes


def test_splits_disjoint_and_stable():
    train, val, test = (set(ShapeDataset(s, n).positions.tolist()) for s, n in (("train", 800), ("val", 100), ("test", 100)))
    assert not train & val and not train & test and not val & test
    # A larger data set extends a smaller one: the first samples never change.
    assert ShapeDataset("test", 50).positions.tolist() == ShapeDataset("test", 100).positions[:50].tolist()
    frac = np.bincount(split_of(np.arange(20_000)), minlength=3) / 20_000
    assert np.allclose(frac, [0.8, 0.1, 0.1], atol=0.01)
    cats = ShapeDataset("test", 300).categories()
    assert set(cats) == set(CATEGORIES)


def test_captions_name_category_and_attributes():
    ds = ShapeDataset("val", len(CATEGORIES) * 2)
    for i in range(len(ds)):
        s = ds[i]
        assert len(s.captions) == 4 and len(set(s.captions)) == 4
        nouns = CATEGORY_BY_NAME[s.category].nouns
        for cap in s.captions:
            assert any(n in cap for n in nouns), (s.category, cap)
        # The first caption names every attribute by one of its phrases.
        for spec in ATTRIBUTES[s.category]:
            adj, with_ = spec.phrases[s.attributes[spec.name]]
            assert any(x and x in s.captions[0] for x in (adj, with_)), (spec.name, s.captions[0])


@pytest.mark.parametrize("category", CATEGORIES)
def test_shape_sdf_sane(category):
    _, _, _, sdf = make_shape(CATEGORIES.index(category) + len(CATEGORIES) * 5, seed=1)
    lo, hi = sdf.bounds()
    assert np.abs(lo).max() <= 0.9 + 1e-5 and np.abs(hi).max() <= 0.9 + 1e-5
    assert math.isclose(float((hi - lo).max()), 1.8, rel_tol=1e-4)  # fitted: longest side spans [-0.9, 0.9]
    p = _points(20_000)
    d = sdf(p)
    assert torch.isfinite(d).all()
    assert (d < 0).any() and (d > 0).any()
    # Nothing outside the fitted box: points beyond it are outside.
    for axis in range(3):
        plane = p.clone()
        plane[:, axis] = 0.97
        assert (sdf(plane) > 0).all() and (sdf(-plane) > 0).all()
    # Lipschitz-1 (a distance can't change faster than the point moves).
    q = p + 0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2))
    assert ((sdf(q) - d).abs() <= (q - p).norm(dim=-1) * 1.02 + 1e-4).float().mean() > 0.995


def test_primitives_match_closed_forms():
    p = _points(5000)
    # A revolved rectangle is a cylinder; a 2D square is a 2D box.
    cyl = Cylinder(0.4, 0.3, (0.1, 0.0, 0.0))
    rev = Revolve([(0.0, -0.3), (0.4, -0.3), (0.4, 0.3), (0.0, 0.3)], center=(0.1, 0.0, 0.0))
    assert torch.allclose(cyl(p), rev(p), atol=1e-5)
    sq = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    box2 = _box_sdf(torch.tensor([0.5, 0.5]))
    assert torch.allclose(polygon_sdf(p[:, :2], sq), box2(p[:, :2]), atol=1e-5)
    assert torch.allclose(Box((0.3, 0.2, 0.5))(p), _box_sdf(torch.tensor([0.3, 0.2, 0.5]))(p), atol=1e-5)


# ----------------------------------------------------------------------------- SDF -> octree / mesh
@pytest.mark.parametrize("which", ["sphere", "table"])
def test_adaptive_octree_equals_dense_reference(which):
    sdf = _sphere(0.55) if which == "sphere" else make_shape(CATEGORIES.index("table"), 0)[3]
    depth, slack = 5, 1.0
    octree, leaf_sdf, levels = sdf_to_octree(sdf, depth, slack=slack, return_levels=True)
    keys = torch.arange(1 << (3 * depth))
    dense = sdf(xyz_to_centres(key_to_xyz(keys), depth))
    half_diag = math.sqrt(3) / 2 * 2 / (1 << depth)
    expected = keys[dense.abs() <= half_diag]
    # For a Lipschitz-1 SDF pruning a parent never loses a child: adaptive == dense.
    assert torch.equal(octree.keys[depth], expected)
    assert torch.allclose(leaf_sdf, dense[expected], atol=1e-6)
    for d in range(depth + 1):
        assert torch.allclose(levels[d], sdf(octree.cell_centres(d)), atol=1e-6)


def test_sdf_to_mesh_watertight_and_accurate():
    mesh = sdf_to_mesh(_sphere(0.6), 48)
    assert mesh.is_watertight and mesh.volume > 0
    assert abs(mesh.volume - 4 / 3 * math.pi * 0.6 ** 3) / (4 / 3 * math.pi * 0.6 ** 3) < 0.02
    # A shape cut by the cube boundary is still closed.
    cut = sdf_to_mesh(_box_sdf(torch.tensor([1.2, 0.3, 0.3])), 32)
    assert cut.is_watertight
    s = make_shape(CATEGORIES.index("mug") + len(CATEGORIES), 0)[3]
    assert sdf_to_mesh(s, 48).is_watertight
    assert sdf_grid(_sphere(), 9, sampling="corner").shape == (9, 9, 9)


def test_sdf_to_octree_no_surface():
    with pytest.raises(ValueError, match="no surface"):
        sdf_to_octree(lambda p: p.norm(dim=-1) + 5.0, 4)


def test_preprocess_shards_round_trip(tmp_path):
    from octgen.data.shapes import load_shards, preprocess_shapes

    paths = preprocess_shapes("val", 5, 4, tmp_path, seed=2, shard_size=2)
    assert len(paths) == 3
    mtimes = [p.stat().st_mtime_ns for p in paths]
    assert preprocess_shapes("val", 5, 4, tmp_path, seed=2, shard_size=2) == paths
    assert [p.stat().st_mtime_ns for p in paths] == mtimes  # preprocessed once
    shards = load_shards(tmp_path, "val", 4, seed=2)
    ds = ShapeDataset("val", 5, seed=2)
    for i in range(5):
        rec, s = shards[i], ds[i]
        octree, leaf_sdf = sdf_to_octree(s.sdf, 4, slack=1.05)
        assert torch.equal(rec.leaf_keys, octree.keys[4]) and rec.octree() == octree
        assert (rec.leaf_sdf - leaf_sdf).abs().max() <= 0.5 * math.sqrt(3) / 16 * 1.05 / 127 + 1e-6
        assert rec.captions == s.captions and rec.attributes == s.attributes and rec.category == s.category


# ----------------------------------------------------------------------------- real meshes
@pytest.mark.parametrize("kind", ["sphere", "box"])
def test_mesh_sdf_matches_analytic(kind):
    if kind == "sphere":
        mesh, ref = trimesh.creation.icosphere(4, radius=2.0), _sphere(0.9)
    else:
        mesh, ref = trimesh.creation.box((4.0, 2.0, 2.0)), _box_sdf(torch.tensor([0.9, 0.45, 0.45]))
    g = mesh_to_sdf(mesh, resolution=32, margin=0.1)
    assert math.isclose(g.scale, 0.45, rel_tol=1e-6)
    p = _points(20_000)
    err = (g(p) - ref(p)).abs()
    h = 2 / 32
    assert err.max() < 1.2 * h and err.mean() < 0.15 * h
    assert ((g(p) < 0) == (ref(p) < 0)).float().mean() > 0.995


def test_non_watertight_and_badly_oriented_meshes():
    sphere = trimesh.creation.icosphere(4, radius=1.0)
    holey = trimesh.Trimesh(sphere.vertices, sphere.faces[np.arange(len(sphere.faces)) % 40 != 0])
    assert not holey.is_watertight
    flipped = sphere.copy()
    flipped.faces[::3] = flipped.faces[::3, ::-1]  # a third of the faces wound the wrong way
    p = _points(20_000)
    ref = p.norm(dim=-1) - 0.9
    for mesh in (holey, flipped):
        g = mesh_to_sdf(mesh, resolution=32)
        assert ((g(p) < 0) == (ref < 0)).float().mean() > 0.99
    # A hole much wider than a cell floods the inside; the winding number still closes it.
    capless = trimesh.Trimesh(sphere.vertices * 0.9, sphere.faces[sphere.triangles_center[:, 1] < 0.8])
    g = mesh_to_sdf(capless, resolution=32, normalize=False)
    # (the missing cap itself, 1 % of the cube, is legitimately outside)
    assert ((g(p) < 0) == (ref < 0)).float().mean() > 0.98
    g_flood = mesh_to_sdf(capless, resolution=32, normalize=False, sign_method="flood")
    assert ((g_flood(p) < 0) == (ref < 0)).float().mean() < 0.9  # the flood fill alone leaks
    # Two overlapping parts: the union is solid, the buried faces do not carve it.
    parts = trimesh.util.concatenate([trimesh.creation.box((1, 1, 1)), trimesh.creation.box((1, 1, 1)).apply_translation([0.5, 0, 0])])
    g = mesh_to_sdf(parts, resolution=32)
    assert (g(torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [-0.3, 0.0, 0.0]])) < 0).all()
    # An open sheet becomes a thin slab, not nothing.
    sheet = trimesh.Trimesh([[-1, 0, -1], [1, 0, -1], [1, 0, 1], [-1, 0, 1]], [[0, 1, 2], [0, 2, 3]])
    m = sdf_to_mesh(mesh_to_sdf(sheet, resolution=32), 33)
    assert m.is_watertight and m.extents[1] < 0.15 and m.extents[0] > 1.7


def test_mesh_file_cache_and_folder_walk(tmp_path):
    root = tmp_path / "shapenet" / "03001627" / "abc" / "models"
    root.mkdir(parents=True)
    trimesh.creation.box((1, 2, 1)).export(root / "model_normalized.obj")
    (tmp_path / "thingi").mkdir()
    trimesh.creation.icosphere(2).export(tmp_path / "thingi" / "1.STL")
    (tmp_path / ".hidden").mkdir()
    trimesh.creation.icosphere(1).export(tmp_path / ".hidden" / "x.ply")
    (tmp_path / "notes.txt").write_text("not a mesh")
    files = list(iter_mesh_files(tmp_path))
    assert [f.name for f in files] == ["model_normalized.obj", "1.STL"]
    cache = tmp_path / "cache"
    a = mesh_file_to_sdf(files[0], resolution=16, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 1
    b = mesh_file_to_sdf(files[0], resolution=16, cache_dir=cache)
    assert isinstance(b, GridSDF) and torch.allclose(a.grid, b.grid, atol=2e-3)  # cached in float16
    with pytest.raises(InputError):
        list(iter_mesh_files(tmp_path / "missing"))


def _write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name,data", [
    ("empty.obj", b""),
    ("garbage.stl", b"\x00\xff" * 50),
    ("nan.obj", b"v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"),
    ("degenerate.obj", b"v 0 0 0\nv 1 1 1\nv 2 2 2\nf 1 2 3\n"),
    ("points.ply", b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n"),
    ("text.glb", b"hello"),
])
def test_bad_mesh_files_give_one_line_input_error(tmp_path, name, data):
    with pytest.raises(InputError) as e:
        mesh_file_to_sdf(_write(tmp_path, name, data), resolution=16, cache=False)
    assert "\n" not in str(e.value) and name in str(e.value)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(data=b"f 1 2 3\n", suffix=".obj", prefix=b"v 0 0 0\nv 1 0 0\nv 0 1 0\n")
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".obj", ".stl", ".ply", ".off", ".glb"]),
       prefix=st.sampled_from([b"", b"v 0 0 0\nv 1 0 0\nv 0 1 0\n", b"OFF\n3 1 0\n", b"ply\n", b"solid x\n"]))
def test_any_bytes_give_sdf_or_input_error(tmp_path, data, suffix, prefix):
    path = _write(tmp_path, "fuzz" + suffix, prefix + data)
    try:
        g = mesh_file_to_sdf(path, resolution=16, cache=False)
    except InputError as e:
        assert "\n" not in str(e)
    else:
        assert torch.isfinite(g.grid).all()


_coord = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=25, deadline=None)
@example(verts=[(0.0, 0.0, 1.125e12), (0.0, 1.0, 0.0), (0.0, 0.0, 0.0)], faces=[(0, 1, 2)])  # found by hypothesis
@example(verts=[(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)],
         faces=[(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)])
@example(verts=[(-1e308, 0.0, 0.0), (1e308, 0.0, 0.0), (0.0, 1e308, 0.0)], faces=[(0, 1, 2)])
@example(verts=[(0.0, 0.0, 0.0), (1e-300, 0.0, 0.0), (0.0, 1e-300, 0.0)], faces=[(0, 1, 2)])
@given(verts=st.lists(st.tuples(_coord, _coord, _coord), min_size=0, max_size=8),
       faces=st.lists(st.tuples(*[st.integers(-1, 8)] * 3), min_size=0, max_size=8))
def test_any_in_memory_mesh_gives_sdf_or_input_error(verts, faces):
    mesh = trimesh.Trimesh(np.asarray(verts, dtype=np.float64).reshape(-1, 3),
                           np.asarray(faces, dtype=np.int64).reshape(-1, 3), process=False, validate=False)
    try:
        g = mesh_to_sdf(mesh, resolution=16)
    except InputError as e:
        assert "\n" not in str(e)
    else:
        assert torch.isfinite(g.grid).all() and (g.grid < 0).any()


def test_huge_mesh_is_handled():
    big = trimesh.creation.icosphere(8)  # 1.3 million faces
    g = mesh_to_sdf(big, resolution=16)
    p = _points(2000)
    assert ((g(p) < 0) == (p.norm(dim=-1) < 0.9)).float().mean() > 0.97
