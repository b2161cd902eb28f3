"""Meshes into octrees, through points sampled on the surface."""
from __future__ import annotations

import math

import numpy as np
import torch

from .octree import Octree, _check_depth, build_octree


def fit_box(lo, hi, margin: float = 0.05):
    """The uniform fit of the box [lo, hi] into the cube: ``p_fitted = (p - centre) *
    scale`` puts the box's centre at the origin and its longest side on
    [-1 + margin, 1 - margin]. The one bounding-box normalisation of octgen (meshes,
    mesh SDF grids, procedural SDFs).

    Args:
        lo, hi: (3,) box corners (numpy arrays or tensors; ``centre`` has their type).
        margin: free border, in [0, 1).
    Returns:
        ``(scale, centre)``: a float and a (3,) array or tensor.
    Raises:
        ValueError: ``margin`` outside [0, 1), or a box of zero extent.
    """
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    extent = float((hi - lo).max())
    if not extent > 0:
        raise ValueError("the bounding box has zero extent")
    return 2 * (1 - margin) / extent, (lo + hi) / 2


def normalize_mesh(mesh, margin: float = 0.05):
    """Copy of ``mesh`` fitted into the cube by :func:`fit_box` of its bounds."""
    scale, centre = fit_box(*mesh.bounds, margin)
    mesh = mesh.copy()
    mesh.apply_translation(-centre)
    mesh.apply_scale(scale)
    return mesh


def mesh_parts(mesh) -> tuple[np.ndarray, np.ndarray]:
    """Face-connected parts of ``mesh`` (faces joined through shared edges): the
    ``(F,)`` part label of each face and the ``(K,)`` surface area of each part
    (both empty for a mesh without faces)."""
    import trimesh

    if len(mesh.faces) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    return labels, np.bincount(labels, weights=mesh.area_faces)


def surface_sample_count(area: float, depth: int, per_cell: float = 8.0,
                         min_points: int = 10_000, max_points: int = 2_000_000) -> int:
    """Points to sample so that each surface cell at ``depth`` gets about
    ``per_cell`` samples (a cell of side h holds at most ~h^2 of flat surface)."""
    h = 2.0 / (1 << depth)
    return int(min(max_points, max(min_points, math.ceil(per_cell * area / (h * h)))))


def sample_surface(mesh, count: int, seed: int = 0) -> torch.Tensor:
    """(count, 3) float32 points sampled uniformly by area on the mesh surface."""
    import trimesh

    pts, _ = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return torch.from_numpy(np.asarray(pts, dtype=np.float32))


def mesh_to_octree(mesh, depth: int, normalize: bool = True, margin: float = 0.05,
                   num_points: int | None = None, seed: int = 0) -> Octree:
    """Octree of the cells at ``depth`` that the mesh surface passes through.

    Args:
        mesh: a ``trimesh.Trimesh`` with at least one face of non-zero area.
        depth: finest depth, 0..10.
        normalize: first fit the mesh into [-1 + margin, 1 - margin]^3; if False
            the mesh must already lie in [-1, 1]^3.
        num_points: surface samples; default from :func:`surface_sample_count`.
        seed: sampling seed (same seed, same octree).
    """
    _check_depth(depth)
    if normalize:
        mesh = normalize_mesh(mesh, margin)
    area = float(mesh.area)
    if not area > 0:
        raise ValueError("mesh has zero surface area")
    count = num_points or surface_sample_count(area, depth)
    # Vertices are on the surface too and pin down thin features random samples may miss.
    pts = torch.cat([sample_surface(mesh, count, seed), torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32)])
    return build_octree(pts.clamp(-1, 1), depth)
