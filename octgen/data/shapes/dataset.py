"""The procedural shape dataset: seeds -> (category, attributes, captions, SDF).

There is one endless stream of shapes per ``seed``. Stream position ``j`` has
category ``CATEGORIES[j % len(CATEGORIES)]`` (so every category is equally common),
attributes and continuous jitter drawn from ``numpy.random.default_rng([seed, j])``,
and a split fixed by a hash of ``j`` alone (80 % train, 10 % val, 10 % test): the
same position is in the same split for every seed and every dataset size, and the
splits never overlap. ``ShapeDataset(split, size)`` is the first ``size`` stream
positions of its split (defaults in :data:`DEFAULT_SIZES`).

Geometry is a signed distance function (negative inside) in the [-1, 1]^3 frame,
fitted so the longest side of the object spans [-0.9, 0.9], y up, centred on its
bounding box.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np
import torch

from .categories import CATEGORY_LIST, AttributeSpec, Category
from .primitives import SDF, Fitted

CATEGORIES: tuple[str, ...] = tuple(c.name for c in CATEGORY_LIST)
CATEGORY_BY_NAME: dict[str, Category] = {c.name: c for c in CATEGORY_LIST}
ATTRIBUTES: dict[str, tuple[AttributeSpec, ...]] = {c.name: c.attributes for c in CATEGORY_LIST}

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
DEFAULT_SIZES = {"train": 20_000, "val": 1_000, "test": 1_000}
FIT_EXTENT = 0.9
NUM_CAPTIONS = 4


def measurable_attributes(category: str) -> list[str]:
    """Names of the attributes of ``category`` that can be read off the geometry."""
    return [a.name for a in ATTRIBUTES[category] if a.measurable]


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def split_of(positions: np.ndarray) -> np.ndarray:
    """Split id (0 train, 1 val, 2 test) of stream positions (int array), by hash."""
    with np.errstate(over="ignore"):
        u = (_splitmix64(np.asarray(positions)) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    cut_train = SPLIT_FRACTIONS["train"]
    cut_val = cut_train + SPLIT_FRACTIONS["val"]
    return np.where(u < cut_train, 0, np.where(u < cut_val, 1, 2))


@lru_cache(maxsize=16)
def split_positions(split: str, size: int) -> np.ndarray:
    """The first ``size`` stream positions (int64, ascending) that belong to ``split``."""
    sid = SPLITS.index(split)
    out, start, chunk = [], 0, max(1024, int(size / SPLIT_FRACTIONS[split] * 1.2))
    have = 0
    while have < size:
        pos = np.arange(start, start + chunk, dtype=np.int64)
        sel = pos[split_of(pos) == sid]
        out.append(sel)
        have += len(sel)
        start += chunk
    return np.concatenate(out)[:size]


def _article(word: str) -> str:
    # Letters read as names: "an L-shaped sofa", "an S-curve".
    if len(word) > 1 and word[1] == "-" and word[0] in "AEFHILMNORSX":
        return "an"
    return "an" if word[0].lower() in "aeiou" else "a"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def make_captions(category: str, attributes: dict, rng: np.random.Generator, count: int = NUM_CAPTIONS) -> list[str]:
    """``count`` different captions; each names the category (one of its nouns). The
    first two name every attribute, the rest a random non-empty subset.

    Args:
        category: a name in :data:`CATEGORIES`.
        attributes: attribute name -> value, as sampled.
        rng: numpy generator (captions are part of the reproducible sample).
    """
    cat = CATEGORY_BY_NAME[category]
    specs = cat.attributes
    templates = ("{x}", "a 3D model of {x}", "{x}, seen as a 3D shape", "this is {x}")
    captions: list[str] = []
    for c in range(count * 4):
        if len(captions) >= count:
            break
        if c < 2:
            chosen = list(specs)
        else:
            k = int(rng.integers(1, len(specs) + 1))
            chosen = [specs[i] for i in sorted(rng.choice(len(specs), size=k, replace=False))]
        order = rng.permutation(len(chosen))
        adjs, withs = [], []
        for i in order:
            spec = chosen[i]
            adj, with_ = spec.phrases[attributes[spec.name]]
            use_adj = adj is not None and (with_ is None or rng.random() < 0.5)
            if use_adj:
                adjs.append(adj)
            elif with_ is not None:
                withs.append(with_)
        noun = cat.nouns[0] if c == 0 else cat.nouns[int(rng.integers(len(cat.nouns)))]
        adj_text = "".join(x + " " for x in adjs)
        with_text = (" with " + _join(withs)) if withs else ""
        head = adj_text + noun
        text = templates[c % len(templates)].format(x=f"{_article(head)} {head}{with_text}")
        text = " ".join(text.split())
        if text not in captions:
            captions.append(text)
    return captions


@dataclass
class ShapeSample:
    """One procedural shape.

    Attributes:
        index: position in its split (0..len-1).
        position: position in the seed's stream (unique across splits).
        category: one of :data:`CATEGORIES`.
        attributes: attribute name -> value (str, int or bool).
        captions: >= 3 natural-language descriptions naming category and attributes.
        sdf: callable (N, 3) float32 tensor in [-1, 1]^3 -> (N,) signed distances.
    """

    index: int
    position: int
    category: str
    attributes: dict
    captions: list[str]
    sdf: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)

    @property
    def category_index(self) -> int:
        return CATEGORIES.index(self.category)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) bounding box of the solid in the [-1, 1]^3 frame."""
        return self.sdf.bounds()


def make_shape(position: int, seed: int = 0, category: str | None = None) -> tuple[str, dict, list[str], SDF]:
    """Category, attributes, captions and fitted SDF of stream position ``position``.

    Args:
        position: stream position (>= 0).
        seed: dataset seed.
        category: override the category (the attributes still come from the seed).
    """
    rng = np.random.default_rng([seed, position])
    cat = CATEGORY_BY_NAME[category or CATEGORIES[position % len(CATEGORIES)]]
    attrs = {}
    for spec in cat.attributes:
        v = spec.values[int(rng.integers(len(spec.values)))]
        attrs[spec.name] = v.item() if isinstance(v, np.generic) else v
    sdf = Fitted(cat.build(attrs, rng), FIT_EXTENT)
    captions = make_captions(cat.name, attrs, rng)
    return cat.name, attrs, captions, sdf


class ShapeDataset:
    """Procedural shapes of one split.

    Args:
        split: "train", "val" or "test".
        size: number of samples (default :data:`DEFAULT_SIZES` [split]).
        seed: dataset seed; the same seed gives the same shapes and captions.
    """

    def __init__(self, split: str, size: int | None = None, seed: int = 0):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        size = DEFAULT_SIZES[split] if size is None else int(size)
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.split, self.size, self.seed = split, size, int(seed)
        self.positions = split_positions(split, size)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> ShapeSample:
        if not -self.size <= i < self.size:
            raise IndexError(f"index {i} out of range for {self.size} shapes")
        i = i % self.size
        pos = int(self.positions[i])
        category, attrs, captions, sdf = make_shape(pos, self.seed)
        return ShapeSample(i, pos, category, attrs, captions, sdf)

    def categories(self) -> list[str]:
        """Category of every sample, without building any geometry."""
        return [CATEGORIES[int(p) % len(CATEGORIES)] for p in self.positions]
