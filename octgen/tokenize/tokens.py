"""``OctreeTokens``: the one sequence format every tokenizer produces and every
generator consumes.

Serialisation order is by depth, then z-order inside a depth: level ``d`` holds
one structure token (8-bit child mask, 1..255) per non-empty node of depth ``d``
for ``d < depth``, and the leaf level holds one payload row per leaf node. What a
payload row means is named by ``payload_kind``:

- ``"none"``: structure only (the bare octree; ``payload`` has 0 columns).
- ``"shape_bits"``: K binary VQ-VAE code bits per leaf (0/1).
- ``"atoms"``: element index and sub-cell offset bins per leaf atom.

Other kinds are registered by their tokenizer class
(:class:`~octgen.tokenize.base.OctreeTokenizer` subclasses register theirs).

Token files are ``.npz`` archives written atomically, with a format version.
"""
from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..export.atomic import atomic_path
from ..octree import MAX_DEPTH, Octree, octree_to_tokens, tokens_to_octree

FORMAT_VERSION = 1
PAYLOAD_KINDS = ["none", "shape_bits", "atoms"]  # grows with register_payload_kind


def register_payload_kind(kind: str) -> None:
    """Accept ``kind`` in token files (a tokenizer class calls this for its own)."""
    if not isinstance(kind, str) or not kind.replace("_", "").isalnum():
        raise ValueError(f"a payload kind is a name of letters, digits and '_', got {kind!r}")
    if kind not in PAYLOAD_KINDS:
        PAYLOAD_KINDS.append(kind)


@dataclass
class OctreeTokens:
    """Per-depth structure tokens plus a per-leaf payload.

    Attributes:
        structure: ``depth`` uint8 tensors; ``structure[d]`` has shape (N_d,).
        payload: (N_D, P) int64 tensor, one row per leaf in z-order.
        payload_kind: one of ``PAYLOAD_KINDS``.
        meta: JSON-serialisable facts the decoder needs (tokenizer name, box size...).
    """

    structure: list[torch.Tensor]
    payload: torch.Tensor
    payload_kind: str = "none"
    meta: dict = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return len(self.structure)

    @classmethod
    def from_octree(cls, octree: Octree, payload: torch.Tensor | None = None,
                    payload_kind: str = "none", meta: dict | None = None) -> "OctreeTokens":
        n_leaf = octree.num_nodes(octree.depth)
        if payload is None:
            payload = torch.zeros(n_leaf, 0, dtype=torch.int64)
        return cls(octree_to_tokens(octree), payload.long(), payload_kind, dict(meta or {}))

    def octree(self) -> Octree:
        """The octree whose nodes these tokens describe."""
        return tokens_to_octree(self.structure)

    def tokens_per_level(self) -> list[int]:
        """Structure tokens at depths 0..D-1, then leaf payload rows at depth D."""
        return [int(s.numel()) for s in self.structure] + [int(self.payload.shape[0])]

    def num_tokens(self) -> int:
        return sum(self.tokens_per_level())

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` token file atomically."""
        path = Path(path)
        if path.suffix != ".npz":
            raise InputError(f"token files end in .npz, got '{path.name}'")
        sizes = np.array([s.numel() for s in self.structure], dtype=np.int64)
        flat = torch.cat([s.reshape(-1).to(torch.uint8).cpu() for s in self.structure]) if self.structure \
            else torch.zeros(0, dtype=torch.uint8)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(
                    f, format_version=np.int64(FORMAT_VERSION), level_sizes=sizes, structure=flat.numpy(),
                    payload=self.payload.cpu().numpy().astype(np.int64),
                    payload_kind=np.array(self.payload_kind), meta_json=np.array(json.dumps(self.meta)))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "OctreeTokens":
        """Read and validate a token file; any problem raises :class:`InputError`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such token file")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError) as e:
            # NotImplementedError: an unknown compression method; RuntimeError: an encrypted member
            raise InputError(f"{path}: not a readable octgen token file ({type(e).__name__})") from None
        need = {"format_version", "level_sizes", "structure", "payload", "payload_kind", "meta_json"}
        if not need <= data.keys():
            raise InputError(f"{path}: not an octgen token file (missing {sorted(need - data.keys())})")
        if int(data["format_version"]) != FORMAT_VERSION:
            raise InputError(f"{path}: token format version {int(data['format_version'])}, expected {FORMAT_VERSION}")
        sizes = data["level_sizes"].astype(np.int64)
        flat = data["structure"]
        kind = str(data["payload_kind"])
        if kind not in PAYLOAD_KINDS:
            raise InputError(f"{path}: unknown payload kind '{kind}'")
        if len(sizes) > MAX_DEPTH or sizes.sum() != flat.size or (sizes < 0).any():
            raise InputError(f"{path}: corrupt token file (level sizes do not match the tokens)")
        structure = [torch.from_numpy(a.copy()) for a in np.split(flat, np.cumsum(sizes)[:-1])] if len(sizes) else []
        try:
            octree = tokens_to_octree(structure)
        except ValueError as e:
            raise InputError(f"{path}: corrupt token file ({e})") from None
        payload = torch.from_numpy(data["payload"].astype(np.int64))
        if payload.ndim != 2 or payload.shape[0] != octree.num_nodes(octree.depth):
            raise InputError(f"{path}: corrupt token file (payload rows do not match the leaves)")
        try:
            meta = json.loads(str(data["meta_json"]))
        except json.JSONDecodeError:
            raise InputError(f"{path}: corrupt token file (bad metadata)") from None
        return cls(structure, payload, kind, meta)
