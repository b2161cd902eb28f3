"""``octgen bench shapes-data``: procedural shapes -> surface octree shards, shapes/s.

Preprocesses ``--n`` training shapes into a temporary folder (or ``--out``) with
:func:`octgen.data.shapes.preprocess_shapes` and reports shapes per second, the
time 20,000 shapes would take at that rate, nodes per shape, and the load average
during the run (the machine may be shared). It also sums the CPU time the workers
spent on the shapes, which a busy machine does not inflate, and divides it by the
number of workers: the time on that many idle cores (worker start-up excluded).
On a shared machine even CPU time inflates (cores and caches are shared), so that
figure is an upper bound.
"""
from __future__ import annotations

import os
import tempfile
import time


def add_arguments(p) -> None:
    p.add_argument("--n", type=int, default=2000, help="shapes to preprocess (default 2000)")
    p.add_argument("--depth", type=int, nargs="+", default=[6, 7], help="octree leaf depths (default 6 7)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    p.add_argument("--shard-size", type=int, default=500, help="shapes per shard")
    p.add_argument("--out", default=None, help="keep the shards in this folder (default: a temporary one)")
    p.add_argument("--seed", type=int, default=0)


def run(args) -> dict:
    import numpy as np

    from ..data.shapes import preprocess_shapes
    from ..data.shapes.preprocess import load_shards
    from ..errors import InputError
    from .timing import machine_summary

    if not 1 <= args.n <= 1_000_000:
        raise InputError("--n must be in [1, 1000000]")
    if any(not 1 <= d <= 10 for d in args.depth):
        raise InputError("--depth must be in [1, 10]")
    if args.workers < 1:
        raise InputError("--workers must be >= 1")
    rows = []
    print(f"machine: {machine_summary()}; workers {args.workers}")
    for depth in args.depth:
        with tempfile.TemporaryDirectory() as tmp:
            out = args.out or tmp
            load_before = os.getloadavg()[0]
            t0 = time.perf_counter()
            stats = {}
            preprocess_shapes("train", args.n, depth, out, seed=args.seed, shard_size=args.shard_size,
                              workers=args.workers, stats=stats)
            dt = time.perf_counter() - t0
            load_after = os.getloadavg()[0]
            shards = load_shards(out, "train", depth, args.seed)
            leaves = np.array([len(shards[i].leaf_keys) for i in range(len(shards))])
            size_mb = sum(os.path.getsize(p) for p in shards.paths) / 1e6
        if stats["shards_written"] != -(-args.n // args.shard_size):
            raise InputError(f"--out {out} already holds some of these shards; use an empty folder to time them")
        cpu_per_shape = stats["cpu_seconds"] / args.n
        row = {"depth": depth, "n": args.n, "seconds": dt, "shapes_per_s": args.n / dt,
               "minutes_for_20000": 20_000 / (args.n / dt) / 60, "cpu_ms_per_shape": 1e3 * cpu_per_shape,
               "minutes_for_20000_on_idle_cores": 20_000 * cpu_per_shape / args.workers / 60, "leaves_median": float(np.median(leaves)),
               "leaves_p95": float(np.percentile(leaves, 95)), "mb_per_1000": size_mb / args.n * 1000,
               "loadavg_1min_before": load_before, "loadavg_1min_after": load_after, "workers": args.workers}
        rows.append(row)
        print(f"depth {depth}: {args.n} shapes in {dt:.1f} s = {row['shapes_per_s']:.1f} shapes/s -> "
              f"20,000 shapes in {row['minutes_for_20000']:.1f} min at this load; "
              f"{row['cpu_ms_per_shape']:.1f} ms CPU per shape -> {row['minutes_for_20000_on_idle_cores']:.1f} min "
              f"on {args.workers} idle cores; leaves median {row['leaves_median']:.0f} "
              f"p95 {row['leaves_p95']:.0f}; {row['mb_per_1000']:.1f} MB per 1000 shapes; "
              f"load avg {load_before:.2f} -> {load_after:.2f}")
    return {"bench": "shapes-data", "machine": machine_summary(), "rows": rows}
