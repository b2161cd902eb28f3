"""``octgen bench mesh-sdf``: how faithfully real meshes become signed distance grids.

For every example mesh bundled with installed packages
(:func:`octgen.data.shapes.real.packaged_mesh_files`) and any ``--mesh`` given:
:func:`octgen.data.sdf.mesh_to_sdf` at ``--resolution``, then

- sign agreement with the generalized winding number (libigl) at points jittered
  around the surface (Gaussian, sigma 0.03), counting only points whose winding
  number is clearly inside (> 0.7) or outside (< 0.3);
- Chamfer-L1 (:func:`octgen.metrics.shapes.chamfer_l1_point_to_surface`: mean of
  both directions of the mean distance from ``--samples`` points on one surface to
  the other surface) between the source mesh and the
  marching-cubes mesh of the grid, in the [-1, 1] frame. Point-to-surface, not
  point-to-point: two independent 100k-point samplings of a large surface (area ~10)
  are already ~0.005 apart on average, which would mask the error being measured;
- whether that mesh is watertight, and the time taken.
"""
from __future__ import annotations

import time


def add_arguments(p) -> None:
    p.add_argument("--resolution", type=int, default=128, help="grid cells per axis (default 128)")
    p.add_argument("--samples", type=int, default=100_000, help="surface samples for Chamfer (default 100k)")
    p.add_argument("--mesh", nargs="*", default=[], help="extra mesh files to include")


def run(args) -> dict:
    from pathlib import Path

    import numpy as np
    import torch
    import trimesh

    from ..data.meshes import load_mesh
    from ..data.sdf import _winding_number_fn, mesh_to_sdf, sdf_to_mesh
    from ..metrics.shapes import chamfer_l1_point_to_surface
    from ..data.shapes.real import packaged_mesh_files
    from ..errors import InputError
    from ..octree.mesh import normalize_mesh
    from .timing import machine_summary

    if not 16 <= args.resolution <= 256:
        raise InputError("--resolution must be in [16, 256]")
    files = packaged_mesh_files() + [Path(m) for m in args.mesh]
    if not files:
        raise InputError("no meshes: no packaged example meshes found and no --mesh given")
    rows = []
    print(f"machine: {machine_summary()}")
    print(f"{'mesh':<16} {'faces':>7} {'closed':>6} {'sign agree':>10} {'chamfer':>8} {'watertight':>10} {'sdf s':>6}")
    for path in files:
        mesh = normalize_mesh(load_mesh(path), 0.1)
        t0 = time.perf_counter()
        grid = mesh_to_sdf(mesh, args.resolution, normalize=False, name=str(path))
        dt = time.perf_counter() - t0
        rec = sdf_to_mesh(grid, args.resolution)
        pts, _ = trimesh.sample.sample_surface(mesh, 5000, seed=0)
        q = np.clip(pts + np.random.default_rng(0).normal(scale=0.03, size=pts.shape), -1, 1)
        row = {"mesh": path.name, "faces": len(mesh.faces), "source_watertight": bool(mesh.is_watertight),
               "sdf_seconds": dt, "chamfer_l1": chamfer_l1_point_to_surface(mesh, rec, args.samples),
               "reconstruction_watertight": bool(rec.is_watertight)}
        winding = _winding_number_fn(np.asarray(mesh.vertices), np.asarray(mesh.faces))
        if winding is not None:
            w = np.abs(winding(q))
            clear = (w < 0.3) | (w > 0.7)
            inside = grid(torch.as_tensor(q, dtype=torch.float32)).numpy() < 0
            row["sign_agreement"] = float((inside == (w > 0.5))[clear].mean())
        rows.append(row)
        print(f"{row['mesh']:<16} {row['faces']:>7} {str(row['source_watertight']):>6} "
              f"{row.get('sign_agreement', float('nan')):>10.4f} {row['chamfer_l1']:>8.4f} "
              f"{str(row['reconstruction_watertight']):>10} {dt:>6.1f}")
    return {"bench": "mesh-sdf", "machine": machine_summary(), "resolution": args.resolution, "rows": rows}
