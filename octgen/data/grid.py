"""Dense grids over the cube [-1, 1]^3: where they sample, evaluating an SDF on
them, and marching cubes back to a triangle mesh. The one place octgen does each.

Two samplings, always named explicitly (``sampling=``):

- ``"centre"``: the ``R^3`` cell centres ``-1 + (i + 0.5) * 2 / R``; with ``R = 2^d``
  these are the centres of the octree's depth-``d`` cells (the shape tokenizer,
  occupancy metrics, :class:`octgen.data.sdf.GridSDF`).
- ``"corner"``: the ``R^3`` lattice points ``linspace(-1, 1, R)``, which include the
  cube's faces (:func:`octgen.data.sdf.sdf_to_mesh`, cell-corner tests).

Grids are indexed [x, y, z]; SDFs are negative inside and take (N, 3) float32
points to (N,) values.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

SdfFn = Callable[[torch.Tensor], torch.Tensor]
SAMPLINGS = ("centre", "corner")


def _check_sampling(sampling: str) -> None:
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")


def grid_points(resolution: int, sampling: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(R^3, 3) sample points of the ``R = resolution`` grid, flat in [x, y, z] order
    (point ``(i * R + j) * R + k``).

    Args:
        resolution: points per axis (>= 2 for ``"corner"``).
        sampling: ``"centre"`` or ``"corner"`` (see the module docstring).
        dtype: ``torch.float32`` for SDF calls, ``torch.float64`` for exact geometry.
    """
    _check_sampling(sampling)
    if sampling == "corner":
        if resolution < 2:
            raise ValueError(f"a corner grid needs resolution >= 2, got {resolution}")
        axis = torch.linspace(-1.0, 1.0, resolution, dtype=dtype)
    else:
        # In float64 first, so float32 points are the correctly rounded centres.
        axis = torch.from_numpy(-1 + (np.arange(resolution) + 0.5) * (2.0 / resolution)).to(dtype)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)


@torch.no_grad()
def eval_sdf(sdf_fn: SdfFn, points_N3: torch.Tensor, chunk: int = 1 << 17) -> torch.Tensor:
    """``sdf_fn`` at (N, 3) points, ``chunk`` points per call (bounds peak memory).

    Returns:
        (N,) float32.
    Raises:
        ValueError: ``sdf_fn`` does not return one value per point.
    """
    out = []
    for i in range(0, points_N3.shape[0], chunk):
        p = points_N3[i:i + chunk]
        v = torch.as_tensor(sdf_fn(p)).float().reshape(-1)
        if v.numel() != p.shape[0]:
            raise ValueError("sdf_fn must return one value per point")
        out.append(v)
    return torch.cat(out) if out else torch.zeros(0)


def sdf_grid(sdf_fn: SdfFn, resolution: int, *, sampling: str, chunk: int = 1 << 17) -> torch.Tensor:
    """``sdf_fn`` on the ``resolution^3`` grid of ``sampling``.

    Returns:
        (R, R, R) float32 tensor indexed [x, y, z].
    Raises:
        ValueError: wrong output shape, or NaN / inf values.
    """
    grid = eval_sdf(sdf_fn, grid_points(resolution, sampling), chunk)
    if not torch.isfinite(grid).all():
        raise ValueError("sdf_fn returned NaN or inf")
    return grid.reshape(resolution, resolution, resolution)


def grid_to_mesh(grid_XYZ, *, sampling: str, allow_empty: bool = True, drop_degenerate: bool = False,
                 merge_vertices: bool = True):
    """Marching cubes (scikit-image) of the zero level set of a grid SDF, in [-1, 1]^3.

    The grid is first padded by one sample of an outside value, so a surface cut by
    the grid's border is closed; samples exactly at zero are nudged outside (they
    make marching cubes emit pinched, non-manifold vertices). Triangles face
    outward: the mesh is inverted when its signed volume is negative.

    The defaults are what the shape tokenizer's decode has always done (the shipped
    checkpoints' meshes); :func:`octgen.data.sdf.sdf_to_mesh` asks for a strictly
    manifold mesh with ``drop_degenerate=True, merge_vertices=False``.

    Args:
        grid_XYZ: (R, R, R) float array or tensor, indexed [x, y, z], negative inside,
            any positive scale.
        sampling: where the values sit, ``"centre"`` or ``"corner"`` (module docstring).
        allow_empty: a grid without a sign change gives an empty mesh; else ValueError.
        drop_degenerate: drop zero-area triangles (skimage ``allow_degenerate=False``).
        merge_vertices: let trimesh merge coincident vertices; marching cubes already
            shares vertices, and merging nearby ones can pinch thin parts.
    Returns:
        ``trimesh.Trimesh``.
    Raises:
        ValueError: NaN / inf values; no sign change and not ``allow_empty``.
    """
    import trimesh
    from skimage.measure import marching_cubes

    _check_sampling(sampling)
    g = np.asarray(grid_XYZ.cpu() if torch.is_tensor(grid_XYZ) else grid_XYZ, dtype=np.float32)
    if not np.isfinite(g).all():
        raise ValueError("SDF grid contains NaN or inf")
    if not (g.min() < 0 < g.max()):
        if allow_empty:
            return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
        raise ValueError("the SDF grid has no surface (no sign change)")
    res = g.shape[0]
    step, first = (2.0 / (res - 1), -1.0) if sampling == "corner" else (2.0 / res, -1.0 + 1.0 / res)
    g = np.pad(g, 1, constant_values=float(np.abs(g).max() + 1.0))
    g[g == 0] = 1e-6
    verts, faces, _, _ = marching_cubes(g, level=0.0, allow_degenerate=not drop_degenerate)
    verts = verts * step + (first - step)  # index 1 of the padded grid is the first sample
    mesh = trimesh.Trimesh(verts, faces, process=merge_vertices)
    if signed_volume(mesh.vertices, mesh.faces) < 0:
        mesh.invert()
    return mesh


def signed_volume(vertices, faces) -> float:
    """Signed volume of a triangle mesh (positive when its triangles face outward):
    the sum of the tetrahedra from the origin, without the mass properties that
    ``trimesh``'s ``volume`` also computes (a third of a 128^3 decode's time)."""
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    return float(np.einsum("ij,ij->", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6.0)
