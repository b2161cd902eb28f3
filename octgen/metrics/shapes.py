"""Shape reconstruction metrics in the [-1, 1]^3 frame.

- Volumetric IoU of two solids, from boolean occupancy at the same points
  (:func:`volumetric_iou`); occupancy of a watertight mesh on a dense grid by exact
  ray parity (:func:`mesh_occupancy_grid`), of an SDF by its sign.
- Chamfer-L1, the mean of both directions of a mean Euclidean distance, in two
  kinds named for what they measure: point-to-point (:func:`surface_distances`:
  from each of ``n`` area-uniform surface samples to the nearest sample of the
  other surface, Occupancy Networks' convention, 100k samples by default) and
  point-to-surface (:func:`chamfer_l1_point_to_surface`: to the other surface
  itself, so the sample spacing adds no floor). The batch of pairwise distances
  between point clouds is :func:`octgen.metrics.distribution.pairwise_chamfer_l1`.
- Normal consistency: mean ``|n_a . n_b|`` between each sample's face normal and
  that of its nearest neighbour on the other surface, both directions averaged.
- Whole objects: the share of a mesh's surface area held by its largest
  face-connected part (:func:`largest_part_area_fraction`); scattered fragments
  score low, one closed object scores 1.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..data.grid import sdf_grid
from ..data.sdf import closest_on_surface


def sdf_occupancy_grid(sdf_fn: Callable, res: int = 128) -> np.ndarray:
    """(res, res, res) bool: ``sdf < 0`` at the cell centres."""
    return (sdf_grid(sdf_fn, res, sampling="centre") < 0).numpy()


def mesh_occupancy_grid(mesh, res: int = 128) -> np.ndarray:
    """(res, res, res) bool inside-ness of a watertight mesh at the grid cell centres.

    Exact ray parity: a ray along +z through each (x, y) column crosses the surface
    at heights found per triangle; a centre is inside when an odd number of
    crossings lie below it. Columns are shifted by a tiny irrational offset so no
    ray passes exactly through an edge or vertex of an axis-aligned mesh.
    """
    h = 2.0 / res
    tri = np.asarray(mesh.triangles, dtype=np.float64)  # (F, 3, 3)
    counts = np.zeros((res, res, res + 1), dtype=np.int32)
    if len(tri):
        eps = h * 1e-4 * np.array([np.sqrt(2), np.sqrt(3)])
        lo = np.floor((tri[:, :, :2].min(1) + 1.0 - eps) / h - 0.5).astype(np.int64) + 1
        hi = np.floor((tri[:, :, :2].max(1) + 1.0 - eps) / h - 0.5).astype(np.int64)
        lo = np.clip(lo, 0, res - 1)
        hi = np.clip(hi, -1, res - 1)
        nx = np.maximum(hi[:, 0] - lo[:, 0] + 1, 0)
        ny = np.maximum(hi[:, 1] - lo[:, 1] + 1, 0)
        ncand = nx * ny
        fid = np.repeat(np.arange(len(tri)), ncand)
        if len(fid):
            start = np.repeat(np.cumsum(ncand) - ncand, ncand)
            r = np.arange(len(fid)) - start
            ci = lo[fid, 0] + r // np.maximum(ny[fid], 1)
            cj = lo[fid, 1] + r % np.maximum(ny[fid], 1)
            px = ci * h + h / 2 - 1.0 + eps[0]
            py = cj * h + h / 2 - 1.0 + eps[1]
            a, b, c = tri[fid, 0], tri[fid, 1], tri[fid, 2]
            # Barycentric coordinates of (px, py) in the triangle's xy projection.
            det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
            ok = np.abs(det) > 1e-18
            det = np.where(ok, det, 1.0)
            w1 = ((px - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (py - a[:, 1])) / det
            w2 = ((b[:, 0] - a[:, 0]) * (py - a[:, 1]) - (px - a[:, 0]) * (b[:, 1] - a[:, 1])) / det
            w0 = 1 - w1 - w2
            hit = ok & (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
            z = w0 * a[:, 2] + w1 * b[:, 2] + w2 * c[:, 2]
            # First grid centre strictly above the crossing.
            k = np.clip(np.floor((z + 1.0) / h - 0.5).astype(np.int64) + 1, 0, res)
            np.add.at(counts, (ci[hit], cj[hit], k[hit]), 1)
    return (np.cumsum(counts, axis=2)[:, :, :res] % 2) == 1


def volumetric_iou(occ_a: np.ndarray, occ_b: np.ndarray) -> float:
    """|A ∩ B| / |A ∪ B| of two boolean occupancy arrays at the same points
    (1.0 when both are empty)."""
    occ_a, occ_b = np.asarray(occ_a, bool), np.asarray(occ_b, bool)
    union = np.logical_or(occ_a, occ_b).sum()
    return float(np.logical_and(occ_a, occ_b).sum() / union) if union else 1.0


def largest_part_area_fraction(mesh) -> float:
    """Area of the largest face-connected part of ``mesh`` over its total area
    (0.0 for an empty mesh). Parts are connected through shared edges."""
    from ..octree.mesh import mesh_parts

    if len(mesh.faces) == 0 or mesh.area <= 0:
        return 0.0
    _, per_part = mesh_parts(mesh)
    return float(per_part.max() / per_part.sum())


def sample_surface_with_normals(mesh, n: int = 100_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) area-uniform surface points and their (n, 3) face normals."""
    import trimesh

    pts, fid = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(pts), np.asarray(mesh.face_normals)[fid]


