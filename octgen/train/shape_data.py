"""Training data of the shapes model, preprocessed once.

Two parts, cached separately under ``$OCTGEN_CACHE/shapegen/`` because only the
first depends on the tokenizer:

- token shards (:mod:`.shards`) of the first ``num`` training shapes of
  :class:`octgen.data.shapes.ShapeDataset`, encoded by the shape tokenizer
  (``tokens-<code hash>-n<num>-s<seed>/``: config and encoder weights, so a
  retrained encoder never reuses stale tokens, a decoder-only fine-tune does);
- ``conditions-n<num>-v<views>-s<seed>-<text encoder>.pt``: per shape its category,
  its captions and their frozen text-encoder states (float16, padded to
  :data:`~octgen.condition.shape.PREFIX_TOKENS`), and ``views`` line drawings from
  jittered views, preprocessed exactly like a user's sketch (uint8 ink).

``ShapeTrainingData`` holds both; row ``i`` of the shards is shape ``i`` of the
conditions.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from ..condition.shape import KIND_NONE, KIND_SKETCH, KIND_TEXT, PREFIX_TOKENS, pad_tokens
from .shards import ShardDataset, read_index, write_index, write_shard


def _root() -> Path:
    from ..data.cache import cache_dir

    return cache_dir() / "shapegen"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


#: Shapes per resumable piece of the cache build: each piece is written atomically
#: as soon as it is done, so a build interrupted (say, by the end of a session)
#: redoes at most one piece when it is run again.
CHUNK = 500


def _chunks(num: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(num, a + size)) for a in range(0, num, size)]


def build_conditions(num: int, views: int, seed: int, text_encoder: str, path: Path,
                     prefix_tokens: int = PREFIX_TOKENS, chunk: int = CHUNK, log=_log) -> None:
    """Render sketches and encode captions of the first ``num`` training shapes into ``path``.

    Built in pieces of ``chunk`` shapes under ``<path>.parts/`` (each written
    atomically and named by its shapes and views, kept across runs), then joined into
    ``path`` and the pieces removed; a rerun after an interruption only builds the
    missing pieces.
    """
    import shutil

    from ..condition.sketch import SKETCH_SIZE, preprocess_sketch
    from ..condition.text import FrozenTextEncoder
    from ..data.shapes import CATEGORIES, ShapeDataset
    from ..data.sketches import render_sketch
    from ..export.atomic import atomic_path

    ds = ShapeDataset("train", size=num, seed=seed)
    parts_dir = path.parent / (path.name + ".parts")
    enc = None
    t0 = time.time()
    parts = []
    for a, b in _chunks(len(ds), chunk):
        part = parts_dir / f"part_{a:06d}-{b:06d}-v{views}.pt"
        parts.append(part)
        if part.is_file():
            continue
        cats, captions, sketches = [], [], []
        for i in range(a, b):
            s = ds[i]
            cats.append(CATEGORIES.index(s.category))
            captions.append(list(s.captions))
            g = torch.Generator().manual_seed(seed * 1_000_003 + s.index)
            rows = [preprocess_sketch(render_sketch(s.sdf, g, size=SKETCH_SIZE)) for _ in range(views)]
            sketches.append((torch.stack(rows)[:, 0] * 255).round().to(torch.uint8))
        n_cap = min(len(c) for c in captions)
        flat = [c[:n_cap][j] for c in captions for j in range(n_cap)]
        enc = enc or FrozenTextEncoder(text_encoder)
        states, masks = [], []
        for c in range(0, len(flat), 256):
            st, m = enc(flat[c:c + 256])
            st, m = pad_tokens(st, m, prefix_tokens)
            # zero past each caption's end (as one prompt at generation time has), so the
            # cache does not depend on which captions shared an encoder batch
            states.append((st * m[..., None].to(st.dtype)).half()), masks.append(m)
        H = states[0].shape[-1]
        blob = {"category": torch.tensor(cats), "captions": captions,
                "text_states": torch.cat(states).view(b - a, n_cap, prefix_tokens, H),
                "text_mask": torch.cat(masks).view(b - a, n_cap, prefix_tokens), "sketches": torch.stack(sketches)}
        with atomic_path(part) as tmp:
            torch.save(blob, tmp)
        log(f"conditions: {b}/{len(ds)} shapes ({time.time() - t0:.0f} s)")
    blobs = [torch.load(part, weights_only=True) for part in parts]
    n_cap = min(x["text_states"].shape[1] for x in blobs)
    blob = {"category": torch.cat([x["category"] for x in blobs]),
            "captions": [c for x in blobs for c in x["captions"]],
            "text_states": torch.cat([x["text_states"][:, :n_cap] for x in blobs]),
            "text_mask": torch.cat([x["text_mask"][:, :n_cap] for x in blobs]),
            "sketches": torch.cat([x["sketches"] for x in blobs]), "text_encoder": text_encoder, "seed": seed}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    shutil.rmtree(parts_dir, ignore_errors=True)
    log(f"conditions: wrote {path} ({time.time() - t0:.0f} s)")


def encode_training_shapes(tokenizer, num: int, seed: int, out_dir: Path, batch: int = 16, chunk: int = CHUNK,
                           log=_log) -> dict:
    """Tokenize the first ``num`` training shapes (batched encoder) into shards of
    ``chunk`` shapes each. Every shard is written atomically with a ``.json`` of its
    facts beside it and kept across runs; ``shards.json`` is written last, so a
    rerun after an interruption encodes only the missing shards."""
    from ..data.shapes import ShapeDataset
    from ..export.atomic import atomic_path
    from ..tokenize.shape_sdf import sdf_to_band

    cfg = tokenizer.config
    ds = ShapeDataset("train", size=num, seed=seed)
    out_dir = Path(out_dir)
    t0 = time.time()
    files, facts = [], []
    for k, (a, b) in enumerate(_chunks(len(ds), chunk)):
        files.append(f"shard_{k:05d}.npz")
        shard, meta = out_dir / files[-1], out_dir / f"shard_{k:05d}.json"
        if shard.is_file() and meta.is_file():
            got = json.loads(meta.read_text())
            if (got.get("start"), got.get("stop")) == (a, b):
                facts.append(got)
                continue
        tokens = []
        for c in range(a, b, batch):
            bands = [sdf_to_band(ds[i].sdf, cfg.fine_depth) for i in range(c, min(b, c + batch))]
            tokens += tokenizer.bands_to_tokens(bands)
        facts.append({"start": a, "stop": b, **write_shard(shard, tokens)})
        with atomic_path(meta) as tmp:
            tmp.write_text(json.dumps(facts[-1]))
        log(f"tokens: {b}/{len(ds)} shapes ({time.time() - t0:.0f} s)")
    return write_index(out_dir, files, facts, extra_index={"source": "shapes-train", "num": num, "seed": seed,
                                                           "tokenizer": cfg.name,
                                                           "config_hash": tokenizer.config_hash(),
                                                           "code_hash": tokenizer.code_hash()})


class ShapeTrainingData:
    """Token sequences plus their conditions; ``condition_batch`` draws the prefixes.

    Args:
        shards: the token shards (row ``i`` = shape ``i``).
        conditions_path: the ``.pt`` written by :func:`build_conditions`.
    """

    def __init__(self, shards: ShardDataset, conditions_path: Path):
        self.shards = shards
        blob = torch.load(conditions_path, weights_only=True)  # tensors, strings and lists only: no pickle
        self.category = blob["category"]
        self.captions = blob["captions"]
        self.text_states = blob["text_states"]
        self.text_mask = blob["text_mask"]
        self.sketches = blob["sketches"]
        if len(self.category) != len(shards):
            raise ValueError(f"{conditions_path}: {len(self.category)} shapes but {len(shards)} token sequences")

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, i: int):
        return self.shards[i]

    @property
    def depth(self) -> int:
        return self.shards.depth

    @property
    def index(self) -> dict:
        return self.shards.index

    def condition_batch(self, idx: list[int], generator: torch.Generator, p_text: float, p_sketch: float):
        """For the rows ``idx``: condition kinds (B,) (none / text / sketch), text
        states (B, P, H) and masks (B, P) of one random caption each, and one random
        sketch view each (B, 1, S, S) float ink."""
        B = len(idx)
        u = torch.rand(B, generator=generator)
        kind = torch.where(u < p_text, KIND_TEXT, torch.where(u < p_text + p_sketch, KIND_SKETCH, KIND_NONE))
        cap = torch.randint(self.text_states.shape[1], (B,), generator=generator)
        view = torch.randint(self.sketches.shape[1], (B,), generator=generator)
        ii = torch.tensor(idx)
        states = self.text_states[ii, cap].float()
        mask = self.text_mask[ii, cap]
        sketches = self.sketches[ii, view].float()[:, None] / 255.0
        return kind, states, mask, sketches


def prepare_shape_data(tokenizer, tokenizer_name: str, num: int, views: int, seed: int, text_encoder: str,
                       log=_log) -> ShapeTrainingData:
    """The cached training data, building whatever part is missing."""
    root = _root()
    tok_dir = root / f"tokens-{tokenizer.code_hash()}-n{num}-s{seed}"
    if read_index(tok_dir) is None:
        log(f"tokenizing {num} training shapes with {tokenizer_name} into {tok_dir} (once) ...")
        encode_training_shapes(tokenizer, num, seed, tok_dir, log=log)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text_encoder)[-60:]
    cond_path = root / f"conditions-n{num}-v{views}-s{seed}-{safe}.pt"
    if not cond_path.is_file():
        log(f"rendering sketches and encoding captions into {cond_path} (once) ...")
        build_conditions(num, views, seed, text_encoder, cond_path, log=log)
    return ShapeTrainingData(ShardDataset(tok_dir), cond_path)
