"""Mesh outputs: voxel meshes of octree cells and atomic mesh export."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..octree import Octree, key_to_xyz
from .atomic import atomic_path, check_out_path

MESH_OUT_FORMATS = (".glb", ".obj", ".ply", ".stl")

# For each of the 6 face directions: the neighbour offset and the 4 corners of the
# unit cube face (counter-clockwise seen from outside).
_FACE_DIRS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]])
_FACE_CORNERS = np.array([
    [[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0]],
    [[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1]],
    [[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]],
    [[0, 1, 0], [0, 1, 1], [1, 1, 1], [1, 1, 0]],
    [[0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]],
    [[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]],
])


def cells_to_voxel_mesh(xyz: np.ndarray, depth: int):
    """Watertight mesh of the union of cells: only faces between a filled and an
    empty cell are emitted. ``xyz``: (N, 3) integer cell coordinates at ``depth``."""
    import trimesh

    xyz = np.asarray(xyz, dtype=np.int64)
    res = 1 << depth
    occ = np.zeros((res + 2,) * 3, dtype=bool)
    occ[xyz[:, 0] + 1, xyz[:, 1] + 1, xyz[:, 2] + 1] = True
    verts, faces = [], []
    n_verts = 0
    h = 2.0 / res
    for d, corners in zip(_FACE_DIRS, _FACE_CORNERS):
        nb = xyz + d
        exposed = xyz[~occ[nb[:, 0] + 1, nb[:, 1] + 1, nb[:, 2] + 1]]
        quad = (exposed[:, None, :] + corners[None]) * h - 1.0  # (F, 4, 3)
        verts.append(quad.reshape(-1, 3))
        base = n_verts + 4 * np.arange(len(exposed))[:, None]
        faces.append(np.concatenate([base + [0, 1, 2], base + [0, 2, 3]], axis=0))
        n_verts += 4 * len(exposed)
    mesh = trimesh.Trimesh(np.concatenate(verts), np.concatenate(faces), process=True)
    return mesh


def octree_to_voxel_mesh(octree: Octree, depth: int | None = None):
    """Mesh of the occupied cells of ``octree`` at ``depth`` (default: the leaves)."""
    d = octree.depth if depth is None else depth
    return cells_to_voxel_mesh(key_to_xyz(octree.keys[d]).numpy(), d)


def check_mesh_out_path(path: str | os.PathLike) -> Path:
    """Validate an output mesh path (.glb, .obj, .ply, .stl) before any work is done."""
    return check_out_path(path, MESH_OUT_FORMATS, "mesh")


def save_mesh(mesh, path: str | os.PathLike) -> Path:
    """Export ``mesh`` to ``path`` (format from the suffix) atomically."""
    path = check_mesh_out_path(path)
    with atomic_path(path) as tmp:
        mesh.export(str(tmp), file_type=path.suffix.lower().lstrip("."))
    return path
