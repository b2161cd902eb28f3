"""Distribution metrics between generated and reference shape sets.

The standard point-cloud generation protocol (Achlioptas et al. 2018; Yang et al.
2019): each shape is a point cloud sampled on its surface, the distance between two
shapes is the Chamfer distance, and

- **MMD** (minimum matching distance): mean over reference shapes of the distance to
  the closest generated shape (lower is better: fidelity);
- **COV** (coverage): fraction of reference shapes that are the nearest reference of
  at least one generated shape (higher is better: diversity);
- **1-NNA** (1-nearest-neighbour accuracy): leave-one-out 1-NN classification of
  generated vs reference in the union of both sets; 50% means indistinguishable,
  100% means fully separable.
"""
from __future__ import annotations

import torch


def pairwise_chamfer_l1(a_NP3: torch.Tensor, b_MP3: torch.Tensor | None = None, chunk: int = 16) -> torch.Tensor:
    """Point-to-point Chamfer-L1 distance of every pair of clouds of two sets: the
    mean Euclidean distance to the nearest point of the other cloud, averaged over
    both directions (the convention of :func:`octgen.metrics.shapes.surface_distances`,
    batched on torch for many small clouds).

    Args:
        a_NP3: (N, P, 3) point clouds.
        b_MP3: (M, Q, 3) point clouds; default ``a_NP3``.
    Returns:
        (N, M) distances.
    """
    b_MP3 = a_NP3 if b_MP3 is None else b_MP3
    out = torch.empty(a_NP3.shape[0], b_MP3.shape[0])
    for i in range(a_NP3.shape[0]):
        for j0 in range(0, b_MP3.shape[0], chunk):
            b = b_MP3[j0:j0 + chunk]  # (m, Q, 3)
            d_mPQ = torch.cdist(a_NP3[i].expand(b.shape[0], -1, -1), b, compute_mode="donot_use_mm_for_euclid_dist")
            out[i, j0:j0 + b.shape[0]] = 0.5 * (d_mPQ.amin(2).mean(1) + d_mPQ.amin(1).mean(1))
    return out


def distribution_metrics(gen_NP3: torch.Tensor, ref_MP3: torch.Tensor) -> dict:
    """MMD, COV and 1-NNA (all with Chamfer-L1) of generated vs reference clouds.

    Args:
        gen_NP3: (N, P, 3) generated shapes' surface samples, N >= 1.
        ref_MP3: (M, P, 3) reference shapes' surface samples, M >= 1.
    Returns:
        dict with ``mmd``, ``cov`` (0..1), ``nna`` (0..1), ``n_gen``, ``n_ref``.
    """
    n, m = gen_NP3.shape[0], ref_MP3.shape[0]
    if n < 1 or m < 1:
        raise ValueError("distribution metrics need at least one generated and one reference shape")
    d_gr = pairwise_chamfer_l1(gen_NP3, ref_MP3)  # (N, M)
    mmd = d_gr.amin(0).mean().item()
    cov = d_gr.argmin(1).unique().numel() / m
    d_gg = pairwise_chamfer_l1(gen_NP3)
    d_rr = pairwise_chamfer_l1(ref_MP3)
    # Union distance matrix, with self-distances excluded for leave-one-out 1-NN.
    d = torch.cat([torch.cat([d_gg, d_gr], 1), torch.cat([d_gr.T, d_rr], 1)], 0)
    d.fill_diagonal_(float("inf"))
    labels = torch.cat([torch.zeros(n), torch.ones(m)])
    nearest = d.argmin(1)
    nna = (labels[nearest] == labels).float().mean().item()
    return {"mmd": mmd, "cov": cov, "nna": nna, "n_gen": n, "n_ref": m}
