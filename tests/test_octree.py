"""Octree core: Morton keys, build, structure tokens, neighbour look-up."""
import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from octgen.octree import (
    MAX_DEPTH, NEIGHBOUR_OFFSETS, build_octree, key_to_xyz, keys_to_octree, neighbour_table,
    octree_to_tokens, points_to_xyz, tokens_to_octree, xyz_to_centres, xyz_to_key,
)


def _reference_key(x: int, y: int, z: int, depth: int) -> int:
    key = 0
    for b in reversed(range(depth)):
        key = (key << 3) | (((x >> b) & 1) << 2) | (((y >> b) & 1) << 1) | ((z >> b) & 1)
    return key


def _reference_cell(c: float, depth: int) -> int:
    """Cell index of one coordinate in exact rational arithmetic (no float rounding)."""
    res = 1 << depth
    return min(res - 1, max(0, math.floor((Fraction(c) + 1) * res / 2)))


@given(st.lists(st.tuples(*[st.integers(0, 1023)] * 3), min_size=1, max_size=50))
def test_morton_matches_bitwise_reference_and_inverts(cells):
    xyz = torch.tensor(cells)
    keys = xyz_to_key(xyz)
    assert keys.tolist() == [_reference_key(*c, 10) for c in cells]
    assert torch.equal(key_to_xyz(keys), xyz)


points_strategy = st.lists(
    st.tuples(*[st.floats(-1, 1, allow_nan=False, width=32)] * 3), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(points_strategy, st.integers(0, MAX_DEPTH))
def test_octree_tokens_round_trip_exact(points, depth):
    pts = torch.tensor(points, dtype=torch.float32)
    octree = build_octree(pts, depth)
    tokens = octree_to_tokens(octree)
    assert len(tokens) == depth
    for d, t in enumerate(tokens):
        assert t.dtype == torch.uint8 and t.numel() == octree.num_nodes(d)
        assert int(t.min()) >= 1
    rebuilt = tokens_to_octree(tokens)
    assert rebuilt == octree
    # Leaves are exactly the distinct occupied cells, in z-order.
    cells = {tuple(_reference_cell(c, depth) for c in p) for p in pts.tolist()}
    expect = sorted(_reference_key(*c, depth) for c in cells)
    assert octree.keys[depth].tolist() == expect


@settings(max_examples=30, deadline=None)
@given(points_strategy, st.integers(1, 6))
def test_every_level_is_parent_of_next(points, depth):
    octree = build_octree(torch.tensor(points), depth)
    for d in range(1, depth + 1):
        parents = octree.keys[d - 1][octree.parent_index(d)]
        assert torch.equal(parents, octree.keys[d] >> 3)
        assert torch.all(octree.keys[d][1:] > octree.keys[d][:-1])


def test_dense_and_sorting_dedup_agree():
    pts = torch.rand(5000, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    a = build_octree(pts, 8)  # dense bitmap path
    keys = torch.unique(xyz_to_key(points_to_xyz(pts, 8)))
    assert torch.equal(a.keys[8], keys)
    b = build_octree(pts, 9)  # sorting path
    assert torch.equal(b.keys[8], a.keys[8])


def test_centres_inside_their_cells():
    pts = torch.rand(100, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    o = build_octree(pts, 4)
    c = o.cell_centres(4)
    assert torch.equal(points_to_xyz(c, 4), o.xyz(4))
    assert torch.allclose(xyz_to_centres(torch.tensor([[0, 0, 0]]), 1), torch.tensor([[-0.5, -0.5, -0.5]]))


@pytest.mark.parametrize("bad, msg", [
    (torch.zeros(0, 3), "empty"),
    (torch.zeros(4, 2), "shape"),
    (torch.tensor([[0.0, float("nan"), 0.0]]), "NaN"),
    (torch.tensor([[0.0, float("inf"), 0.0]]), "NaN"),
    (torch.tensor([[0.0, 1.5, 0.0]]), "normalise"),
])
def test_build_rejects_bad_points(bad, msg):
    with pytest.raises(ValueError, match=msg):
        build_octree(bad, 3)


@pytest.mark.parametrize("depth", [-1, 11, 2.5, True])
def test_build_rejects_bad_depth(depth):
    with pytest.raises(ValueError, match="depth"):
        build_octree(torch.zeros(1, 3), depth)


def test_tokens_to_octree_rejects_inconsistent_tokens():
    with pytest.raises(ValueError, match="expected 1 tokens"):
        tokens_to_octree([torch.tensor([3, 3], dtype=torch.uint8)])
    with pytest.raises(ValueError, match="1..255"):
        tokens_to_octree([torch.tensor([0], dtype=torch.uint8)])
    with pytest.raises(ValueError, match="expected 2 tokens"):
        tokens_to_octree([torch.tensor([3], dtype=torch.uint8), torch.tensor([1], dtype=torch.uint8)])


def _brute_neighbours(keys, depth):
    xyz = key_to_xyz(keys).tolist()
    where = {tuple(c): i for i, c in enumerate(xyz)}
    return torch.tensor([[where.get((x + dx, y + dy, z + dz), -1) for dx, dy, dz in NEIGHBOUR_OFFSETS.tolist()]
                         for x, y, z in xyz])


@pytest.mark.parametrize("depth", [1, 3, 8, 9, 10])  # dense-grid path up to 8, binary search beyond
def test_neighbour_table_matches_brute_force(depth):
    g = torch.Generator().manual_seed(depth)
    res = 1 << depth
    # A compact blob of cells (so neighbours exist) plus cells on the grid boundary.
    centre = torch.randint(0, res, (1, 3), generator=g)
    xyz = (centre + torch.randint(-3, 4, (400, 3), generator=g)).clamp(0, res - 1)
    xyz = torch.cat([xyz, torch.tensor([[0, 0, 0], [res - 1, res - 1, res - 1]])])
    keys = torch.unique(xyz_to_key(xyz))
    table = neighbour_table(keys, depth)
    assert torch.equal(table, _brute_neighbours(keys, depth))
    assert torch.equal(table[:, 13], torch.arange(len(keys)))


def test_neighbour_offsets_follow_conv_kernel_order():
    assert NEIGHBOUR_OFFSETS.tolist() == [list(o) for o in itertools.product((-1, 0, 1), repeat=3)]


def test_keys_to_octree_builds_all_levels():
    o = build_octree(torch.rand(300, 3) * 2 - 1, 5)
    assert keys_to_octree(o.keys[5], 5) == o


@pytest.mark.parametrize("depth", [9, 10])  # tables derived from the parent level's table
def test_deep_neighbour_table_matches_brute_force_on_mixed_cells(depth):
    g = torch.Generator().manual_seed(100 + depth)
    res = 1 << depth
    blob = (torch.randint(0, res, (1, 3), generator=g) + torch.randint(-4, 5, (1500, 3), generator=g)).clamp(0, res - 1)
    scattered = torch.randint(0, res, (300, 3), generator=g)
    # Cells on the faces and edges of the grid, whose parents sit on the faces too.
    face = torch.randint(0, 6, (400, 3), generator=g) * torch.tensor([1, 1, 1])
    face[:200, 0] = res - 1 - face[:200, 0] % 2
    face[200:, 1] = face[200:, 1] % 2
    xyz = torch.cat([blob, scattered, face.clamp(0, res - 1)])
    keys = torch.unique(xyz_to_key(xyz))
    table = neighbour_table(keys, depth)
    assert table.dtype == torch.int64
    assert torch.equal(table, _brute_neighbours(keys, depth))
