"""Octree conv / downsample / upsample against dense voxel references."""
import pytest
import torch
import torch.nn.functional as F

from octgen.octree import (
    OctreeConv, OctreeDownsample, OctreeUpsample, build_octree, children_keys, key_to_xyz, neighbour_table,
)
from octgen.octree.neighbours import child_to_parent


def _scatter_dense(x_NC, xyz_N3, res):
    grid = x_NC.new_zeros(1, x_NC.shape[1], res, res, res)
    grid[0, :, xyz_N3[:, 0], xyz_N3[:, 1], xyz_N3[:, 2]] = x_NC.T
    return grid


def _gather_dense(grid, xyz_N3):
    return grid[0, :, xyz_N3[:, 0], xyz_N3[:, 1], xyz_N3[:, 2]].T


def _octree(depth=4, n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(n, 3, generator=g)
    pts = 0.8 * pts / pts.norm(dim=1, keepdim=True)  # a sphere surface: sparse, with gaps
    return build_octree(pts, depth)


@pytest.mark.parametrize("node_set", ["nonempty", "all_children"])
def test_conv_matches_dense_conv3d(node_set):
    torch.manual_seed(0)
    o = _octree()
    d = 4
    keys = o.keys[d] if node_set == "nonempty" else children_keys(o.keys[d - 1])
    xyz = key_to_xyz(keys)
    conv = OctreeConv(5, 7).double()
    x = torch.randn(len(keys), 5, dtype=torch.float64)
    out = conv(x, neighbour_table(keys, d))
    w_dense = conv.weight.permute(2, 1, 0).reshape(7, 5, 3, 3, 3)
    ref = _gather_dense(F.conv3d(_scatter_dense(x, xyz, 16), w_dense, conv.bias, padding=1), xyz)
    assert torch.allclose(out, ref, atol=1e-5)


def test_downsample_matches_strided_conv3d():
    torch.manual_seed(0)
    o = _octree()
    child, parent = children_keys(o.keys[3]), o.keys[3]
    pidx, slot = child_to_parent(child, parent)
    down = OctreeDownsample(4, 6).double()
    x = torch.randn(len(child), 4, dtype=torch.float64)
    out = down(x, pidx, slot, len(parent))
    w_dense = down.weight.permute(2, 1, 0).reshape(6, 4, 2, 2, 2)
    ref = F.conv3d(_scatter_dense(x, key_to_xyz(child), 16), w_dense, down.bias, stride=2)
    assert torch.allclose(out, _gather_dense(ref, key_to_xyz(parent)), atol=1e-5)


def test_upsample_matches_conv_transpose3d():
    torch.manual_seed(0)
    o = _octree()
    parent, child = o.keys[3], o.keys[4]  # only the non-empty children
    pidx, slot = child_to_parent(child, parent)
    up = OctreeUpsample(4, 6).double()
    x = torch.randn(len(parent), 4, dtype=torch.float64)
    out = up(x, pidx, slot)
    w_dense = up.weight.permute(1, 2, 0).reshape(4, 6, 2, 2, 2)
    ref = F.conv_transpose3d(_scatter_dense(x, key_to_xyz(parent), 8), w_dense, up.bias, stride=2)
    assert torch.allclose(out, _gather_dense(ref, key_to_xyz(child)), atol=1e-5)


def test_gradients_flow_and_match_finite_differences():
    torch.manual_seed(0)
    o = _octree(depth=3, n=60)
    keys = o.keys[3]
    neigh = neighbour_table(keys, 3)
    pidx, slot = child_to_parent(keys, o.keys[2])
    conv, down, up = OctreeConv(2, 3).double(), OctreeDownsample(3, 2).double(), OctreeUpsample(2, 2).double()
    x = torch.randn(len(keys), 2, dtype=torch.float64, requires_grad=True)

    def f(x):
        h = conv(x, neigh)
        return up(down(h, pidx, slot, len(o.keys[2])), pidx, slot)

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-5)
    f(x).square().sum().backward()
    for m in (conv, down, up):
        assert m.weight.grad is not None and m.weight.grad.abs().sum() > 0


def test_child_to_parent_rejects_orphans():
    with pytest.raises(ValueError, match="no parent"):
        child_to_parent(torch.tensor([8 * 5]), torch.tensor([0, 1]))
