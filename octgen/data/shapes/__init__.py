"""Procedural shape dataset: everyday objects as exact signed distance functions.

>>> from octgen.data.shapes import ShapeDataset
>>> ds = ShapeDataset("train", size=100, seed=0)
>>> s = ds[0]; s.category, s.attributes, s.captions[0]          # doctest: +SKIP
>>> d = s.sdf(torch.rand(1000, 3) * 2 - 1)                       # (1000,), negative inside

See :mod:`.dataset` for splits and seeding, :mod:`.categories` for the categories
and their attributes, :mod:`.primitives` for the SDF building blocks.
"""
from .categories import AttributeSpec, Category
from .dataset import (
    ATTRIBUTES,
    CATEGORIES,
    CATEGORY_BY_NAME,
    DEFAULT_SIZES,
    SPLIT_FRACTIONS,
    SPLITS,
    ShapeDataset,
    ShapeSample,
    make_captions,
    make_shape,
    measurable_attributes,
    split_of,
)

__all__ = [
    "ATTRIBUTES", "CATEGORIES", "CATEGORY_BY_NAME", "DEFAULT_SIZES", "SPLIT_FRACTIONS", "SPLITS",
    "AttributeSpec", "Category", "ShapeDataset", "ShapeSample", "make_captions", "make_shape",
    "measurable_attributes", "split_of", "preprocess_shapes", "load_shards",
]


def __getattr__(name):
    # Preprocessing pulls in the octree builder; keep the dataset import light.
    if name in ("preprocess_shapes", "load_shards"):
        from . import preprocess
        return getattr(preprocess, name)
    raise AttributeError(name)
