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

import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..condition.shape import KIND_NONE, KIND_SKETCH, KIND_TEXT, PREFIX_TOKENS, pad_tokens
from .shards import ShardDataset, read_index, write_shards


def _root() -> Path:
    from ..data.cache import cache_dir

    return cache_dir() / "shapegen"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_conditions(num: int, views: int, seed: int, text_encoder: str, path: Path,
                     prefix_tokens: int = PREFIX_TOKENS, log=_log) -> None:
    """Render sketches and encode captions of the first ``num`` training shapes into ``path``."""
    from ..condition.sketch import SKETCH_SIZE, preprocess_sketch
    from ..condition.text import FrozenTextEncoder
    from ..data.shapes import CATEGORIES, ShapeDataset
    from ..data.sketches import render_sketch
    from ..export.atomic import atomic_path

    ds = ShapeDataset("train", size=num, seed=seed)
    enc = FrozenTextEncoder(text_encoder)
    cats, captions, sketches = [], [], []
    t0 = time.time()
    for i in range(len(ds)):
        s = ds[i]
        cats.append(CATEGORIES.index(s.category))
        captions.append(list(s.captions))
        g = torch.Generator().manual_seed(seed * 1_000_003 + s.index)
        rows = [preprocess_sketch(render_sketch(s.sdf, g, size=SKETCH_SIZE)) for _ in range(views)]
        sketches.append((torch.stack(rows)[:, 0] * 255).round().to(torch.uint8))
        if (i + 1) % 250 == 0:
            log(f"conditions: {i + 1}/{len(ds)} shapes ({time.time() - t0:.0f} s)")
    n_cap = min(len(c) for c in captions)
    flat = [c[:n_cap][k] for c in captions for k in range(n_cap)]
    states, masks = [], []
    for a in range(0, len(flat), 256):
        st, m = enc(flat[a:a + 256])
        st, m = pad_tokens(st, m, prefix_tokens)
        states.append(st.half()), masks.append(m)
    H = states[0].shape[-1]
    blob = {"category": torch.tensor(cats), "captions": captions,
            "text_states": torch.cat(states).view(len(ds), n_cap, prefix_tokens, H),
            "text_mask": torch.cat(masks).view(len(ds), n_cap, prefix_tokens),
            "sketches": torch.stack(sketches), "text_encoder": text_encoder, "seed": seed}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    log(f"conditions: wrote {path} ({time.time() - t0:.0f} s)")


def encode_training_shapes(tokenizer, num: int, seed: int, out_dir: Path, batch: int = 16, log=_log) -> dict:
    """Tokenize the first ``num`` training shapes (batched encoder) into shards."""
    from ..data.shapes import ShapeDataset
    from ..tokenize.shape_sdf import sdf_to_band

    cfg = tokenizer.config
    ds = ShapeDataset("train", size=num, seed=seed)
    t0 = time.time()

    def tokens_iter():
        for a in range(0, len(ds), batch):
            bands = [sdf_to_band(ds[i].sdf, cfg.fine_depth) for i in range(a, min(len(ds), a + batch))]
            yield from tokenizer.bands_to_tokens(bands)
            if (a // batch) % 16 == 15:
                log(f"tokens: {a + len(bands)}/{len(ds)} shapes ({time.time() - t0:.0f} s)")

    return write_shards(tokens_iter(), out_dir, extra_index={"source": "shapes-train", "num": num, "seed": seed,
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
