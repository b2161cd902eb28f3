"""Token data preprocessed once into shards, so a training step does no chemistry
or mesh work.

A shard is an ``.npz`` holding many node sequences back to back:
``level`` (T,) int8, ``token`` (T,) uint8, ``payload`` (T, P) int16,
``xyz`` (T, 3) uint16 integer cell coordinates at each node's own depth, and
``offsets`` (S + 1,) int64 sequence boundaries. Cell centres are recomputed from
``xyz`` at load time. A folder of shards has a ``shards.json`` index (depth,
payload sizes and kind, sequence count) written last, so a half-finished
preprocessing run is never mistaken for a finished one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ..errors import InputError
from ..export.atomic import atomic_path
from ..model.sequence import NodeSequence, tokens_to_nodes
from ..tokenize.tokens import OctreeTokens

INDEX_NAME = "shards.json"


def _sequence_arrays(tokens: OctreeTokens) -> tuple[np.ndarray, ...]:
    seq = tokens_to_nodes(tokens)
    octree = tokens.octree()
    xyz = torch.cat([octree.xyz(d) for d in range(tokens.depth + 1)]).numpy().astype(np.uint16)
    return (seq.level_T.numpy().astype(np.int8), seq.token_T.numpy().astype(np.uint8),
            seq.payload_TP.numpy().astype(np.int16), xyz)


def write_shard(path: str | Path, tokens: list[OctreeTokens]) -> dict:
    """Write one shard file (atomically) of token sequences of one depth and payload
    width; returns its facts: ``num_sequences``, ``num_nodes``, ``depth``,
    ``payload_width``, ``payload_kind``."""
    if not tokens:
        raise InputError(f"no token sequences to write into {path}")
    first = tokens[0]
    if any(t.depth != first.depth or t.payload.shape[1] != first.payload.shape[1] for t in tokens):
        raise InputError("all token sequences of one shard folder need one depth and payload width")
    rows = [_sequence_arrays(t) for t in tokens]
    lengths = np.array([len(r[0]) for r in rows], dtype=np.int64)
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as f:
            # Compressed: the QM9 shards take 21 MB instead of 127 MB (small enough to
            # travel to a lent GPU with bench/device_qm9.py); reading them back costs ~0.1 s each.
            np.savez_compressed(f, level=np.concatenate([r[0] for r in rows]), token=np.concatenate([r[1] for r in rows]),
                                payload=np.concatenate([r[2] for r in rows]), xyz=np.concatenate([r[3] for r in rows]),
                                offsets=np.concatenate([[0], np.cumsum(lengths)]))
    return {"num_sequences": len(rows), "num_nodes": int(lengths.sum()), "depth": first.depth,
            "payload_width": int(first.payload.shape[1]), "payload_kind": first.payload_kind}


def write_index(out_dir: str | Path, files: list[str], facts: list[dict], extra_index: dict | None = None) -> dict:
    """Finish a shard folder: ``shards.json`` naming ``files`` (in order), whose
    :func:`write_shard` facts are ``facts``; written last and atomically, so a folder
    without it is unfinished."""
    if not files:
        raise InputError(f"no token sequences to write into {out_dir}")
    first = facts[0]
    if any(f[k] != first[k] for f in facts for k in ("depth", "payload_width", "payload_kind")):
        raise InputError("all token sequences of one shard folder need one depth and payload width")
    index = {"files": list(files), "num_sequences": sum(f["num_sequences"] for f in facts),
             "num_nodes": sum(f["num_nodes"] for f in facts), "depth": first["depth"],
             "payload_width": first["payload_width"], "payload_kind": first["payload_kind"], **(extra_index or {})}
    with atomic_path(Path(out_dir) / INDEX_NAME) as tmp:
        tmp.write_text(json.dumps(index, indent=2))
    return index


def write_shards(tokens_iter: Iterable[OctreeTokens], out_dir: str | Path, shard_size: int = 20000,
                 extra_index: dict | None = None) -> dict:
    """Write token sequences into ``out_dir/shard_XXXXX.npz`` plus ``shards.json``.

    Args:
        tokens_iter: OctreeTokens, all of one depth, payload width and kind.
        out_dir: target folder (created).
        shard_size: sequences per shard.
        extra_index: more facts for the index (source, rotations...).
    Returns:
        The index dict.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    batch, files, facts = [], [], []

    def flush():
        files.append(f"shard_{len(files):05d}.npz")
        facts.append(write_shard(out_dir / files[-1], batch))

    for tokens in tokens_iter:
        batch.append(tokens)
        if len(batch) == shard_size:
            flush()
            batch = []
    if batch:
        flush()
    return write_index(out_dir, files, facts, extra_index)


def read_index(shard_dir: str | Path) -> dict | None:
    """The ``shards.json`` of a finished shard folder, or None."""
    path = Path(shard_dir) / INDEX_NAME
    return json.loads(path.read_text()) if path.is_file() else None


class ShardDataset:
    """All sequences of a shard folder in memory; ``ds[i]`` is a :class:`NodeSequence`."""

    def __init__(self, shard_dir: str | Path):
        shard_dir = Path(shard_dir)
        index = read_index(shard_dir)
        if index is None:
            raise InputError(f"{shard_dir}: no finished token shards (missing {INDEX_NAME})")
        self.index = index
        self.depth = int(index["depth"])
        level, token, payload, xyz, offsets = [], [], [], [], [np.zeros(1, dtype=np.int64)]
        base = 0
        for name in index["files"]:
            with np.load(shard_dir / name) as z:
                level.append(z["level"]), token.append(z["token"]), payload.append(z["payload"])
                xyz.append(z["xyz"])
                offsets.append(z["offsets"][1:] + base)
                base += int(z["offsets"][-1])
        self.level = torch.from_numpy(np.concatenate(level).astype(np.int64))
        self.token = torch.from_numpy(np.concatenate(token).astype(np.int64))
        self.payload = torch.from_numpy(np.concatenate(payload).astype(np.int64))
        xyz_T3 = torch.from_numpy(np.concatenate(xyz).astype(np.float32))
        h = 2.0 / torch.pow(2.0, self.level.float())[:, None]  # cell edge at each node's depth
        self.centre = xyz_T3 * h + (h / 2 - 1.0)
        self.offsets = np.concatenate(offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> NodeSequence:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        level = self.level[a:b]
        sizes = torch.bincount(level, minlength=self.depth + 1).tolist()
        return NodeSequence(level, self.token[a:b], self.payload[a:b], self.centre[a:b], sizes)
