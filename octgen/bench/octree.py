"""``octgen bench octree``: octree build + serialise and neighbour-table speed.

Points are sampled on the surface of a unit-scale mesh (an icosphere blended with
a torus, so both curved and saddle regions occur), as a tokenizer sees them, or
uniformly in the cube (``--against-ocnn`` times both).

``--against-ocnn`` times ocnn-pytorch's ``Octree.build_octree`` beside octgen's
``build_octree`` + ``octree_to_tokens`` on the same points in one process,
alternating the two, and reports best and median of ``--repeats`` runs and their
ratio. ocnn is imported here only (``pip install --no-deps ocnn``); the product
never imports it.
"""
from __future__ import annotations

import importlib.util
import statistics
import sys
import time
import types

import torch

from ..errors import InputError
from ..octree import MAX_DEPTH, build_octree, neighbour_table, octree_to_tokens
from .timing import best_of, machine_summary

# ocnn's neighbour construction holds several (8 * parents, 27) int64 arrays; above
# this estimate it is not run (it would swap or be killed on a small machine).
_OCNN_NEIGH_MAX_BYTES = 1.5e9


def add_arguments(p) -> None:
    p.add_argument("--points", type=int, nargs="+", default=None,
                   help="point counts (default 100000 1000000; 1000000 with --against-ocnn)")
    p.add_argument("--depths", type=int, nargs="+", default=[6, 8, 10], help="octree depths")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (best is reported)")
    p.add_argument("--against-ocnn", action="store_true",
                   help="time ocnn-pytorch's build beside octgen's on the same points (needs: pip install --no-deps ocnn)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")


def _surface_points(n: int) -> torch.Tensor:
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.6)
    torus = trimesh.creation.torus(major_radius=0.6, minor_radius=0.25)
    mesh = trimesh.util.concatenate([sphere, torus])
    pts, _ = trimesh.sample.sample_surface(mesh, n, seed=0)
    return torch.from_numpy(pts).float().clamp(-1, 1)


