"""Token sources the modalities write into shards (see :mod:`.shards`): the QM9
training split and random octrees."""
from __future__ import annotations

import sys

import torch

from ..errors import InputError
from ..octree import build_octree
from ..tokenize.tokens import OctreeTokens


def synthetic_tokens(num: int, points: int, depth: int, payload_vocab_sizes, seed: int) -> list[OctreeTokens]:
    """Random octrees of ``points`` uniform points at ``depth`` with random payloads
    (each field uniform in its vocabulary); a stand-in dataset for tests."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(num):
        octree = build_octree(torch.rand(points, 3, generator=g) * 2 - 1, depth)
        n = octree.num_nodes(depth)
        payload = torch.stack([torch.randint(0, v, (n,), generator=g) for v in payload_vocab_sizes], 1) \
            if payload_vocab_sizes else torch.zeros(n, 0, dtype=torch.long)
        out.append(OctreeTokens.from_octree(octree, payload, "atoms" if payload_vocab_sizes else "none"))
    return out


def qm9_train_tokens(tokenizer, rotations: int, seed: int, limit: int = 0, progress: bool = True,
                     frame: str = "native"):
    """Yield the tokens of the QM9 training split: ``rotations`` uniformly rotated
    copies per molecule, or when ``rotations == 0`` one copy in ``frame``: QM9's own
    orientation (``"native"``), the molecule's principal axes (``"principal"``) or
    those moved off the octree's split planes (``"principal-offset"``)."""
    from ..tokenize.molecule import check_frame

    check_frame(frame, "qm9 frame")
    if rotations and frame != "native":
        raise InputError("qm9: random rotations and a principal frame exclude each other")
    from ..data.qm9 import load_qm9

    qm9 = load_qm9()
    idx = qm9.split_indices("train")
    if limit:
        idx = idx[:limit]
    g = torch.Generator().manual_seed(seed)
    copies = max(1, rotations)
    for c in range(copies):
        for j, i in enumerate(idx):
            mol = qm9.molecule(int(i))
            rotation = "random" if rotations else (None if frame == "native" else frame)
            yield tokenizer.encode(mol, rotation=rotation, generator=g)
            if progress and (j + 1) % 20000 == 0:
                print(f"tokenized copy {c + 1}/{copies}: {j + 1}/{len(idx)} molecules", file=sys.stderr)
