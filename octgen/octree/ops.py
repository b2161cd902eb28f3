"""Octree convolution, downsampling and upsampling in pure PyTorch.

Features are (N, C) tensors, one row per node of a node set at one depth (any
sorted key set: the non-empty nodes, or all 8 children of non-empty parents).
Missing neighbours count as zeros, so each op equals its dense counterpart
(``conv3d`` / strided ``conv3d`` / ``conv_transpose3d`` on a grid that is zero
outside the nodes) read back at the nodes; tests check exactly that.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def octree_conv(x_NC: torch.Tensor, neigh_N27: torch.Tensor, weight_KIO: torch.Tensor,
                bias_O: torch.Tensor | None = None) -> torch.Tensor:
    """Stride-1 3x3x3 octree convolution.

    Args:
        x_NC: (N, Cin) node features.
        neigh_N27: (N, 27) neighbour rows from :func:`neighbour_table` (-1 = none).
        weight_KIO: (27, Cin, Cout), kernel offsets ordered as ``NEIGHBOUR_OFFSETS``.
        bias_O: optional (Cout,).
    Returns:
        (N, Cout).
    """
    n, cin = x_NC.shape
    x_pad = torch.cat([x_NC, x_NC.new_zeros(1, cin)], dim=0)  # row N is the zero neighbour
    idx = torch.where(neigh_N27 < 0, torch.full_like(neigh_N27, n), neigh_N27)
    cols_NKI = x_pad[idx]
    out = cols_NKI.reshape(n, 27 * cin) @ weight_KIO.reshape(27 * cin, -1)
    return out if bias_O is None else out + bias_O


def octree_downsample(x_MC: torch.Tensor, parent_idx_M: torch.Tensor, slot_M: torch.Tensor,
                      num_parents: int, weight_SIO: torch.Tensor,
                      bias_O: torch.Tensor | None = None) -> torch.Tensor:
    """Stride-2 2x2x2 convolution from children (depth d+1) to parents (depth d).

    Args:
        x_MC: (M, Cin) child features.
        parent_idx_M, slot_M: from :func:`octgen.octree.neighbours.child_to_parent`.
        num_parents: N, rows of the output.
        weight_SIO: (8, Cin, Cout), indexed by child slot.
    Returns:
        (N, Cout); parents without children get only the bias.
    """
    cin = x_MC.shape[1]
    cols_NSI = x_MC.new_zeros(num_parents, 8, cin)
    cols_NSI = cols_NSI.index_put((parent_idx_M, slot_M), x_MC)
    out = cols_NSI.reshape(num_parents, 8 * cin) @ weight_SIO.reshape(8 * cin, -1)
    return out if bias_O is None else out + bias_O


def octree_upsample(x_NC: torch.Tensor, parent_idx_M: torch.Tensor, slot_M: torch.Tensor,
                    weight_SIO: torch.Tensor, bias_O: torch.Tensor | None = None) -> torch.Tensor:
    """Stride-2 2x2x2 transposed convolution from parents (depth d) to children (d+1).

    Returns:
        (M, Cout), one row per child in ``parent_idx_M``.
    """
    n, cin = x_NC.shape
    cout = weight_SIO.shape[2]
    all_NSO = (x_NC @ weight_SIO.permute(1, 0, 2).reshape(cin, 8 * cout)).reshape(n, 8, cout)
    out = all_NSO[parent_idx_M, slot_M]
    return out if bias_O is None else out + bias_O


def _init(weight: torch.Tensor, fan_in: int) -> None:
    nn.init.uniform_(weight, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))


class OctreeConv(nn.Module):
    """3x3x3 stride-1 octree convolution (see :func:`octree_conv`)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(27, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        _init(self.weight, 27 * in_channels)

    def forward(self, x_NC: torch.Tensor, neigh_N27: torch.Tensor) -> torch.Tensor:
        return octree_conv(x_NC, neigh_N27, self.weight, self.bias)


class OctreeDownsample(nn.Module):
    """2x2x2 stride-2 octree convolution, children -> parents."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(8, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        _init(self.weight, 8 * in_channels)

    def forward(self, x_MC, parent_idx_M, slot_M, num_parents: int):
        return octree_downsample(x_MC, parent_idx_M, slot_M, num_parents, self.weight, self.bias)


class OctreeUpsample(nn.Module):
    """2x2x2 stride-2 transposed octree convolution, parents -> children."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(8, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        _init(self.weight, in_channels)

    def forward(self, x_NC, parent_idx_M, slot_M):
        return octree_upsample(x_NC, parent_idx_M, slot_M, self.weight, self.bias)
