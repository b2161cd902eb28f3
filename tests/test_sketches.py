"""Sketch rendering from SDFs: outlines where they should be, creases, determinism."""
import numpy as np
import torch

from octgen.condition.sketch import preprocess_sketch
from octgen.data.sketches import SketchView, render_sketch


def sphere(p):
    return p.norm(dim=1) - 0.6


def box(p):
    q = p.abs() - 0.5
    return q.clamp_min(0).norm(dim=1) + q.amax(dim=1).clamp_max(0)


def test_sphere_sketch_is_a_circle_outline():
    img = render_sketch(sphere, view=SketchView(30, 20), size=96, stroke_px=1)
    ink = img < 128
    ys, xs = np.nonzero(ink)
    c = (96 - 1) / 2
    r_px = np.hypot(ys - c, xs - c) * (2 * 1.35 / 95)  # pixels -> scene units
    assert np.abs(r_px - 0.6).max() < 0.05  # every stroke on the outline, no inner edges
    assert ink.sum() > 100


def test_box_sketch_has_inner_edges():
    img = render_sketch(box, view=SketchView(35, 25), size=96, stroke_px=1)
    ink = img < 128
    # Inside the silhouette there are crease strokes (a 3/4 view of a cube shows 3 faces).
    assert ink[30:66, 30:66].sum() > 20


def test_same_generator_same_sketch_and_preprocessed_shape():
    a = render_sketch(box, torch.Generator().manual_seed(3), size=64)
    b = render_sketch(box, torch.Generator().manual_seed(3), size=64)
    c = render_sketch(box, torch.Generator().manual_seed(4), size=64)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.uint8 and set(np.unique(a)) <= {0, 255}
    assert preprocess_sketch(a, size=32).shape == (1, 32, 32)
