"""Signed distance fields for the shape tokenizer: dense grids, the surface band
octree, mesh -> SDF, and SDF grid -> watertight mesh.

Frame: the unit cube [-1, 1]^3 of :mod:`octgen.octree`. A depth-``D`` grid has
``2^D`` cells per side of size ``h = 2 / 2^D``; SDF values are sampled at cell
centres, negative inside.

The *surface band* at depth ``D`` is the set of cells whose centre has
``|sdf| < h``. For a 1-Lipschitz SDF, any sign change between two face-adjacent
centres (distance ``h``) has both centres in the band, so the band is a closed
shell: cells outside it are inside or outside by flood fill, and marching cubes
on the centre grid only ever crosses zero between band cells.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..octree import children_keys, key_to_xyz, xyz_to_key

SdfFn = Callable[[torch.Tensor], torch.Tensor]

# Points per call when evaluating an SDF on a dense grid (bounds peak memory).
_EVAL_CHUNK = 1 << 17


def grid_centres(depth: int) -> torch.Tensor:
    """(R^3, 3) float32 cell centres of the ``R = 2^depth`` grid, x-major (index
    ``(i * R + j) * R + k``)."""
    res = 1 << depth
    h = 2.0 / res
    ax = torch.arange(res, dtype=torch.float32) * h + (h / 2 - 1.0)
    return torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), dim=-1).reshape(-1, 3)


def sdf_to_grid(sdf_fn: SdfFn, depth: int) -> torch.Tensor:
    """Evaluate ``sdf_fn`` at every cell centre: (R, R, R) float32, indexed [x, y, z].

    Args:
        sdf_fn: callable (N, 3) float32 tensor -> (N,) signed distances.
        depth: grid depth (R = 2^depth).
    Raises:
        ValueError: the SDF returns the wrong shape or non-finite values.
    """
    pts = grid_centres(depth)
    out = []
    with torch.no_grad():
        for i in range(0, pts.shape[0], _EVAL_CHUNK):
            v = torch.as_tensor(sdf_fn(pts[i:i + _EVAL_CHUNK])).float().reshape(-1)
            if v.numel() != min(_EVAL_CHUNK, pts.shape[0] - i):
                raise ValueError("sdf_fn must return one value per point")
            out.append(v)
    grid = torch.cat(out)
    if not torch.isfinite(grid).all():
        raise ValueError("sdf_fn returned NaN or inf")
    res = 1 << depth
    return grid.reshape(res, res, res)


def grid_values_at(grid_RRR: torch.Tensor, xyz_N3: torch.Tensor) -> torch.Tensor:
    """Values of a dense grid at integer cell coordinates: (N, 3) -> (N,)."""
    return grid_RRR[xyz_N3[:, 0], xyz_N3[:, 1], xyz_N3[:, 2]]


def band_features(grid_RRR: torch.Tensor, xyz_N3: torch.Tensor, h: float, clip: float = 3.0) -> torch.Tensor:
    """Encoder input per band cell: the SDF at its centre and at the 6 face
    neighbours' centres, in cell units (``sdf / h``), clipped to ``±clip``.

    Returns:
        (N, 7) float32.
    """
    res = grid_RRR.shape[0]
    offs = torch.tensor([[0, 0, 0], [-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]])
    nb_N73 = (xyz_N3[:, None, :] + offs[None]).clamp_(0, res - 1)
    vals = grid_RRR[nb_N73[..., 0], nb_N73[..., 1], nb_N73[..., 2]]
    return (vals / h).clamp_(-clip, clip)


@dataclass
class ShapeBand:
    """One shape, preprocessed for the VQ-VAE (all tensors on CPU).

    Attributes:
        depth: fine depth D of the band (token depth is set by the model).
        keys: (N_band,) int64 sorted Morton keys of the band cells at depth D.
        features: (N_band, 7) float32 encoder input (see :func:`band_features`).
        fine_sdf: (8 * N_{D-1},) float32 SDF / h at every child of every depth
            D-1 parent of the band, in ``children_keys`` order (decoder target).
    """

    depth: int
    keys: torch.Tensor
    features: torch.Tensor
    fine_sdf: torch.Tensor


def grid_to_band(grid_RRR: torch.Tensor, depth: int) -> ShapeBand:
    """The surface band of a dense SDF grid (see the module docstring).

    Raises:
        ValueError: the band is empty (no surface inside the cube).
    """
    h = 2.0 / (1 << depth)
    res = 1 << depth
    band = grid_RRR.abs() < h
    if not band.any():
        raise ValueError("the shape has no surface inside [-1, 1]^3 at this resolution")
    xyz = band.nonzero()
    keys, order = torch.sort(xyz_to_key(xyz))
    xyz = xyz[order]
    parents = torch.unique_consecutive(keys >> 3)
    fine_xyz = key_to_xyz(children_keys(parents))
    fine = grid_values_at(grid_RRR, fine_xyz.clamp(0, res - 1)) / h
    return ShapeBand(depth, keys, band_features(grid_RRR, xyz, h), fine)


def sdf_to_band(sdf_fn: SdfFn, depth: int) -> ShapeBand:
    """Evaluate an SDF on the depth-``depth`` grid and extract its surface band."""
    return grid_to_band(sdf_to_grid(sdf_fn, depth), depth)


# --------------------------------------------------------------------------- meshes


def mesh_to_sdf_fn(mesh, grid_depth: int = 6, samples: int | None = None, seed: int = 0,
                   max_distance: float = 0.1) -> SdfFn:
    """A signed distance function for a mesh that need not be watertight.

    Magnitude: distance to the nearest of ``samples`` area-uniform surface points
    (k-d tree). Sign: the cells of a ``2^grid_depth`` grid that the surface
    touches are a wall; empty cells that a flood fill from the border cannot
    reach are inside. Near the surface (inside a wall cell) the sign comes from
    the nearest sample's face normal, each normal first oriented to point into
    the flood-filled outside; where both sides of a face are outside (an open
    sheet, a hole bigger than a cell) the surface becomes a thin shell of half
    thickness ``0.75 * 2 / 2^(grid_depth-1)``. The mesh must already lie in [-1, 1]^3.
    Magnitudes are exact up to ``max_distance`` and clamped beyond it (a k-d tree
    search far from a surface is slow, and the tokenizer only reads the band).

    Args:
        mesh: ``trimesh.Trimesh`` with non-zero area.
        grid_depth: resolution of the flood-fill grid.
        samples: surface samples for the distance look-up; default about 40 per
            wall cell (at least 300k), so that the wall has no gaps.
        seed: sampling seed.
    Returns:
        callable (N, 3) float tensor -> (N,) float32 tensor.
    """
    import trimesh
    from scipy import ndimage
    from scipy.spatial import cKDTree

    res = 1 << grid_depth
    hg = 2.0 / res
    if samples is None:
        samples = int(min(4_000_000, max(300_000, 40 * float(mesh.area) / hg ** 2)))
    pts, face_idx = trimesh.sample.sample_surface(mesh, samples, seed=seed)
    pts = np.concatenate([pts, np.asarray(mesh.vertices)])
    normals = np.asarray(mesh.face_normals)[face_idx]
    vert_normals = np.asarray(mesh.vertex_normals) if len(mesh.vertices) else np.zeros((0, 3))
    normals = np.concatenate([normals, vert_normals])
    nn_ok = np.isfinite(normals).all(1) & (np.linalg.norm(normals, axis=1) > 0.5)

    def cell_of(p):
        return np.clip(((p + 1.0) / hg).astype(np.int64), 0, res - 1)

    wall = np.zeros((res,) * 3, dtype=bool)
    c = cell_of(pts)
    wall[c[:, 0], c[:, 1], c[:, 2]] = True
    # Surface points are dense enough (~10 per wall cell) that the wall has no gaps.
    inside = ndimage.binary_fill_holes(wall) & ~wall
    # Orient each sample's normal: step 1.5 cells each way and ask the flood fill.
    def state(p):  # +1 outside empty cell, -1 inside empty cell, 0 wall
        cc = cell_of(p)
        w = wall[cc[:, 0], cc[:, 1], cc[:, 2]]
        ins = inside[cc[:, 0], cc[:, 1], cc[:, 2]]
        return np.where(w, 0, np.where(ins, -1, 1))
    fwd = state(pts + 1.5 * hg * normals)
    bwd = state(pts - 1.5 * hg * normals)
    flip = (fwd < bwd)  # normal points inward
    normals = np.where(flip[:, None], -normals, normals)
    sheet = (fwd == bwd) | ~nn_ok  # both sides alike (open sheet) or unknown
    shell = 0.75 * 2 * hg
    tree = cKDTree(pts)
    near_wall = ndimage.distance_transform_edt(~wall) * hg <= max_distance + hg * 3 ** 0.5

    def sdf(q: torch.Tensor) -> torch.Tensor:
        qn = q.detach().cpu().numpy().astype(np.float64)
        cc = cell_of(qn)
        # k-d tree searches are slow far from a dense surface: only query near cells.
        near = near_wall[cc[:, 0], cc[:, 1], cc[:, 2]]
        dist = np.full(len(qn), np.inf)
        idx = np.zeros(len(qn), dtype=np.int64)
        if near.any():
            dist[near], idx[near] = tree.query(qn[near], k=1, distance_upper_bound=max_distance)
        far = ~np.isfinite(dist)
        dist = np.where(far, max_distance, dist)
        idx = np.where(far, 0, idx)
        st = state(qn)
        side = np.einsum("ij,ij->i", qn - pts[idx], normals[idx])
        sign_near = np.where(side >= 0, 1.0, -1.0)
        # Far points are never in a wall cell (the wall lies on the surface).
        sgn = np.where(st == 0, sign_near, st.astype(np.float64))
        near_sheet = sheet[idx] & ~far
        val = np.where(near_sheet & (st >= 0), dist - shell, sgn * dist)
        return torch.from_numpy(val.astype(np.float32))

    return sdf


# --------------------------------------------------------------------------- SDF -> mesh


def grid_to_mesh(values_RRR: np.ndarray, depth: int):
    """Watertight triangle mesh of the zero level set of a centre-sampled grid.

    Args:
        values_RRR: (R, R, R) float SDF (any positive scale), negative inside,
            indexed [x, y, z], sampled at the cell centres of depth ``depth``.
    Returns:
        ``trimesh.Trimesh`` in [-1, 1]^3 with outward normals (empty when the
        grid has no sign change).
    """
    import trimesh
    from skimage.measure import marching_cubes

    h = 2.0 / (1 << depth)
    vol = np.pad(np.asarray(values_RRR, dtype=np.float32), 1, constant_values=float(np.abs(values_RRR).max() + 1.0))
    if not (vol.min() < 0 < vol.max()):
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    verts, faces, _, _ = marching_cubes(vol, level=0.0)
    verts = verts * h + (h / 2 - 1.0 - h)  # undo the one-cell pad
    mesh = trimesh.Trimesh(verts, faces[:, ::-1], process=True)
    if mesh.volume < 0:
        mesh.invert()
    return mesh
