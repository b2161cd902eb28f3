"""build_octree / keys_to_octree against a pure-Python reference and against the torch path.

The CPU build runs in NumPy (int32 keys, bitmap or sort, one pass per level that
also yields the structure tokens); other devices run torch ops. Both must give
exactly the octree and tokens that the definition in octgen.octree.octree implies.
"""
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from octgen.octree import build_octree, keys_to_octree, octree_to_tokens, xyz_to_key
from octgen.octree import octree as octree_mod


def _reference_octree(points: np.ndarray, depth: int) -> tuple[list[list[int]], list[list[int]]]:
    """Keys per depth and structure tokens per depth, by sets and exact rationals."""
    res = 1 << depth

    def cell(c):
        return min(res - 1, max(0, math.floor((Fraction(float(c)) + 1) * res / 2)))

    def key(x, y, z):
        k = 0
        for b in reversed(range(depth)):
            k = (k << 3) | (((x >> b) & 1) << 2) | (((y >> b) & 1) << 1) | ((z >> b) & 1)
        return k

    level = sorted({key(*(cell(c) for c in p)) for p in points})
    keys, tokens = [level], []
    for _ in range(depth):
        masks = {}
        for k in keys[-1]:
            masks[k >> 3] = masks.get(k >> 3, 0) | (1 << (k & 7))
        keys.append(sorted(masks))
        tokens.append([masks[p] for p in keys[-1]])
    return keys[::-1], tokens[::-1]


def _tricky_points(seed: int, depth: int, dtype) -> np.ndarray:
    """Uniform points plus duplicates, cell boundaries of every depth, the cube's
    faces, -0.0, tiny negatives and values a hair inside the 1e-6 tolerance."""
    rng = np.random.default_rng(seed)
    uniform = rng.uniform(-1, 1, (150, 3))
    # Exact cell boundaries of this depth and coarser ones: k / 2^(d-1) - 1.
    d = rng.integers(0, depth + 1, (100, 3))
    bound = rng.integers(0, (1 << d) + 1) / (2.0 ** d) * 2 - 1
    special = np.array([-1.0, 1.0, 0.0, -0.0, -1e-30, 1e-30, -1.401298464324817e-45, 1 + 5e-7, -1 - 5e-7,
                        np.nextafter(np.float32(0.5), np.float32(0)), np.nextafter(np.float32(-0.5), np.float32(-1))])
    spec = rng.choice(special, (60, 3))
    pts = np.concatenate([uniform, bound, spec]).astype(dtype)
    dup = pts[rng.integers(0, len(pts), 80)]  # exact duplicates
    pts = np.concatenate([pts, dup])
    return pts[rng.permutation(len(pts))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("depth", range(11))
def test_build_matches_reference_and_torch_path(depth, dtype):
    pts = _tricky_points(depth, depth, dtype)
    ref_keys, ref_tokens = _reference_octree(pts, depth)
    t = torch.from_numpy(pts)
    fast = build_octree(t, depth)
    slow = octree_mod._build_octree_torch(t, depth)
    assert [k.tolist() for k in fast.keys] == ref_keys
    assert [k.tolist() for k in slow.keys] == ref_keys
    assert all(k.dtype == torch.int64 for k in fast.keys)
    assert [m.tolist() for m in octree_to_tokens(fast)] == ref_tokens
    assert [m.tolist() for m in octree_to_tokens(slow)] == ref_tokens


@pytest.mark.parametrize("depth", [5, 8, 9, 10])  # bitmap up to depth 8, sort beyond
def test_large_build_matches_torch_path(depth):
    g = torch.Generator().manual_seed(depth)
    # Clustered points (many share a leaf) plus uniform ones (most leaves distinct).
    centres = torch.rand(50, 3, generator=g) * 1.6 - 0.8
    blob = centres[torch.randint(0, 50, (60_000,), generator=g)] + 0.02 * torch.randn(60_000, 3, generator=g)
    pts = torch.cat([blob.clamp(-1, 1), torch.rand(60_000, 3, generator=g) * 2 - 1])
    fast = build_octree(pts, depth)
    slow = octree_mod._build_octree_torch(pts, depth)
    assert fast == slow
    for a, b in zip(octree_to_tokens(fast), octree_to_tokens(slow)):
        assert torch.equal(a, b)
    # The leaves are exactly the sorted distinct keys of the points' cells.
    assert torch.equal(fast.keys[depth], torch.unique(xyz_to_key(octree_mod.points_to_xyz(pts, depth))))


def test_low_precision_and_integer_points():
    pts = torch.tensor([[0.25, -0.5, 1.0], [-1.0, 0.0, 0.75]])
    ref = build_octree(pts, 6)
    assert build_octree(pts.half(), 6) == ref
    assert build_octree(pts.bfloat16(), 6) == ref
    assert build_octree(pts.double(), 6) == ref
    assert build_octree(torch.tensor([[1, 0, -1]]), 3) == build_octree(torch.tensor([[1.0, 0.0, -1.0]]), 3)
    strided = torch.stack([pts, pts], dim=1)[:, 1]  # not contiguous
    assert build_octree(strided, 6) == ref


def test_points_with_grad_are_accepted():
    pts = (torch.rand(20, 3) * 2 - 1).requires_grad_()
    assert build_octree(pts, 4) == build_octree(pts.detach(), 4)


def test_keys_to_octree_cpu_matches_torch_path():
    g = torch.Generator().manual_seed(0)
    leaves = torch.unique(torch.randint(0, 1 << 21, (5000,), generator=g))
    fast = keys_to_octree(leaves, 7)
    slow = octree_mod._octree_from_sorted_keys_torch(leaves, 7)
    assert fast == slow
    for a, b in zip(octree_to_tokens(fast), octree_to_tokens(slow)):
        assert torch.equal(a, b)


def test_cached_tokens_are_copies():
    o = build_octree(torch.rand(500, 3) * 2 - 1, 4)
    first = octree_to_tokens(o)
    first[2].zero_()
    assert int(octree_to_tokens(o)[2].min()) >= 1
