"""Preprocess procedural shapes once into sharded surface octrees.

A shard is one ``.npz`` per ``shard_size`` consecutive samples of a split, named
``{split}-d{depth}-s{seed}-{k:05d}.npz``, holding for its samples:

- ``leaf_key_deltas`` (sum N_i,) int32: Morton keys of the surface leaves at
  ``depth``, sample after sample, each sample's keys sorted (z-order) and stored as
  differences (first key as is), which compresses well;
- ``leaf_sdf_q`` (sum N_i,) int8 and ``sdf_step``: SDF at those leaf centres
  ([-1, 1]^3 frame) is ``leaf_sdf_q * sdf_step``; a kept leaf has
  ``|sdf| <= 1.05 * half its diagonal``, so a step of 1/127 of that loses under
  1 % of a cell;
- ``offsets`` (n + 1,) int64: sample i owns ``leaf_keys[offsets[i]:offsets[i+1]]``;
- ``index`` / ``position`` (n,) int64, ``category`` (n,) int16 (index into
  :data:`CATEGORIES`), ``attributes`` / ``captions`` (n,) JSON strings;
- ``depth``, ``seed``, ``split``, ``version`` scalars.

Shards already on disk with the same settings are kept (preprocess once); each is
written atomically, so an interrupted run leaves no half shard.
"""
from __future__ import annotations

import json
import math
import time
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .dataset import CATEGORIES, ShapeDataset

SHARD_VERSION = 2
LEAF_SLACK = 1.05


def sdf_step(depth: int) -> float:
    """Quantisation step of the stored leaf SDF at ``depth``."""
    return LEAF_SLACK * math.sqrt(3) / 2 * (2.0 / (1 << depth)) / 127


def shard_name(split: str, depth: int, seed: int, k: int) -> str:
    return f"{split}-d{depth}-s{seed}-{k:05d}.npz"


def _shard_ok(path: Path, n: int, depth: int, seed: int) -> bool:
    try:
        with np.load(path) as z:
            return (int(z["version"]) == SHARD_VERSION and int(z["depth"]) == depth
                    and int(z["seed"]) == seed and len(z["index"]) == n)
    except Exception:
        return False


def _write_shard(args) -> tuple[str, float]:
    split, size, seed, depth, start, stop, path, start_depth = args
    cpu0 = time.process_time()
    from ...export.atomic import atomic_path
    from ..sdf import sdf_to_octree

    torch.set_num_threads(1)
    ds = ShapeDataset(split, size, seed)
    step = sdf_step(depth)
    keys, sdfs, offsets = [], [], [0]
    index, position, category, attributes, captions = [], [], [], [], []
    for i in range(start, stop):
        s = ds[i]
        octree, leaf_sdf = sdf_to_octree(s.sdf, depth, start_depth=start_depth, slack=LEAF_SLACK)
        k = octree.keys[depth]
        keys.append(torch.diff(k, prepend=k.new_zeros(1)).to(torch.int32).numpy())
        sdfs.append(torch.round(leaf_sdf / step).clamp(-127, 127).to(torch.int8).numpy())
        offsets.append(offsets[-1] + len(keys[-1]))
        index.append(s.index)
        position.append(s.position)
        category.append(s.category_index)
        attributes.append(json.dumps(s.attributes))
        captions.append(json.dumps(s.captions))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, leaf_key_deltas=np.concatenate(keys), leaf_sdf_q=np.concatenate(sdfs),
                     sdf_step=np.float64(step),
                     offsets=np.asarray(offsets, np.int64), index=np.asarray(index, np.int64),
                     position=np.asarray(position, np.int64), category=np.asarray(category, np.int16),
                     attributes=np.asarray(attributes), captions=np.asarray(captions),
                     depth=np.int64(depth), seed=np.int64(seed), split=np.asarray(split),
                     version=np.int64(SHARD_VERSION))
    return str(path), time.process_time() - cpu0


