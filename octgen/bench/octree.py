"""``octgen bench octree``: octree build + serialise and neighbour-table speed.

Points are sampled on the surface of a unit-scale mesh (an icosphere blended with
a torus, so both curved and saddle regions occur), as a tokenizer sees them.
"""
from __future__ import annotations

import torch

from ..octree import build_octree, neighbour_table, octree_to_tokens
from .timing import best_of, machine_summary


def add_arguments(p) -> None:
    p.add_argument("--points", type=int, nargs="+", default=[100_000, 1_000_000], help="point counts")
    p.add_argument("--depths", type=int, nargs="+", default=[6, 8, 10], help="octree depths")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (best is reported)")


def _surface_points(n: int) -> torch.Tensor:
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.6)
    torus = trimesh.creation.torus(major_radius=0.6, minor_radius=0.25)
    mesh = trimesh.util.concatenate([sphere, torus])
    pts, _ = trimesh.sample.sample_surface(mesh, n, seed=0)
    return torch.from_numpy(pts).float().clamp(-1, 1)


def run(args) -> dict:
    from ..octree import MAX_DEPTH
    from ..errors import InputError

    if any(not 1 <= d <= MAX_DEPTH for d in args.depths):
        raise InputError(f"--depths must be in [1, {MAX_DEPTH}]")
    if any(not 1 <= n <= 20_000_000 for n in args.points):
        raise InputError("--points must be in [1, 20000000]")
    rows = []
    print(f"machine: {machine_summary()}")
    print(f"{'points':>9} {'depth':>5} {'build+ser ms':>12} {'Mpts/s':>7} {'neigh ms':>9}  nodes per depth")
    for n in args.points:
        pts = _surface_points(n)
        for d in args.depths:
            t_build, octree = best_of(lambda: build_octree(pts, d), args.repeats)
            t_all, _ = best_of(lambda: octree_to_tokens(build_octree(pts, d)), args.repeats)
            t_nb, _ = best_of(lambda: neighbour_table(octree.keys[d], d), max(1, args.repeats // 2))
            row = {"points": n, "depth": d, "build_serialise_ms": 1e3 * t_all, "build_ms": 1e3 * t_build,
                   "points_per_s": n / t_all, "neighbour_ms": 1e3 * t_nb,
                   "nodes_per_depth": octree.nodes_per_depth()}
            rows.append(row)
            print(f"{n:>9} {d:>5} {row['build_serialise_ms']:>12.1f} {row['points_per_s'] / 1e6:>7.1f} "
                  f"{row['neighbour_ms']:>9.1f}  {row['nodes_per_depth']}")
    return {"bench": "octree", "machine": machine_summary(), "rows": rows}