def _cube_points(n: int) -> torch.Tensor:
    return torch.rand(n, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _import_ocnn():
    """ocnn, or one readable InputError. Its package imports torchvision only for an
    image model the octree build never uses; a stub stands in while it imports."""
    if importlib.util.find_spec("ocnn") is None:
        raise InputError("--against-ocnn needs ocnn-pytorch: pip install --no-deps ocnn (benchmark only)")
    stubbed = []
    if importlib.util.find_spec("torchvision") is None:
        tv, tvm = types.ModuleType("torchvision"), types.ModuleType("torchvision.models")
        tvm.resnet18 = None
        tv.models = tvm
        sys.modules["torchvision"], sys.modules["torchvision.models"] = tv, tvm
        stubbed = ["torchvision", "torchvision.models"]
    try:
        import ocnn
    finally:
        for name in stubbed:
            sys.modules.pop(name, None)
    return ocnn


def _alternate(fns: dict, repeats: int) -> dict:
    """Run each function once as a warm-up, then ``repeats`` rounds of all of them,
    the order reversed every other round; seconds per function."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for k in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
    return times


def _ms(ts: list[float]) -> dict:
    return {"best_ms": round(1e3 * min(ts), 2), "median_ms": round(1e3 * statistics.median(ts), 2),
            "runs_ms": [round(1e3 * t, 2) for t in ts]}


def _run_against_ocnn(args) -> dict:
    ocnn = _import_ocnn()
    points = args.points or [1_000_000]

    def ocnn_build(pts, d):
        octree = ocnn.octree.Octree(d, full_depth=2)
        octree.build_octree(ocnn.octree.Points(pts))
        return octree

    def ocnn_build_neigh(pts, d):
        octree = ocnn_build(pts, d)
        octree.construct_all_neigh()  # ocnn's usual way: each level from its parent's
        return octree

    def octgen_all(pts, d):
        octree = build_octree(pts, d)
        return octree_to_tokens(octree), neighbour_table(octree.keys[d], d)

    rows = []
    print(f"machine: {machine_summary()}")
    print(f"{'set':>8} {'points':>8} {'depth':>5} | {'octgen build+ser':>16} {'ocnn build':>16} {'ratio':>11} | "
          f"{'octgen +neigh':>14} {'ocnn +neigh':>14}   (best / median ms; ratio = ocnn / octgen)")
    for set_name, make in (("cube", _cube_points), ("surface", _surface_points)):
        for n in points:
            pts = make(n)
            for d in args.depths:
                octree = build_octree(pts, d)
                ref = ocnn_build(pts, d)
                # ocnn keeps depths <= full_depth (2) full; compare the sparse ones.
                same = [int(v) for v in ref.nnum_nempty.tolist()][3:] == octree.nodes_per_depth()[3:]
                t = _alternate({"octgen": lambda: octree_to_tokens(build_octree(pts, d)),
                                "ocnn": lambda: ocnn_build(pts, d)}, args.repeats)
                row = {"set": set_name, "points": n, "depth": d, "same_nodes_per_depth": same,
                       "nodes_per_depth": octree.nodes_per_depth(),
                       "octgen_build_serialise": _ms(t["octgen"]), "ocnn_build": _ms(t["ocnn"]),
                       "ratio_best": round(min(t["ocnn"]) / min(t["octgen"]), 2),
                       "ratio_median": round(statistics.median(t["ocnn"]) / statistics.median(t["octgen"]), 2)}
                # Neighbour tables: octgen's covers the non-empty leaves, ocnn's all 8 children
                # of every non-empty parent, built level by level.
                ocnn_bytes = 3 * 8 * 27 * 8 * (octree.num_nodes(d - 1) if d else 1)
                fns = {"octgen": lambda: octgen_all(pts, d)}
                if ocnn_bytes <= _OCNN_NEIGH_MAX_BYTES:
                    fns["ocnn"] = lambda: ocnn_build_neigh(pts, d)
                tn = _alternate(fns, max(1, args.repeats // 2))
                row["octgen_build_serialise_neighbours"] = _ms(tn["octgen"])
                if "ocnn" in tn:
                    row["ocnn_build_all_neighbours"] = _ms(tn["ocnn"])
                    row["neighbours_ratio_best"] = round(min(tn["ocnn"]) / min(tn["octgen"]), 2)
                else:
                    row["ocnn_build_all_neighbours"] = f"not run: needs about {ocnn_bytes / 1e9:.0f} GB"
                rows.append(row)
                on = row["ocnn_build_all_neighbours"]
                on_s = f"{on['best_ms']:>6.0f} / {on['median_ms']:<6.0f}" if isinstance(on, dict) else "not run"
                og, oc, gn = row["octgen_build_serialise"], row["ocnn_build"], row["octgen_build_serialise_neighbours"]
                print(f"{set_name:>8} {n:>8} {d:>5} | {og['best_ms']:>7.1f} / {og['median_ms']:<6.1f} "
                      f"{oc['best_ms']:>7.1f} / {oc['median_ms']:<6.1f} {row['ratio_best']:>4.2f} / {row['ratio_median']:<4.2f} | "
                      f"{gn['best_ms']:>6.0f} / {gn['median_ms']:<6.0f} {on_s}"
                      + ("" if same else "  (ocnn's node counts differ)"), flush=True)
    return {"bench": "octree-vs-ocnn", "machine": machine_summary(), "ocnn_version": ocnn.__version__,
            "repeats": args.repeats, "command": " ".join(["octgen"] + sys.argv[1:]), "rows": rows}


def run(args) -> dict:
    if any(not 1 <= d <= MAX_DEPTH for d in args.depths):
        raise InputError(f"--depths must be in [1, {MAX_DEPTH}]")
    points = args.points or [100_000, 1_000_000]
    if any(not 1 <= n <= 20_000_000 for n in points):
        raise InputError("--points must be in [1, 20000000]")
    if not 1 <= args.repeats <= 100:
        raise InputError("--repeats must be in [1, 100]")
    if not 1 <= args.threads <= 256:
        raise InputError("--threads must be in [1, 256]")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run_against_ocnn(args) if args.against_ocnn else _run_octgen(points, args)
    finally:
        torch.set_num_threads(threads)


def _run_octgen(points: list[int], args) -> dict:
    rows = []
    print(f"machine: {machine_summary()}")
    print(f"{'points':>9} {'depth':>5} {'build+ser ms':>12} {'Mpts/s':>7} {'neigh ms':>9}  nodes per depth")
    for n in points:
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
