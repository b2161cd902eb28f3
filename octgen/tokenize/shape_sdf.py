"""Signed distance fields for the shape tokenizer: the surface band of a dense grid
and mesh -> SDF. Dense grids and marching cubes are :mod:`octgen.data.grid`'s
(``sampling="centre"``, ``resolution = 2^D``).

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

import torch

from ..data.grid import SdfFn, sdf_grid
from ..data.sdf import mesh_to_sdf
from ..octree import children_keys, key_to_xyz, xyz_to_key


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
        out_sdf: None, or for a decoder with an output level at depth D + 1:
            (8 * N_band,) float32 SDF / (h / 2) at the depth-(D+1) centres of every
            child of every band cell, in ``children_keys(keys)`` order.
    """

    depth: int
    keys: torch.Tensor
    features: torch.Tensor
    fine_sdf: torch.Tensor
    out_sdf: torch.Tensor | None = None


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


def sdf_to_band(sdf_fn: SdfFn, depth: int, out_depth: int | None = None) -> ShapeBand:
    """Evaluate an SDF on the depth-``depth`` grid and extract its surface band; with
    ``out_depth = depth + 1`` also its values at the children of the band cells
    (``ShapeBand.out_sdf``, the target of a decoder's output level)."""
    band = grid_to_band(sdf_grid(sdf_fn, 1 << depth, sampling="centre"), depth)
    if out_depth is None or out_depth == depth:
        return band
    if out_depth != depth + 1:
        raise ValueError(f"out_depth must be {depth} or {depth + 1}, got {out_depth}")
    band.out_sdf = child_sdf(sdf_fn, band.keys, depth)
    return band


def child_sdf(sdf_fn: SdfFn, keys: torch.Tensor, depth: int) -> torch.Tensor:
    """``sdf_fn`` at the depth-(depth+1) cell centres of all 8 children of each depth-``depth``
    cell ``keys``, in ``children_keys`` order, in depth-(depth+1) cell units."""
    from ..data.grid import eval_sdf

    h = 2.0 / (1 << (depth + 1))
    xyz = key_to_xyz(children_keys(keys)).double()
    pts = (-1 + (xyz + 0.5) * h).float()
    return eval_sdf(sdf_fn, pts) / h


# --------------------------------------------------------------------------- meshes


def mesh_to_sdf_fn(mesh, resolution: int = 128, seed: int = 0) -> SdfFn:
    """A signed distance function for a mesh already in [-1, 1]^3, watertight or not.

    Delegates to :func:`octgen.data.sdf.mesh_to_sdf`, the one mesh -> SDF of octgen
    (exact distances near the surface, sign by flood fill and, where the flood leaks
    through holes, by the generalised winding number; open sheets become thin slabs).

    Args:
        mesh: ``trimesh.Trimesh`` inside [-1, 1]^3 with non-zero area.
        resolution: grid resolution of the distance field (128 resolves the
            tokenizer's depth-6 band with a cell to spare).
        seed: surface sampling seed.
    Returns:
        callable (N, 3) float tensor -> (N,) float32 tensor.
    """
    return mesh_to_sdf(mesh, resolution=resolution, normalize=False, seed=seed)
