"""Signed distance functions <-> octrees, dense grids and meshes.

- :func:`sdf_to_octree`: adaptive surface octree of any SDF callable; only cells
  that may hold surface are refined, so the work grows with the surface area, not
  the volume.
- :func:`sdf_to_mesh`: marching cubes on a dense corner lattice to a watertight,
  manifold triangle mesh (the grid functions themselves are in :mod:`.grid`);
  :func:`normalize_sdf` fits an SDF's solid into the cube.
- :func:`closest_on_surface`: nearest points on a mesh surface (also behind the
  point-to-surface Chamfer distance of :mod:`octgen.metrics.shapes`).
- :func:`mesh_to_sdf`: a real (possibly open, multi-part, badly oriented) mesh to
  a :class:`GridSDF`, a dense distance grid with trilinear look-up;
  :func:`mesh_file_to_sdf` does the same for a file and caches the result by file
  hash; :func:`iter_mesh_files` walks ShapeNet / Objaverse / Thingi10K-style trees.

Conventions: the [-1, 1]^3 frame of :mod:`octgen.octree`, negative inside, all
SDF callables take (N, 3) float32 points and return (N,) float32 distances.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..errors import InputError
from ..export.atomic import atomic_path
from ..octree import children_keys, key_to_xyz, keys_to_octree, xyz_to_centres
from ..octree.mesh import fit_box
from .cache import cache_dir as default_cache_dir
from .grid import SdfFn, eval_sdf, grid_points, grid_to_mesh, sdf_grid

# Bump when the meaning of a cached grid changes, so stale caches are not reused.
MESH_SDF_CACHE_VERSION = 2
_HALF_DIAG = math.sqrt(3) / 2
# Open sheets become slabs this many cells thick on each side: more than half a cell,
# so the nearest cell centre is always inside and the sheet never vanishes.
_SHEET = 0.75


@torch.no_grad()
def sdf_to_octree(sdf_fn: SdfFn, depth: int, start_depth: int = 2, slack: float = 1.05,
                  chunk: int = 1 << 18, return_levels: bool = False):
    """Surface octree of an SDF, refined only where the surface can be.

    A cell at depth d (side h = 2 / 2^d) is kept when ``|sdf(centre)| <= slack *
    sqrt(3) / 2 * h``: for a Lipschitz-1 SDF every cell the surface passes through is
    kept (``slack`` > 1 covers near-Lipschitz fields such as interpolated grids).
    Kept cells are split and their children tested at d + 1, down to ``depth``.

    Args:
        sdf_fn: callable (N, 3) float32 -> (N,) signed distances, negative inside.
        depth: leaf depth (1..10).
        start_depth: depth whose cells are all evaluated first.
        slack: multiplier on the half cell diagonal.
        chunk: points per SDF call.
        return_levels: also return the SDF at the nodes of every depth.
    Returns:
        ``(octree, sdf_leaf)``: the :class:`Octree` whose leaves are the kept cells
        at ``depth`` and the (N_depth,) float32 SDF at their centres, in the order of
        ``octree.keys[depth]``. With ``return_levels`` a third item: list of
        ``depth + 1`` tensors, ``levels[d]`` (N_d,) at the centres of ``octree.keys[d]``.
    Raises:
        ValueError: the SDF has no surface inside the cube.
    """
    if not 1 <= depth <= 10:
        raise ValueError(f"depth must be in [1, 10], got {depth}")
    start_depth = max(0, min(start_depth, depth))
    keys = torch.arange(1 << (3 * start_depth), dtype=torch.int64)  # every cell at start_depth, z-order
    xyz = key_to_xyz(keys)
    # Child slot s = (x << 2) | (y << 1) | z, the order children_keys uses.
    slot_xyz = torch.tensor([[(s >> 2) & 1, (s >> 1) & 1, s & 1] for s in range(8)], dtype=torch.int64)
    kept_keys, kept_sdf = [], []
    for d in range(start_depth, depth + 1):
        values = eval_sdf(sdf_fn, xyz_to_centres(xyz, d), chunk)
        keep = values.abs() <= slack * _HALF_DIAG * (2.0 / (1 << d))
        keys, xyz, values = keys[keep], xyz[keep], values[keep]
        kept_keys.append(keys)
        kept_sdf.append(values)
        if keys.numel() == 0:
            raise ValueError(f"the SDF has no surface inside [-1, 1]^3 (nothing near zero at depth {d})")
        if d < depth:
            keys = children_keys(keys)
            xyz = (xyz[:, None, :] * 2 + slot_xyz).reshape(-1, 3)
    octree = keys_to_octree(keys, depth)
    if not return_levels:
        return octree, kept_sdf[-1]
    levels = []
    for d in range(depth + 1):
        if d < start_depth:
            levels.append(eval_sdf(sdf_fn, octree.cell_centres(d), chunk))
        else:
            ref = kept_keys[d - start_depth]
            levels.append(kept_sdf[d - start_depth][torch.searchsorted(ref, octree.keys[d])])
    return octree, kept_sdf[-1], levels


def sdf_to_mesh(sdf_fn: SdfFn, resolution: int = 128, chunk: int = 1 << 18):
    """Watertight, manifold mesh of the zero level set of ``sdf_fn`` by marching cubes
    on the ``resolution^3`` corner lattice over [-1, 1]^3 (:mod:`octgen.data.grid`).

    Raises:
        ValueError: no surface (no sign change) on the lattice, or NaN / inf values.
    """
    grid = sdf_grid(sdf_fn, resolution, sampling="corner", chunk=chunk)
    return grid_to_mesh(grid, sampling="corner", allow_empty=False, drop_degenerate=True, merge_vertices=False)


def normalize_sdf(sdf_fn: SdfFn, margin: float = 0.05, probe_depth: int = 5) -> SdfFn | None:
    """Rescale an SDF (uniformly, so it stays a distance) so that its solid's bounding
    box, measured on the centres of a ``2^probe_depth`` grid over [-1.2, 1.2]^3, is
    centred and its longest side spans [-1 + margin, 1 - margin] (the box fit of
    :func:`octgen.octree.mesh.fit_box`, as for meshes).

    Returns:
        the rescaled SDF, or None when fewer than 8 probe points are inside.
    """
    pts = grid_points(1 << probe_depth, "centre") * 1.2
    inside = pts[sdf_fn(pts) < 0]
    if inside.shape[0] < 8:
        return None
    h = 2.4 / (1 << probe_depth)
    scale, centre = fit_box(inside.min(0).values - h / 2, inside.max(0).values + h / 2, margin)
    return lambda p: sdf_fn(p / scale + centre) * scale


# ----------------------------------------------------------------------------- real meshes
@dataclass
class GridSDF:
    """A signed distance field sampled at the cell centres of a dense grid over
    [-1, 1]^3, looked up by trilinear interpolation.

    Attributes:
        grid: (R, R, R) float32 tensor indexed [x, y, z]; cell (i, j, k) has centre
            ``-1 + (i + 0.5) * 2 / R`` (the octree's depth log2(R) cells).
        scale, offset: the normalisation that was applied to the source mesh:
            ``p_normalised = (p_source - offset) * scale``.
    """

    grid: torch.Tensor
    scale: float = 1.0
    offset: tuple = (0.0, 0.0, 0.0)

    @property
    def resolution(self) -> int:
        return int(self.grid.shape[0])

    def __call__(self, p_N3: torch.Tensor) -> torch.Tensor:
        p = p_N3.float()
        inside_box = p.clamp(-1, 1)
        # grid_sample wants (x, y, z) -> (W, H, D): the grid is stored [x, y, z] = (D, H, W).
        coords = inside_box.flip(-1).reshape(1, -1, 1, 1, 3)
        g = torch.nn.functional.grid_sample(self.grid[None, None].float(), coords, mode="bilinear",
                                            padding_mode="border", align_corners=False)
        d = g.reshape(-1)
        # Beyond the cube add the distance to it: keeps the field Lipschitz and positive far out.
        return d + (p - inside_box).norm(dim=-1)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.full(3, -1.0), np.full(3, 1.0)

    def save(self, path) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, grid=self.grid.numpy().astype(np.float16), scale=np.float64(self.scale),
                                    offset=np.asarray(self.offset, dtype=np.float64),
                                    version=np.int64(MESH_SDF_CACHE_VERSION))

    @classmethod
    def load(cls, path) -> "GridSDF":
        with np.load(path) as z:
            if int(z["version"]) != MESH_SDF_CACHE_VERSION:
                raise ValueError(f"{path}: grid SDF cache version {int(z['version'])} != {MESH_SDF_CACHE_VERSION}")
            return cls(torch.from_numpy(z["grid"].astype(np.float32)), float(z["scale"]), tuple(z["offset"].tolist()))


def closest_on_surface(points_N3: np.ndarray, verts_V3: np.ndarray, faces_F3: np.ndarray, sample_tree,
                       sample_face_S: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest surface point of each query point, searched on the faces of its ``k``
    nearest surface samples (exact point-triangle distances): the distance is exact
    when the nearest face holds one of those samples, an upper bound otherwise.

    Args:
        points_N3: query points.
        verts_V3, faces_F3: the mesh.
        sample_tree: ``scipy.spatial.cKDTree`` of S surface samples.
        sample_face_S: the face each sample lies on.
        k: samples looked at per point.
    Returns:
        ``(distance (N,), closest point (N, 3), its triangle (N, 3, 3))``.
    """
    import trimesh

    n = len(points_N3)
    _, nbr_Nk = sample_tree.query(points_N3, k=k, workers=-1)
    tris = verts_V3[faces_F3[sample_face_S[nbr_Nk].reshape(-1)]]                      # (N * k, 3, 3)
    cp_Nk3 = trimesh.triangles.closest_point(tris, np.repeat(points_N3, k, axis=0)).reshape(n, k, 3)
    dist_Nk = np.linalg.norm(cp_Nk3 - points_N3[:, None], axis=-1)
    best = dist_Nk.argmin(1)
    rows = np.arange(n)
    return dist_Nk[rows, best], cp_Nk3[rows, best], tris.reshape(n, k, 3, 3)[rows, best]


def _winding_number_fn(verts: np.ndarray, faces: np.ndarray):
    """Fast generalized winding number (libigl) of the mesh at (Q, 3) points, or None
    when libigl is not installed."""
    try:
        import igl
    except ImportError:
        return None
    V, F = np.ascontiguousarray(verts, np.float64), np.ascontiguousarray(faces, np.int64)
    return lambda q: igl.fast_winding_number(V, F, np.ascontiguousarray(q, np.float64))


def mesh_to_sdf(mesh, resolution: int = 128, margin: float = 0.1, normalize: bool = True,
                max_samples: int = 2_000_000, seed: int = 0, name: str = "mesh",
                sign_method: str = "auto") -> GridSDF:
    """Signed distance grid of a triangle mesh, robust to holes, several parts and
    inconsistent face orientation.

    Method: (1) fit the mesh into [-1 + margin, 1 - margin]^3; (2) distances from the
    cell centres of an R^3 grid to dense surface samples (k-d tree), made exact near
    the surface by point-triangle distances to the faces of the nearest samples;
    (3) cells within half a diagonal of the surface form a wall; the free cells
    connected to the cube's border are outside, the other free cells inside (flood
    fill, 6-connected); (4) each wall cell takes its sign from which side of its
    nearest face leads outside (probes two cells away along the face normal): a wall
    between outside and inside gets the ordinary sign, a wall with outside on both
    sides (an open sheet) is thickened by 0.75 cell per side, a wall with inside on both
    sides (faces buried inside another part) counts as inside.

    Holes wider than a cell let the flood fill leak into the inside. When the flood
    finds less than half the inside volume that the generalized winding number
    (Jacobson et al. 2013; libigl's fast version) finds on a coarse grid, the inside /
    outside labels come from the winding number instead (``|w| > 0.5``, so either
    global orientation works). ``sign_method`` forces "flood" or "winding".

    A closed, consistently oriented mesh gets its ordinary SDF; an open sheet a thin
    solid slab; holes narrower than about one cell are closed.

    Args:
        mesh: ``trimesh.Trimesh`` (checked with :func:`octgen.data.meshes.check_mesh`).
        resolution: grid cells per axis (a power of two matches octree depths).
        margin: free border kept by the normalisation (ignored without ``normalize``).
        normalize: fit the mesh into the cube; else it must already lie inside it.
        max_samples: cap on surface samples (bounds time and memory for huge meshes).
        seed: surface sampling seed.
        name: used in error messages.
        sign_method: "auto", "flood" or "winding" (see above).
    Raises:
        InputError: empty, degenerate or non-finite mesh; mesh outside the cube.
    """
    if not 8 <= resolution <= 512:
        raise ValueError(f"resolution must be in [8, 512], got {resolution}")
    if sign_method not in ("auto", "flood", "winding"):
        raise ValueError(f"sign_method must be auto, flood or winding, got {sign_method!r}")
    verts, faces, area, scale, offset = _fitted_mesh(mesh, normalize, margin, name)
    h = 2.0 / resolution
    centres, udf, closest, normal = _unsigned_distance_grid(verts, faces, area, resolution, max_samples, seed, name)
    wall = udf < _HALF_DIAG * h
    outside, state_at = _sign_labels(verts, faces, centres, udf, wall, sign_method)
    sdf = np.where(outside, udf, -udf)
    w_idx = np.nonzero(wall.reshape(-1))[0]
    if len(w_idx):
        sdf.reshape(-1)[w_idx] = _wall_values(centres[w_idx], closest[w_idx], normal[w_idx],
                                              udf.reshape(-1)[w_idx], state_at, h)
    if not (sdf < 0).any():
        # Nothing enclosed and no sheet found (e.g. degenerate slivers): thicken the surface.
        sdf = udf - _SHEET * h
        if not (sdf < 0).any():
            # A sliver thinner than the grid everywhere: there is no shape to give back.
            raise InputError(f"{name}: mesh is too thin to have any volume at resolution {resolution}")
    return GridSDF(torch.from_numpy(sdf.astype(np.float32)), float(scale), tuple(float(x) for x in offset))


def _fitted_mesh(mesh, normalize: bool, margin: float, name: str):
    """``(verts, faces, area, scale, offset)`` of a checked mesh, fitted into the cube
    (``normalize``) or checked to lie inside it."""
    import trimesh

    from .meshes import check_mesh

    check_mesh(mesh, name)
    if normalize:
        scale, offset = fit_box(*mesh.bounds, margin)
    else:
        scale, offset = 1.0, np.zeros(3)
    verts = (np.asarray(mesh.vertices, dtype=np.float64) - offset) * scale
    if not normalize and np.abs(verts).max() > 1:
        raise InputError(f"{name}: mesh leaves [-1, 1]^3; pass normalize=True")
    faces = np.asarray(mesh.faces, dtype=np.int64)
    area = trimesh.Trimesh(verts, faces, process=False).area
    if not (np.isfinite(verts).all() and np.isfinite(area) and area > 0):
        # e.g. coordinates near the float limit, whose extent overflows
        raise InputError(f"{name}: mesh cannot be normalised (coordinates too large or too small)")
    return verts, faces, area, scale, offset


def _sign_labels(verts, faces, centres, udf, wall, sign_method: str):
    """Which free cells are outside, and ``state_at(points)`` (-1 inside, +1 outside,
    0 wall) for probing the sides of wall cells: from the flood fill, or from the
    winding number when the flood leaks or ``sign_method`` is "winding" (see
    :func:`mesh_to_sdf`)."""
    resolution = wall.shape[0]
    outside, inside = _flood_labels(wall)
    winding = _winding_number_fn(verts, faces) if sign_method != "flood" else None
    labels = None
    if winding is not None:
        labels = _winding_labels(winding, centres, udf, wall, force=sign_method == "winding", flood_inside=inside)
    if labels is not None:
        def state_at(points):  # -1 inside, +1 outside
            return np.where(np.abs(winding(points)) > 0.5, -1, 1)

        return labels[0], state_at
    state = np.where(outside, 1, np.where(inside, -1, 0)).reshape(-1)

    def state_at(points):  # -1 inside, +1 outside, 0 wall
        return state[_cell_index(points, resolution)]

    return outside, state_at


def _cell_centres(resolution: int) -> np.ndarray:
    """(R^3, 3) float64 cell centres, flat in [x, y, z] order."""
    return grid_points(resolution, "centre", torch.float64).numpy()


def _cell_index(points_N3: np.ndarray, resolution: int) -> np.ndarray:
    """(N,) flat index [x, y, z] of the grid cell holding each point."""
    ijk = np.clip(np.floor((points_N3 + 1) * (resolution / 2)).astype(np.int64), 0, resolution - 1)
    return (ijk[:, 0] * resolution + ijk[:, 1]) * resolution + ijk[:, 2]


def _unsigned_distance_grid(verts, faces, area, resolution, max_samples, seed, name):
    """Distance from every cell centre to the surface.

    Returns:
        centres (R^3, 3); udf (R, R, R), exact within 1.75 cells of the surface and an
        upper bound within about a cell farther out; closest (R^3, 3) nearest surface
        point and normal (R^3, 3) unit normal of its face, both set near the surface only.
    """
    import trimesh
    from scipy import ndimage
    from scipy.spatial import cKDTree

    h = 2.0 / resolution
    # Samples about h / 2.5 apart, plus the vertices.
    count = int(min(max_samples, max(20_000, 6 * area / (h * h))))
    samples, face_idx = trimesh.sample.sample_surface(trimesh.Trimesh(verts, faces, process=False), count, seed=seed)
    if len(verts) <= count:
        # Vertices pin down corners and thin features random samples can miss; on
        # huge meshes the samples are dense enough without them.
        vert_face = np.zeros(len(verts), dtype=np.int64)
        vert_face[faces[:, 0]] = np.arange(len(faces))
        used = np.zeros(len(verts), dtype=bool)
        used[faces.reshape(-1)] = True
        samples = np.concatenate([samples, verts[used]])
        face_idx = np.concatenate([face_idx, vert_face[used]])
    tree = cKDTree(samples)
    centres = _cell_centres(resolution)
    # Only cells near the surface go through the k-d tree: far queries (e.g. the
    # centre of a sphere, equidistant to every sample) are what makes k-d trees slow.
    band = 1.75 * h
    occupied = np.zeros(resolution ** 3, dtype=bool)
    occupied[_cell_index(samples, resolution)] = True
    # Cells within 1.75 h of a sample are at most two cells from the sample's cell.
    near_mask = ndimage.binary_dilation(occupied.reshape((resolution,) * 3), np.ones((3, 3, 3), bool), iterations=2)
    candidates = np.nonzero(near_mask.reshape(-1))[0]
    udf = np.full(len(centres), np.inf)
    udf[candidates] = tree.query(centres[candidates], k=1, workers=-1, distance_upper_bound=band)[0]
    near = np.nonzero(np.isfinite(udf))[0]
    closest, normal = np.zeros_like(centres), np.zeros_like(centres)
    if len(near):
        udf[near], closest[near], t = closest_on_surface(centres[near], verts, faces, tree, face_idx, k=3)
        fn = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
        normal[near] = fn / np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-30)
    udf = udf.reshape((resolution,) * 3)
    # Far field: via the nearest band cell (Euclidean distance transform).
    far = ~np.isfinite(udf)
    if far.all():
        raise InputError(f"{name}: mesh surface could not be sampled")
    if far.any():
        gap, idx = ndimage.distance_transform_edt(far, return_indices=True)
        udf[far] = gap[far] * h + udf[tuple(i[far] for i in idx)]
    return centres, udf, closest, normal


