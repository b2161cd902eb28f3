"""octgen.data.grid (grid points, chunked SDF evaluation, marching cubes), the box fit
shared by meshes and SDFs, and the point-to-surface Chamfer distance."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from octgen.data.grid import eval_sdf, grid_points, grid_to_mesh, sdf_grid
from octgen.data.sdf import normalize_sdf, sdf_to_mesh
from octgen.metrics.shapes import (chamfer_l1_point_to_surface, point_to_surface_distance,
                                   sample_surface_with_normals, surface_distances)
from octgen.octree import xyz_to_centres
from octgen.octree.mesh import fit_box, normalize_mesh


def sphere(r, c=(0.0, 0.0, 0.0)):
    c = torch.tensor(c)
    return lambda p: (p - c).norm(dim=-1) - r


def test_grid_points_frames():
    centres = grid_points(8, "centre")
    # The centre grid of R = 2^d is the octree's depth-d cell centres, in [x, y, z] order.
    xyz = torch.stack(torch.meshgrid(*[torch.arange(8)] * 3, indexing="ij"), -1).reshape(-1, 3)
    assert torch.equal(centres, xyz_to_centres(xyz, 3))
    corners = grid_points(5, "corner", torch.float64)
    assert corners[0].tolist() == [-1, -1, -1] and corners[-1].tolist() == [1, 1, 1]
    assert corners[1].tolist() == [-1, -1, -0.5]
    with pytest.raises(ValueError, match="sampling"):
        grid_points(4, "vertex")


def test_eval_sdf_chunks_and_checks_shape():
    p = torch.rand(1000, 3) * 2 - 1
    f = sphere(0.5)
    assert torch.equal(eval_sdf(f, p, chunk=7), f(p))
    with pytest.raises(ValueError, match="one value per point"):
        eval_sdf(lambda q: q[:, :2], p)
    with pytest.raises(ValueError, match="NaN"):
        sdf_grid(lambda q: q[:, 0] * float("nan"), 4, sampling="centre")


@pytest.mark.parametrize("sampling, res", [("centre", 32), ("corner", 33)])
def test_marching_cubes_places_the_surface_in_the_cube_frame(sampling, res):
    # An off-centre ball: the mesh must sit where the SDF puts it, whatever the sampling.
    r, c = 0.4, (0.3, -0.2, 0.1)
    mesh = grid_to_mesh(sdf_grid(sphere(r, c), res, sampling=sampling), sampling=sampling)
    assert mesh.is_watertight and mesh.volume > 0  # outward faces
    assert abs(mesh.volume / (4 / 3 * math.pi * r ** 3) - 1) < 0.05
    radii = np.linalg.norm(mesh.vertices - np.array(c), axis=1)
    assert np.abs(radii - r).max() < 0.02


def test_marching_cubes_empty_grid_and_cut_shapes():
    outside = torch.ones(8, 8, 8)
    assert len(grid_to_mesh(outside, sampling="centre").faces) == 0
    with pytest.raises(ValueError, match="no surface"):
        grid_to_mesh(outside, sampling="corner", allow_empty=False)
    with pytest.raises(ValueError, match="NaN"):
        grid_to_mesh(torch.full((4, 4, 4), float("nan")), sampling="centre")
    # A slab through the whole cube is closed off at the cube's faces.
    slab = lambda p: p[:, 2].abs() - 0.3
    for kwargs in ({}, {"drop_degenerate": True, "merge_vertices": False}):
        mesh = grid_to_mesh(sdf_grid(slab, 16, sampling="centre"), sampling="centre", **kwargs)
        assert mesh.is_watertight and mesh.volume > 0


def test_exact_zero_samples_do_not_pinch_the_mesh():
    # A box whose faces fall exactly on lattice points: zero values are nudged outside.
    box = lambda p: (p.abs() - 0.5).max(dim=-1).values
    mesh = sdf_to_mesh(box, 17)
    assert mesh.is_watertight and mesh.volume > 0
    assert np.allclose(mesh.bounds, [[-0.5] * 3, [0.5] * 3], atol=1e-4)


def test_fit_box_and_the_two_normalisations_agree():
    import trimesh

    mesh = trimesh.creation.box(extents=[2.0, 1.0, 0.5])
    mesh.apply_translation([3.0, -1.0, 2.0])
    scale, centre = fit_box(*mesh.bounds, 0.1)
    assert scale == pytest.approx(0.9) and np.allclose(centre, [3, -1, 2])
    fitted = normalize_mesh(mesh, 0.1)
    assert np.allclose(fitted.bounds, [[-0.9, -0.45, -0.225], [0.9, 0.45, 0.225]])
    # The same box as an SDF, fitted by normalize_sdf: the zero level set lands in
    # the same place (up to the probe grid's resolution).
    half = torch.tensor([0.8, 0.4, 0.2])  # inside the probe box [-1.2, 1.2]^3
    shift = torch.tensor([0.2, -0.1, 0.1])
    box = lambda p: ((p - shift).abs() - half).max(dim=-1).values
    fn = normalize_sdf(box, 0.1, probe_depth=6)
    h = 2.4 / 64
    assert abs(fn(torch.tensor([[0.0, 0.0, 0.0]])).item() + 0.225) < 2 * h
    assert abs(fn(torch.tensor([[0.9, 0.0, 0.0]])).item()) < 2 * h
    assert normalize_sdf(lambda p: p[:, 0] * 0 + 1.0) is None  # nothing inside
    with pytest.raises(ValueError, match="margin"):
        fit_box(np.zeros(3), np.ones(3), 1.0)
    with pytest.raises(ValueError, match="zero extent"):
        fit_box(np.ones(3), np.ones(3), 0.1)


def test_point_to_surface_chamfer_has_no_sampling_floor():
    import trimesh

    a = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    b = a.copy()
    b.apply_translation([0.01, 0.0, 0.0])
    # Point-to-surface: the same surface is (nearly) 0 apart however sparse the
    # samples; point-to-point between two samplings of it is not.
    assert chamfer_l1_point_to_surface(a, a, samples=2000) < 1e-4
    pa, na = sample_surface_with_normals(a, 2000, seed=0)
    pb, nb = sample_surface_with_normals(a, 2000, seed=1)
    assert surface_distances(pa, na, pb, nb)["chamfer_l1"] > 5e-3
    # Two concentric spheres are exactly their radius difference apart.
    c = trimesh.creation.icosphere(subdivisions=5, radius=0.6)
    d = point_to_surface_distance(np.asarray(a.vertices), c)
    assert np.allclose(d, 0.1, atol=2e-3)
    shifted = chamfer_l1_point_to_surface(a, b, samples=2000)
    assert abs(shifted - 0.005) < 5e-4  # 0.01 times the mean |cos| over a sphere, 1/2


def test_signed_volume_is_trimesh_volume_with_its_sign():
    import trimesh

    from octgen.data.grid import signed_volume

    for mesh in (trimesh.creation.icosphere(subdivisions=2, radius=0.7),
                 trimesh.creation.box(extents=(0.3, 0.5, 0.9)),
                 trimesh.creation.annulus(r_min=0.2, r_max=0.5, height=0.3)):
        mesh.apply_translation([0.3, -0.2, 0.1])  # not about the origin
        assert signed_volume(mesh.vertices, mesh.faces) == pytest.approx(mesh.volume, rel=1e-9)
        inverted = mesh.copy()
        inverted.invert()
        assert signed_volume(inverted.vertices, inverted.faces) == pytest.approx(-mesh.volume, rel=1e-9)