def surface_distances(pts_a, nrm_a, pts_b, nrm_b) -> dict:
    """Point-to-point Chamfer-L1 (``chamfer_l1``; its directions ``completeness``,
    a to b, and ``accuracy``, b to a) and normal consistency between two surface
    samplings."""
    from scipy.spatial import cKDTree

    d_ab, i_ab = cKDTree(pts_b).query(pts_a, k=1)
    d_ba, i_ba = cKDTree(pts_a).query(pts_b, k=1)
    nc_ab = np.abs(np.einsum("ij,ij->i", nrm_a, nrm_b[i_ab])).mean()
    nc_ba = np.abs(np.einsum("ij,ij->i", nrm_b, nrm_a[i_ba])).mean()
    return {"chamfer_l1": float(0.5 * (d_ab.mean() + d_ba.mean())),
            "accuracy": float(d_ba.mean()), "completeness": float(d_ab.mean()),
            "normal_consistency": float(0.5 * (nc_ab + nc_ba))}


def point_to_surface_distance(points_N3: np.ndarray, mesh, k: int = 4, seed: int = 0) -> np.ndarray:
    """(N,) Euclidean distance from points to the surface of ``mesh``
    (:func:`octgen.data.sdf.closest_on_surface` over ``max(200k, 2N)`` surface samples)."""
    import trimesh
    from scipy.spatial import cKDTree

    samples, face_idx = trimesh.sample.sample_surface(mesh, max(200_000, 2 * len(points_N3)), seed=seed)
    dist, _, _ = closest_on_surface(np.asarray(points_N3), np.asarray(mesh.vertices), np.asarray(mesh.faces),
                                    cKDTree(samples), face_idx, k)
    return dist


def chamfer_l1_point_to_surface(mesh_a, mesh_b, samples: int, seed: int = 0) -> float:
    """Mean of both directions of the mean distance from ``samples`` area-uniform
    points on one mesh to the other mesh's surface (no floor from the spacing of
    samples on the second mesh, unlike the point-to-point :func:`surface_distances`)."""
    import trimesh

    pa, _ = trimesh.sample.sample_surface(mesh_a, samples, seed=seed)
    pb, _ = trimesh.sample.sample_surface(mesh_b, samples, seed=seed + 1)
    return 0.5 * (point_to_surface_distance(pa, mesh_b, seed=seed + 2).mean()
                  + point_to_surface_distance(pb, mesh_a, seed=seed + 3).mean())


def compare_meshes(ref_mesh, ref_occupancy: np.ndarray, mesh, res: int | None = None,
                   n_surface: int = 100_000, seed: int = 0) -> dict:
    """IoU, Chamfer-L1 and normal consistency of ``mesh`` (watertight) against a
    reference surface ``ref_mesh`` and reference occupancy grid.

    Args:
        ref_mesh: reference surface (any triangle mesh in [-1, 1]^3).
        ref_occupancy: (R, R, R) bool reference solid at the cell centres.
        mesh: reconstruction (watertight, [-1, 1]^3); an empty mesh scores IoU 0
            (unless the reference is empty too) and Chamfer ``inf``.
    """
    res = ref_occupancy.shape[0] if res is None else res
    if len(mesh.faces) == 0:
        return {"iou": 1.0 if not ref_occupancy.any() else 0.0, "chamfer_l1": float("inf"),
                "accuracy": float("inf"), "completeness": float("inf"), "normal_consistency": 0.0}
    occ = mesh_occupancy_grid(mesh, res)
    pa, na = sample_surface_with_normals(ref_mesh, n_surface, seed)
    pb, nb = sample_surface_with_normals(mesh, n_surface, seed + 1)
    return {"iou": volumetric_iou(ref_occupancy, occ), **surface_distances(pa, na, pb, nb)}
