"""Reading user mesh files, with every check a user's file needs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
MAX_FACES = 20_000_000


def load_mesh(path: str | os.PathLike):
    """Load a triangle mesh (all parts of a scene merged) and validate it.

    Raises:
        InputError: missing or unreadable file, unsupported suffix, no faces,
            NaN / inf vertices, zero surface area, more than ``MAX_FACES`` faces.
    """
    import trimesh

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a mesh file")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise InputError(f"{path}: unsupported mesh format '{path.suffix}' (use {', '.join(MESH_SUFFIXES)})")
    try:
        mesh = trimesh.load(str(path), force="mesh", process=False)
    except Exception as e:  # trimesh raises many types for malformed files
        raise InputError(f"{path}: could not read mesh ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else 'no detail'})") from None
    return check_mesh(mesh, str(path))


def check_mesh(mesh, name: str = "mesh"):
    """Validate an in-memory mesh; returns it, or raises :class:`InputError`."""
    import trimesh

    if not isinstance(mesh, trimesh.Trimesh):
        raise InputError(f"{name}: contains no triangle mesh")
    v = np.asarray(mesh.vertices)
    f = np.asarray(mesh.faces)
    if len(v) == 0 or len(f) == 0:
        raise InputError(f"{name}: mesh is empty (no faces)")
    if len(f) > MAX_FACES:
        raise InputError(f"{name}: {len(f):,} faces is more than the {MAX_FACES:,} octgen accepts")
    if not np.isfinite(v).all():
        raise InputError(f"{name}: mesh has NaN or infinite vertex coordinates")
    if f.min() < 0 or f.max() >= len(v):
        raise InputError(f"{name}: mesh faces refer to missing vertices")
    if not float(mesh.area) > 0:
        raise InputError(f"{name}: mesh has zero surface area")
    extent = float(np.ptp(v, axis=0).max())
    if not extent > 0:
        raise InputError(f"{name}: mesh has zero extent")
    return mesh