def _flood_labels(wall: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(outside, inside) boolean grids: free cells connected (6-neighbours) to the
    grid's border, and the other free cells."""
    from scipy import ndimage

    labels, _ = ndimage.label(~wall)
    faces = [labels[[0, -1]], labels[:, [0, -1]], labels[:, :, [0, -1]]]
    border = np.unique(np.concatenate([f.ravel() for f in faces]))
    outside = np.isin(labels, border[border > 0])
    return outside, ~wall & ~outside


def _winding_labels(winding, centres, udf, wall, force: bool, flood_inside):
    """(outside, inside) from the generalized winding number, or None when the flood
    fill is trusted (it found at least half the inside volume the winding number
    finds on a coarse grid, i.e. the mesh does not leak) and ``force`` is False."""
    resolution = wall.shape[0]
    h = 2.0 / resolution
    rc = max(4, resolution // 4)
    coarse_in = np.abs(winding(_cell_centres(rc))) > 0.5
    if not force and flood_inside.mean() >= 0.5 * coarse_in.mean():
        return None
    inside = np.zeros(len(centres), dtype=bool)
    flat_udf = udf.reshape(-1)
    close = np.nonzero(flat_udf < 5 * h)[0]
    inside[close] = np.abs(winding(centres[close])) > 0.5
    # Farther cells take the value of their coarse cell, whose centre is nearer to
    # them (sqrt(3) * 2h) than the surface (5h), so it lies on the same side.
    rest = np.nonzero(flat_udf >= 5 * h)[0]
    inside[rest] = coarse_in[_cell_index(centres[rest], rc)]
    inside = inside.reshape(wall.shape)
    return ~wall & ~inside, ~wall & inside


def _wall_values(centres, closest, normal, dist, state_at, h: float) -> np.ndarray:
    """Signed distances of the wall cells (within half a diagonal of the surface).

    Probes two cells away on each side of the nearest face (``state_at`` gives -1
    inside, +1 outside, 0 unknown): outside/inside sides give the ordinary sign
    whatever the face's winding; outside on both sides is an open sheet, thickened
    to a slab; inside on both sides is a face buried inside another part.
    """
    front, back = state_at(closest + 2 * h * normal), state_at(closest - 2 * h * normal)
    side = np.einsum("ij,ij->i", centres - closest, normal)
    signed = np.where(side >= 0, dist, -dist)      # trust the face orientation when unsure
    value = np.where((front == -1) & (back == 1), -signed, signed)
    value = np.where((front == 1) & (back == 1), dist - _SHEET * h, value)
    return np.where((front == -1) & (back == -1), -dist, value)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def mesh_file_to_sdf(path, resolution: int = 128, margin: float = 0.1, cache: bool = True,
                     cache_dir: str | os.PathLike | None = None) -> GridSDF:
    """:func:`mesh_to_sdf` of a mesh file, computed once and cached.

    The cache key is the SHA-256 of the file's bytes plus the settings, so a moved or
    renamed file still hits and an edited one does not. Cache files live under
    ``$OCTGEN_CACHE/mesh_sdf`` (default ``~/.cache/octgen``).

    Raises:
        InputError: unreadable, empty, degenerate or non-finite mesh file.
    """
    from .meshes import load_mesh

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    key = f"{_file_digest(path)}-r{resolution}-m{margin:g}-v{MESH_SDF_CACHE_VERSION}"
    target = Path(cache_dir or default_cache_dir() / "mesh_sdf") / f"{key}.npz"
    if cache and target.is_file():
        try:
            return GridSDF.load(target)
        except Exception:  # a damaged cache entry is recomputed, never fatal
            pass
    sdf = mesh_to_sdf(load_mesh(path), resolution, margin, name=str(path))
    if cache:
        target.parent.mkdir(parents=True, exist_ok=True)
        sdf.save(target)
    return sdf


def iter_mesh_files(folder) -> Iterator[Path]:
    """Every mesh file (obj, ply, stl, off, glb, gltf) under ``folder``, sorted,
    skipping hidden files and folders. Works for ShapeNet (``<synset>/<id>/models/
    model_normalized.obj``), Objaverse (``glbs/<shard>/<uid>.glb``) and Thingi10K
    (``raw_meshes/<id>.stl``) layouts alike.

    Raises:
        InputError: ``folder`` does not exist or is not a folder.
    """
    from .meshes import MESH_SUFFIXES

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in MESH_SUFFIXES:
                yield Path(root) / name


def ingest_mesh_folder(folder, resolution: int = 128, margin: float = 0.1, cache: bool = True,
                       cache_dir=None) -> Iterator[tuple[Path, GridSDF | None, str | None]]:
    """Preprocess every mesh under ``folder``: yields ``(path, sdf, error)`` with
    exactly one of ``sdf`` / ``error`` set, so one bad file never stops a data set."""
    for path in iter_mesh_files(folder):
        try:
            yield path, mesh_file_to_sdf(path, resolution, margin, cache, cache_dir), None
        except InputError as e:
            yield path, None, str(e)
