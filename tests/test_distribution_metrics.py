"""MMD / COV / 1-NNA with Chamfer distance on cases with known answers."""
import torch

from octgen.metrics.distribution import distribution_metrics, pairwise_chamfer_l1


def _clouds(centres, n_pts=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(len(centres), n_pts, 3, generator=g)
    pts = 0.1 * pts / pts.norm(dim=2, keepdim=True)
    return pts + torch.tensor(centres, dtype=torch.float32)[:, None, :]


def test_chamfer_is_symmetric_zero_on_self_and_matches_brute_force():
    a = _clouds([[0, 0, 0], [0.5, 0, 0]])
    d = pairwise_chamfer_l1(a)
    assert torch.allclose(d, d.T, atol=1e-6) and torch.allclose(d.diag(), torch.zeros(2), atol=1e-6)
    x, y = a[0], a[1]
    brute = 0.5 * (min_d(x, y) + min_d(y, x))
    assert torch.isclose(d[0, 1], brute, atol=1e-6)


def min_d(x, y):
    return torch.stack([(y - p).norm(dim=1).min() for p in x]).mean()


def test_identical_sets_are_indistinguishable_and_covered():
    ref = _clouds([[i * 0.3, 0, 0] for i in range(8)], seed=1)
    gen = _clouds([[i * 0.3, 0, 0] for i in range(8)], seed=2)  # same shapes, other samples
    m = distribution_metrics(gen, ref)
    assert m["cov"] == 1.0 and m["mmd"] < 0.05
    assert m["nna"] <= 0.6


def test_collapsed_and_shifted_sets_are_detected():
    ref = _clouds([[i * 0.3, 0, 0] for i in range(8)], seed=1)
    collapsed = _clouds([[0.15, 0.3, 0]] * 8, seed=3)  # mode collapse, off the reference shapes
    m = distribution_metrics(collapsed, ref)
    assert m["cov"] <= 2 / 8 and m["nna"] > 0.8
    far = _clouds([[i * 0.3, 5, 0] for i in range(8)], seed=4)
    m = distribution_metrics(far, ref)
    assert m["nna"] == 1.0 and m["mmd"] > 4