def preprocess_shapes(split: str, n: int, depth: int, out_dir, seed: int = 0, shard_size: int = 1000,
                      workers: int = 1, start_depth: int = 2, progress: bool = False,
                      stats: dict | None = None) -> list[Path]:
    """Surface octrees of the first ``n`` samples of a split, written as shards.

    Args:
        split: "train", "val" or "test".
        n: number of samples.
        depth: leaf depth of the surface octrees (see :func:`octgen.data.sdf.sdf_to_octree`).
        out_dir: folder for the shards (created).
        seed: dataset seed.
        shard_size: samples per shard.
        workers: processes (shards are independent; the output does not depend on it).
        progress: print one line per finished shard.
        stats: if given, receives ``shards_written`` and ``cpu_seconds`` (CPU time the
            workers spent on shards, which does not depend on how loaded the machine is).
    Returns:
        Paths of all ``ceil(n / shard_size)`` shards, in order.
    """
    if n < 1 or shard_size < 1 or workers < 1:
        raise ValueError("n, shard_size and workers must be >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs, paths = [], []
    for k, start in enumerate(range(0, n, shard_size)):
        stop = min(n, start + shard_size)
        path = out / shard_name(split, depth, seed, k)
        paths.append(path)
        if not _shard_ok(path, stop - start, depth, seed):
            jobs.append((split, n, seed, depth, start, stop, path, start_depth))
    cpu = 0.0
    if workers == 1 or len(jobs) <= 1:
        results = map(_write_shard, jobs)
        pool = None
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(min(workers, len(jobs)))
        results = pool.imap_unordered(_write_shard, jobs)
    try:
        for done, seconds in results:
            cpu += seconds
            if progress:
                print(f"wrote {done} ({seconds:.1f} s CPU)", flush=True)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    if stats is not None:
        stats.update(shards_written=len(jobs), cpu_seconds=cpu)
    return paths


@dataclass
class ShapeRecord:
    """One preprocessed sample: leaf keys (N,) int64, leaf SDF (N,) float32 and labels."""

    index: int
    position: int
    depth: int
    leaf_keys: torch.Tensor
    leaf_sdf: torch.Tensor
    category: str
    attributes: dict
    captions: list[str]

    def octree(self):
        from ...octree import keys_to_octree

        return keys_to_octree(self.leaf_keys, self.depth)


class ShapeShards:
    """Random access to preprocessed shards (all loaded into memory; a 20,000-shape
    depth-7 set is a few hundred MB).

    Args:
        paths: shard files, e.g. the return value of :func:`preprocess_shapes`, or
            a folder plus ``pattern``.
    """

    def __init__(self, paths, pattern: str = "*.npz"):
        if isinstance(paths, (str, os.PathLike)) and Path(paths).is_dir():
            paths = sorted(Path(paths).glob(pattern))
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise FileNotFoundError("no shards given")
        self._shards = []
        self._starts = [0]
        for p in self.paths:
            with np.load(p) as z:
                shard = {k: z[k] for k in z.files}
            keys = shard.pop("leaf_key_deltas").astype(np.int64)
            off = shard["offsets"]
            for a, b in zip(off[:-1], off[1:]):
                keys[a:b] = np.cumsum(keys[a:b])
            shard["leaf_keys"] = keys
            shard["leaf_sdf"] = shard.pop("leaf_sdf_q").astype(np.float32) * float(shard["sdf_step"])
            self._shards.append(shard)
            self._starts.append(self._starts[-1] + len(shard["index"]))

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, i: int) -> ShapeRecord:
        if not 0 <= i < len(self):
            raise IndexError(i)
        s = int(np.searchsorted(self._starts, i, side="right")) - 1
        z, j = self._shards[s], i - self._starts[s]
        a, b = int(z["offsets"][j]), int(z["offsets"][j + 1])
        return ShapeRecord(int(z["index"][j]), int(z["position"][j]), int(z["depth"]),
                           torch.from_numpy(z["leaf_keys"][a:b]), torch.from_numpy(z["leaf_sdf"][a:b]),
                           CATEGORIES[int(z["category"][j])], json.loads(str(z["attributes"][j])),
                           json.loads(str(z["captions"][j])))


def load_shards(out_dir, split: str, depth: int, seed: int = 0) -> ShapeShards:
    """The shards :func:`preprocess_shapes` wrote for (split, depth, seed) in ``out_dir``."""
    return ShapeShards(out_dir, pattern=f"{split}-d{depth}-s{seed}-*.npz")
