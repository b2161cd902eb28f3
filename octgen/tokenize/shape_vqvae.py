"""The shape tokenizer: an octree VQ-VAE with a binary quantiser.

Pipeline (ARCHITECTURE.md section 2)::

    mesh / SDF ──► surface band octree at the fine depth D (cells with |sdf| < h),
                   7 SDF samples per cell as input features
              ──► encoder: octree residual blocks + stride-2 octree downsampling to the
                   token depth T
              ──► binary quantiser: L2-normalise a K-dim latent, code = sign (straight
                   through), entropy penalty (BSQ / LFQ family) -> K bits per depth-T node
              ──► decoder: from the depth-T octree and its codes, predict at every depth
                   d in T..D-1 which of each node's 8 children are in the band (split
                   logits), upsample to the (predicted, or ground-truth in training)
                   children; at depth D predict the SDF at all 8 children of every
                   depth D-1 node
              ──► optional output level (decoder-only, ``output_depth = D + 1``): the
                   band cells the last split keeps are upsampled to their 8 children
                   and the SDF predicted there, over the depth-D field interpolated
              ──► SDF grid at depth D (or D + 1) (cells the decoder did not reach are far inside /
                   outside, from the token octree: see ``tokens_to_grid``) ──► marching
                   cubes ──► watertight mesh

The token sequence is the depth-T octree's structure tokens plus a (N_T, K) 0/1
payload (``payload_kind="shape_bits"``). Everything is local, so the tokenizer
works on any shape, not only the categories it was trained on.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from diffusers.configuration_utils import register_to_config

from ..octree import OctreeConv, OctreeDownsample, OctreeUpsample, children_keys, keys_to_octree, neighbour_table
from ..octree.neighbours import child_to_parent
from ..data.grid import grid_to_mesh
from .base import OctreeTokenizer
from .shape_sdf import ShapeBand, sdf_to_band
from .tokens import OctreeTokens

PAYLOAD_KIND = "shape_bits"


# --------------------------------------------------------------------------- bits <-> index


DECODER_ONLY = ("refine_blocks", "output_depth", "output_channels", "output_blocks")


def bits_to_index(bits: torch.Tensor) -> torch.Tensor:
    """Binary codes to integer indices, most significant bit first.

    Args:
        bits: (..., K) tensor of 0/1 (K <= 62).
    Returns:
        (...,) int64 in [0, 2^K).
    """
    k = bits.shape[-1]
    weights = torch.tensor([1 << (k - 1 - i) for i in range(k)], dtype=torch.int64, device=bits.device)
    return (bits.long() * weights).sum(-1)


def index_to_bits(index: torch.Tensor, num_bits: int) -> torch.Tensor:
    """Inverse of :func:`bits_to_index`: (...,) int64 -> (..., K) int64 0/1."""
    shifts = torch.arange(num_bits - 1, -1, -1, device=index.device)
    return (index.long()[..., None] >> shifts) & 1


# --------------------------------------------------------------------------- batched octree levels


def _batch_neighbours(keys_N: torch.Tensor, depth: int) -> torch.Tensor:
    """(N, 27) neighbour rows for batched keys ``key | (shape << 3*depth)``;
    neighbours never cross shapes."""
    shape_id = keys_N >> (3 * depth)
    local = keys_N & ((1 << (3 * depth)) - 1)
    out = torch.empty(keys_N.numel(), 27, dtype=torch.int64)
    bounds = torch.searchsorted(shape_id, torch.unique_consecutive(shape_id))
    ends = torch.cat([bounds[1:], torch.tensor([keys_N.numel()])])
    for s, e in zip(bounds.tolist(), ends.tolist()):
        nb = neighbour_table(local[s:e], depth)
        out[s:e] = torch.where(nb >= 0, nb + s, nb)
    return out


def _child_mask_targets(parent_keys: torch.Tensor, child_keys: torch.Tensor) -> torch.Tensor:
    """(N_parent, 8) float 0/1: which child slots of each parent are in ``child_keys``."""
    idx, slot = child_to_parent(child_keys, parent_keys)
    target = torch.zeros(parent_keys.numel(), 8)
    target[idx, slot] = 1.0
    return target


# --------------------------------------------------------------------------- layers


def flip_codes(codes_NK: torch.Tensor, shape_N: torch.Tensor, n_shapes: int, max_rate: float,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Code noise: shape ``b`` draws a rate uniformly from [0, max_rate] and each bit
    (a ±1 entry) of its nodes' codes is negated with that probability.

    Args:
        codes_NK: (N, K) codes in ±1.
        shape_N: (N,) the shape each node belongs to, in 0..n_shapes-1.
    """
    rate_N = (torch.rand(n_shapes, generator=generator) * max_rate)[shape_N]
    flip_NK = torch.rand(codes_NK.shape, generator=generator) < rate_N[:, None]
    return torch.where(flip_NK, -codes_NK, codes_NK)


class OctreeResBlock(nn.Module):
    """Pre-norm residual block of two 3x3x3 octree convolutions."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.conv1 = OctreeConv(channels, channels)
        self.norm2 = nn.LayerNorm(channels)
        self.conv2 = OctreeConv(channels, channels)

    def forward(self, x_NC: torch.Tensor, neigh_N27: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.gelu(self.norm1(x_NC)), neigh_N27)
        h = self.conv2(F.gelu(self.norm2(h)), neigh_N27)
        return x_NC + h


class BinaryQuantizer(nn.Module):
    """Binary spherical quantiser: ``u = z / |z|``, code ``q = sign(u) / sqrt(K)``,
    straight-through gradient. The entropy penalty makes each node's bits confident
    (low per-node entropy) while keeping every bit used across the batch (high
    entropy of the mean), factorised per bit as in BSQ."""

    def __init__(self, num_bits: int, entropy_temperature: float = 1.0):
        super().__init__()
        self.num_bits = num_bits
        self.entropy_temperature = entropy_temperature

    def forward(self, z_NK: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Returns (codes_NK in ±1 with straight-through gradient, bits_NK 0/1, losses)."""
        k = self.num_bits
        u = F.normalize(z_NK, dim=-1)
        q = torch.where(u >= 0, 1.0, -1.0) / k ** 0.5
        codes = (u + (q - u).detach()) * k ** 0.5
        p = torch.sigmoid(2.0 * u * k ** 0.5 / self.entropy_temperature)  # P(bit = 1)
        node_entropy = _binary_entropy(p).mean()
        usage_entropy = _binary_entropy(p.mean(0)).mean()
        losses = {"commit": ((u - q.detach()) ** 2).sum(-1).mean(),
                  "node_entropy": node_entropy, "usage_entropy": usage_entropy}
        return codes, (q > 0).long(), losses


def _binary_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * p.log2() + (1 - p) * (1 - p).log2())


# --------------------------------------------------------------------------- model


@dataclass
class ShapeResult:
    """One generated shape (what a shape pipeline returns per sample).

    Attributes:
        mesh: watertight ``trimesh.Trimesh`` in [-1, 1]^3 (empty when the decoded
            field has no surface).
        tokens: the sampled :class:`~octgen.tokenize.tokens.OctreeTokens`.
        timings: seconds per stage: ``encode_condition``, ``sample_level_<d>``,
            ``decode``, ``marching_cubes``, ``total`` (batch stages are shared
            equally by the batch's shapes).
    """

    mesh: object
    tokens: object
    timings: dict = field(default_factory=dict)


# How far (in depth-T leaves, 26-neighbourhood) from two parts a leaf may lie to be
# drawn again by ShapeVQVAE.connect_leaves.
JUNCTION_REACH = 1
# Meshes connect_leaves keeps for decode_sample (the sampler checks up to
# CONNECT_ROUNDS + 1 draws per row; a bigger batch decodes the rest again).
CHECKED_MESHES = 64
_CHECKED_LOCK = threading.Lock()  # module-level: the tokenizer stays picklable / deep-copyable


def _token_digest(tokens: OctreeTokens) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for t in (*tokens.structure, tokens.payload):
        t = t.contiguous()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.numpy().tobytes())
    return h.digest()

class ShapeVQVAE(OctreeTokenizer):
    """Octree VQ-VAE shape tokenizer (see the module docstring), an
    :class:`~octgen.tokenize.base.OctreeTokenizer`: ``depth`` is the token depth T,
    ``payload_vocab_sizes`` is ``[2] * code_bits``, ``payload_kind`` "shape_bits".

    Args:
        fine_depth: D, depth of the surface band the encoder reads and the SDF grid
            the decoder writes (grid 2^D per side).
        token_depth: T < D, depth of the token octree.
        code_bits: K bits per depth-T node.
        in_features: encoder input features per band cell (7: SDF at the centre and
            at the 6 face neighbours, in cell units).
        channels: feature width per depth, listed from depth D down to depth T
            (length D - T + 1).
        enc_blocks / dec_blocks: residual blocks per depth, D down to T.
        refine_blocks: decoder residual blocks per depth, D down to T, after the
            ``dec_blocks`` ones, their last convolution zero-initialised, so that a
            decoder grown with :meth:`grow_decoder` starts as the one it grew from.
            Decoder-only: not part of :meth:`config_hash`, the codes keep their meaning.
        output_depth: depth of the decoded SDF grid: D (None, the default) or D + 1,
            an output level that upsamples the band cells the last split keeps to
            their 8 children each and predicts the SDF there (grid 2^(D+1) per side;
            the depth-D SDF fills the cells it does not reach). Decoder-only.
        output_channels, output_blocks: width and residual blocks of that level.
        sdf_clip: decoder SDF target is sdf / h clipped to ±sdf_clip.
        entropy_weight, usage_weight, commit_weight, split_weight: loss weights.
        name: tokenizer name written into token files.
    """

    payload_kind = PAYLOAD_KIND

    @register_to_config
    def __init__(self, fine_depth: int = 6, token_depth: int = 4, code_bits: int = 16, in_features: int = 7,
                 channels: tuple = (32, 48, 96), enc_blocks: tuple = (0, 1, 1), dec_blocks: tuple = (0, 1, 2),
                 refine_blocks: tuple | None = None, output_depth: int | None = None,
                 output_channels: int = 16, output_blocks: int = 1,
                 sdf_clip: float = 2.0, entropy_weight: float = 0.02, usage_weight: float = 1.0,
                 commit_weight: float = 0.1, split_weight: float = 1.0, entropy_temperature: float = 1.0,
                 name: str = "shape-vqvae"):
        super().__init__()
        levels = fine_depth - token_depth
        refine = tuple(refine_blocks) if refine_blocks is not None else (0,) * (levels + 1)
        if not 1 <= levels or len(channels) != levels + 1 or len(enc_blocks) != levels + 1 \
                or len(dec_blocks) != levels + 1 or len(refine) != levels + 1:
            raise ValueError("need token_depth < fine_depth and one channel/block entry per depth D..T")
        if any(int(n) < 0 for n in refine):
            raise ValueError("refine_blocks must be counts >= 0")
        if output_depth is not None and int(output_depth) not in (fine_depth, fine_depth + 1):
            raise ValueError(f"output_depth must be fine_depth ({fine_depth}) or fine_depth + 1, got {output_depth}")
        if int(output_channels) < 1 or int(output_blocks) < 0:
            raise ValueError("output_channels must be >= 1 and output_blocks >= 0")
        ch = list(channels)
        self.stem = nn.Linear(in_features, ch[0])
        self.enc_stages = nn.ModuleList([nn.ModuleList([OctreeResBlock(ch[i]) for _ in range(enc_blocks[i])])
                                         for i in range(levels + 1)])
        self.down = nn.ModuleList([OctreeDownsample(ch[i], ch[i + 1]) for i in range(levels)])
        self.enc_out = nn.Sequential(nn.LayerNorm(ch[-1]), nn.Linear(ch[-1], code_bits))
        self.quantizer = BinaryQuantizer(code_bits, entropy_temperature)
        self.dec_in = nn.Linear(code_bits, ch[-1])
        self.dec_stages = nn.ModuleList([nn.ModuleList([OctreeResBlock(ch[i])
                                                        for _ in range(dec_blocks[i] + int(refine[i]))])
                                         for i in range(levels + 1)])
        for i in range(levels + 1):
            for blk in self.dec_stages[i][dec_blocks[i]:]:
                nn.init.zeros_(blk.conv2.weight)
        # split_heads[j] sits at depth T + j and predicts its children at T + j + 1.
        self.split_heads = nn.ModuleList([nn.Sequential(nn.LayerNorm(ch[levels - j]), nn.GELU(),
                                                        nn.Linear(ch[levels - j], 8)) for j in range(levels)])
        # up[j]: depth T + j -> T + j + 1.
        self.up = nn.ModuleList([OctreeUpsample(ch[levels - j], ch[levels - j - 1]) for j in range(levels)])
        self.sdf_head = nn.Sequential(nn.LayerNorm(ch[0]), nn.GELU(), nn.Linear(ch[0], ch[0]), nn.GELU(),
                                      nn.Linear(ch[0], 1))
        if self.output_depth > fine_depth:
            oc = int(output_channels)
            self.out_up = OctreeUpsample(ch[0], oc)
            self.out_stage = nn.ModuleList([OctreeResBlock(oc) for _ in range(int(output_blocks))])
            self.out_sdf_head = nn.Sequential(nn.LayerNorm(oc), nn.GELU(), nn.Linear(oc, oc), nn.GELU(),
                                              nn.Linear(oc, 1))
        # Meshes decoded by connect_leaves, by token digest, for decode_sample to take
        # instead of decoding the same tokens again (bounded; each taken once).
        self._checked: OrderedDict[bytes, object] = OrderedDict()

    # ------------------------------------------------------------------ encoder

    def encode_bands(self, keys_fine: torch.Tensor, features_NF: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Encoder up to the pre-quantisation latent.

        Args:
            keys_fine: (N_D,) sorted batched band keys at depth D (``key | shape << 3D``).
            features_NF: (N_D, in_features).
        Returns:
            (keys per depth [D, D-1, ..., T] (batched, sorted), z at depth T (N_T, K)).
        """
        cfg = self.config
        keys = [keys_fine]
        x = self.stem(features_NF)
        for i, depth in enumerate(range(cfg.fine_depth, cfg.token_depth - 1, -1)):
            if self.enc_stages[i]:
                neigh = _batch_neighbours(keys[-1], depth)
                for blk in self.enc_stages[i]:
                    x = blk(x, neigh)
            if depth > cfg.token_depth:
                parents = torch.unique_consecutive(keys[-1] >> 3)
                idx, slot = child_to_parent(keys[-1], parents)
                x = self.down[i](x, idx, slot, parents.numel())
                keys.append(parents)
        return keys, self.enc_out(x)

    # ------------------------------------------------------------------ decoder

    def _decode_level(self, x: torch.Tensor, keys: torch.Tensor, depth: int, level: int) -> torch.Tensor:
        blocks = self.dec_stages[self.config.fine_depth - depth]
        if len(blocks):
            neigh = _batch_neighbours(keys, depth)
            for blk in blocks:
                x = blk(x, neigh)
        return x

    def decode_codes(self, keys_token: torch.Tensor, codes_NK: torch.Tensor,
                     target_keys: list[torch.Tensor] | None = None,
                     threshold: float = 0.5) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Decoder from depth-T codes to the SDF at depth D.

        Args:
            keys_token: (N_T,) sorted batched keys at depth T.
            codes_NK: (N_T, K) codes in ±1.
            target_keys: ground-truth batched band keys at depths T+1..D-1 (teacher
                forcing in training); None predicts them (split prob > threshold,
                at least one child per node).
        Returns:
            (split_logits per depth T..D-1 (N_d, 8), node keys per depth T..D-1,
             fine_keys (8 * N_{D-1},) all children at depth D, sdf_pred (8 * N_{D-1},)
             in cell units).
        """
        logits, keys_dec, fine_keys, sdf, _ = self._decode(keys_token, codes_NK, target_keys, threshold)
        return logits, keys_dec, fine_keys, sdf

    def _decode(self, keys_token: torch.Tensor, codes_NK: torch.Tensor, target_keys: list[torch.Tensor] | None,
                threshold: float, out_band: torch.Tensor | None = None):
        """:meth:`decode_codes` plus the output level: its last item is None without
        one, else ``(out_keys (8 * N_band,) at depth D + 1, out_sdf in depth-(D+1) cell
        units)`` for the children of the depth-D band cells ``out_band`` (teacher
        forcing; None: the cells the last split keeps, probability > threshold)."""
        cfg = self.config
        x = self.dec_in(codes_NK)
        keys = keys_token
        logits_all, keys_all = [], []
        for j, depth in enumerate(range(cfg.token_depth, cfg.fine_depth)):
            x = self._decode_level(x, keys, depth, j)
            logits = self.split_heads[j](x)
            logits_all.append(logits)
            keys_all.append(keys)
            if depth + 1 == cfg.fine_depth:
                child = children_keys(keys)
            elif target_keys is not None:
                child = target_keys[j]
            else:
                occ = logits.sigmoid() > threshold
                occ[torch.arange(occ.shape[0]), logits.argmax(1)] = True
                child = ((keys[:, None] << 3) | torch.arange(8))[occ]
            idx, slot = child_to_parent(child, keys)
            x = self.up[j](x, idx, slot)
            keys = child
        x = self._decode_level(x, keys, cfg.fine_depth, len(self.up))
        sdf = self.sdf_head(x).squeeze(-1)
        out = None
        if self.output_depth > cfg.fine_depth:
            if out_band is None:
                out_band = keys[(logits_all[-1].sigmoid() > threshold).reshape(-1)]
            pos = torch.searchsorted(keys, out_band)
            y = self.out_up(x, pos.repeat_interleave(8), torch.arange(8).repeat(out_band.numel()))
            out_keys = children_keys(out_band)
            if len(self.out_stage):
                neigh = _batch_neighbours(out_keys, cfg.fine_depth + 1)
                for blk in self.out_stage:
                    y = blk(y, neigh)
            out = (out_keys, self.out_sdf_head(y).squeeze(-1))
        return logits_all, keys_all, keys, sdf, out

    # ------------------------------------------------------------------ training

    def forward(self, bands: list[ShapeBand], code_flip: float = 0.0,
                generator: torch.Generator | None = None) -> dict:
        """Training losses for a batch of preprocessed shapes.

        Args:
            bands: the batch.
            code_flip: the largest share of code bits flipped before decoding
                (:func:`flip_codes`; the targets stay the true shape), so that the
                decoder survives a generator's wrong bits. 0: off.
            generator: drives the flips.
        Returns:
            dict of scalar tensors: ``loss`` (weighted total), ``sdf`` (L1, cell
            units, near-surface weighted), ``split`` (BCE), ``commit``,
            ``node_entropy``, ``usage_entropy``, ``split_acc``, ``bit_usage``.
        """
        cfg = self.config
        d = cfg.fine_depth
        keys_fine = torch.cat([b.keys | (i << (3 * d)) for i, b in enumerate(bands)])
        feats = torch.cat([b.features for b in bands])
        target_sdf = torch.cat([b.fine_sdf for b in bands]).clamp(-cfg.sdf_clip, cfg.sdf_clip)
        keys_enc, z = self.encode_bands(keys_fine, feats)
        codes, bits, qloss = self.quantizer(z)
        if code_flip > 0:
            codes = flip_codes(codes, keys_enc[-1] >> (3 * cfg.token_depth), len(bands), code_flip, generator)
        # keys_enc is [D, D-1, ..., T]; teacher forcing needs T+1..D-1 in that order.
        teacher = keys_enc[1:-1][::-1]
        logits, keys_dec, fine_keys, sdf, out = self._decode(keys_enc[-1], codes, teacher, 0.5, keys_enc[0])
        split_t = [_child_mask_targets(k, c) for k, c in zip(keys_dec, keys_enc[:-1][::-1])]
        lg, tg = torch.cat(logits), torch.cat(split_t)
        split = F.binary_cross_entropy_with_logits(lg, tg)
        err = (sdf - target_sdf).abs()
        weight = 1.0 + 3.0 * (target_sdf.abs() < 1.0)
        sdf_loss = (err * weight).sum() / weight.sum()
        loss = (sdf_loss + cfg.split_weight * split + cfg.commit_weight * qloss["commit"]
                + cfg.entropy_weight * (qloss["node_entropy"] - cfg.usage_weight * qloss["usage_entropy"]))
        extra = {}
        if out is not None:
            if any(b.out_sdf is None for b in bands):
                raise ValueError(f"this decoder has an output level at depth {self.output_depth}: "
                                 "the bands need out_sdf (sdf_to_band(..., out_depth=...))")
            target_out = torch.cat([b.out_sdf for b in bands]).clamp(-cfg.sdf_clip, cfg.sdf_clip)
            err_out = (out[1] - target_out).abs()
            w_out = 1.0 + 3.0 * (target_out.abs() < 1.0)
            extra["sdf_out"] = (err_out * w_out).sum() / w_out.sum()
            loss = loss + extra["sdf_out"]
        with torch.no_grad():
            split_acc = ((lg > 0).float() == tg).float().mean()
            bit_usage = bits.float().mean(0)
        return {"loss": loss, "sdf": sdf_loss, "split": split, "split_acc": split_acc,
                "bit_balance": (bit_usage - 0.5).abs().max(), **qloss, **extra}

    # ------------------------------------------------------------------ public API

    @property
    def depth(self) -> int:
        return self.config.token_depth

    @property
    def output_depth(self) -> int:
        """Depth of the decoded SDF grid (``fine_depth``, or one more with an output level)."""
        d = self.config.get("output_depth")
        return self.config.fine_depth if d is None else int(d)

    @property
    def payload_vocab_sizes(self) -> list[int]:
        return [2] * self.config.code_bits

    def encoder_modules(self) -> list[nn.Module]:
        """The modules that decide the codes (frozen when only the decoder is tuned)."""
        return [self.stem, self.enc_stages, self.down, self.enc_out]

    def code_hash(self) -> str:
        """Hash of the config and the encoder weights: two tokenizers with the same
        code hash give the same tokens for the same shape (their decoders may differ)."""
        h = hashlib.sha1(self.config_hash().encode())
        for m in self.encoder_modules():
            for t in m.state_dict().values():
                h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return h.hexdigest()[:12]

    def config_hash(self) -> str:
        """Hash of the settings that decide what the tokens mean (decoder-only
        settings, ``refine_blocks``, left out)."""
        blob = json.dumps({k: v for k, v in self.config.items() if not k.startswith("_") and k not in DECODER_ONLY},
                          sort_keys=True, default=list)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def grow_decoder(self, refine_blocks=None, output_depth: int | None = None, output_channels: int | None = None,
                     output_blocks: int | None = None) -> "ShapeVQVAE":
        """A copy of this tokenizer with a larger decoder: ``refine_blocks`` (see the
        class; zero-initialised, so outputs are unchanged until they train) and/or a new
        output level (``output_depth`` = fine_depth + 1, ``output_channels``,
        ``output_blocks``). Same encoder, same codes, same config hash."""
        cfg = {k: v for k, v in self.config.items() if not k.startswith("_")}
        old = tuple(cfg.get("refine_blocks") or (0,) * len(cfg["dec_blocks"]))
        refine = old if refine_blocks is None else tuple(refine_blocks)
        if len(refine) != len(old) or any(int(n) < int(o) for n, o in zip(refine, old)):
            raise ValueError(f"refine_blocks {list(refine)} must list one count per depth, each >= {list(old)}")
        new = {**cfg, "refine_blocks": [int(n) for n in refine]}
        if output_depth is not None:
            if self.output_depth > cfg["fine_depth"]:
                raise ValueError(f"this decoder already has an output level (depth {self.output_depth})")
            new["output_depth"] = int(output_depth)
            for k, v in (("output_channels", output_channels), ("output_blocks", output_blocks)):
                if v is not None:
                    new[k] = int(v)
        elif output_channels is not None or output_blocks is not None:
            raise ValueError("output_channels / output_blocks need output_depth")
        grown = type(self)(**new)
        missing, unexpected = grown.load_state_dict(self.state_dict(), strict=False)
        fresh = ("dec_stages.", "out_up.", "out_stage.", "out_sdf_head.")
        if unexpected or not all(k.startswith(fresh) for k in missing):
            raise ValueError(f"cannot grow this decoder: unexpected {unexpected}, missing {missing}")
        dtype = next(self.parameters()).dtype
        # Cast only when needed: diffusers warns on every ModelMixin.to(dtype).
        return grown if next(grown.parameters()).dtype == dtype else grown.to(dtype)

    @torch.no_grad()
    def bands_to_tokens(self, bands: list[ShapeBand], meta: dict | None = None) -> list[OctreeTokens]:
        """Encode preprocessed shapes (bands at this model's fine depth) in one
        batched encoder pass; one :class:`OctreeTokens` per band, in order."""
        cfg = self.config
        d, t = cfg.fine_depth, cfg.token_depth
        for band in bands:
            if band.depth != d:
                raise ValueError(f"band depth {band.depth} != tokenizer fine depth {d}")
        keys = torch.cat([b.keys | (j << (3 * d)) for j, b in enumerate(bands)])
        keys_enc, z = self.encode_bands(keys, torch.cat([b.features for b in bands]).to(self.dtype))
        _, bits, _ = self.quantizer(z.float())
        shape_id = keys_enc[-1] >> (3 * t)
        local = keys_enc[-1] & ((1 << (3 * t)) - 1)
        full_meta = {"kind": "shape_vqvae", "tokenizer": cfg.name, "config_hash": self.config_hash(),
                     "code_bits": cfg.code_bits, "fine_depth": d, **(meta or {})}
        out = []
        for j in range(len(bands)):
            sel = shape_id == j
            out.append(OctreeTokens.from_octree(keys_to_octree(local[sel], t), bits[sel], PAYLOAD_KIND,
                                                dict(full_meta)))
        return out

    def band_to_tokens(self, band: ShapeBand, meta: dict | None = None) -> OctreeTokens:
        """Encode one preprocessed shape (band at this model's fine depth)."""
        return self.bands_to_tokens([band], meta)[0]

    @torch.no_grad()
    def encode(self, shape, meta: dict | None = None, margin: float = 0.05, seed: int = 0) -> OctreeTokens:
        """Tokenize a shape.

        Args:
            shape: a ``trimesh.Trimesh`` (normalised into [-1 + margin, 1 - margin]^3
                first; need not be watertight), or an SDF callable (N, 3) -> (N,)
                in the [-1, 1] frame.
            meta: extra metadata for the token file.
            seed: surface-sampling seed for meshes.
        Returns:
            OctreeTokens with the depth-T structure and a (N_T, K) 0/1 payload.
        """
        band = shape_to_band(shape, self.config.fine_depth, margin=margin, seed=seed)
        return self.band_to_tokens(band, meta)

    @torch.no_grad()
    def tokens_to_grid(self, tokens: OctreeTokens, threshold: float = 0.5, clamp_off_band: bool = True,
                       fill: str = "structure") -> np.ndarray:
        """Decode tokens to the (R, R, R) SDF grid at the fine depth, in cell units.

        Cells the decoder reaches get its prediction; in the last split the cells
        predicted to lie off the band are pushed to at least one cell from the
        surface (the band's definition). All other cells are ±``sdf_clip``: with
        ``fill="structure"`` (default) the cells of empty depth-T nodes are inside
        when the token octree encloses them, and unreached cells of occupied nodes
        take the sign of the nearest decoded cell (15 validation shapes: IoU 0.915
        against 0.893 for "nearest"; generated codes can no longer flip whole
        regions); with ``"nearest"`` every unreached cell takes the sign of the
        nearest decoded cell; with ``"flood"`` the cells enclosed by the decoded
        cells are inside, which one missed band cell breaks (a sphere decoded by
        an early checkpoint: IoU 0.18 with "flood", 0.97 with "nearest").
        """
        from scipy import ndimage

        from ..octree import key_to_xyz

        cfg = self.config
        if tokens.payload_kind != PAYLOAD_KIND:
            raise ValueError(f"expected a '{PAYLOAD_KIND}' payload, got '{tokens.payload_kind}'")
        if tokens.depth != cfg.token_depth or tokens.payload.shape[1] != cfg.code_bits:
            raise ValueError(f"tokens have depth {tokens.depth} and {tokens.payload.shape[1]} bits; this tokenizer "
                             f"uses depth {cfg.token_depth} and {cfg.code_bits} bits")
        if tokens.payload.numel() and not ((tokens.payload == 0) | (tokens.payload == 1)).all():
            raise ValueError("shape_bits payload must be 0/1")
        keys_t = tokens.octree().keys[cfg.token_depth]
        codes = tokens.payload.to(self.dtype) * 2 - 1
        logits, keys_dec, fine_keys, sdf, out = self._decode(keys_t, codes, None, threshold)
        sdf = sdf.float()
        # Children of the last split level predicted off-band: at least one cell away.
        if clamp_off_band:
            off_band = (logits[-1].sigmoid() <= threshold).reshape(-1)
            sdf = torch.where(off_band, torch.sign(sdf) * sdf.abs().clamp(min=1.0), sdf)
        res = 1 << cfg.fine_depth
        xyz = key_to_xyz(fine_keys).numpy()
        reached = np.zeros((res,) * 3, dtype=bool)
        reached[xyz[:, 0], xyz[:, 1], xyz[:, 2]] = True
        grid = np.zeros((res,) * 3, dtype=np.float32)
        grid[xyz[:, 0], xyz[:, 1], xyz[:, 2]] = sdf.clamp(-cfg.sdf_clip, cfg.sdf_clip).numpy()
        if fill == "flood":
            inside = ndimage.binary_fill_holes(reached) & ~reached
        elif fill == "structure":
            # Cells of empty depth-T nodes: inside when the token octree encloses them
            # (flood fill of the depth-T grid from its border, 6-connected: a surface
            # cannot be crossed without passing through an occupied cell), so code
            # errors cannot fill whole regions; unreached cells of occupied depth-T
            # nodes take the sign of the nearest decoded cell, as with "nearest".
            rt = 1 << cfg.token_depth
            occ_t = np.zeros((rt,) * 3, dtype=bool)
            xt = key_to_xyz(keys_t).numpy()
            occ_t[xt[:, 0], xt[:, 1], xt[:, 2]] = True
            free = np.pad(~occ_t, 1, constant_values=True)
            labels, _ = ndimage.label(free)
            enclosed_t = (labels[1:-1, 1:-1, 1:-1] != labels[0, 0, 0]) & ~occ_t
            f = 1 << (cfg.fine_depth - cfg.token_depth)
            up = lambda a: a.repeat(f, 0).repeat(f, 1).repeat(f, 2)
            _, (ix, iy, iz) = ndimage.distance_transform_edt(~reached, return_indices=True)
            near_inside = grid[ix, iy, iz] < 0
            inside = np.where(up(occ_t), near_inside, up(enclosed_t)) & ~reached
        elif fill == "nearest":
            # Sign of the nearest decoded cell: unlike a flood fill, one missing band
            # cell cannot flip a whole interior to outside.
            _, (ix, iy, iz) = ndimage.distance_transform_edt(~reached, return_indices=True)
            inside = (grid[ix, iy, iz] < 0) & ~reached
        else:
            raise ValueError(f"fill must be 'structure', 'flood' or 'nearest', got {fill!r}")
        grid[~reached] = cfg.sdf_clip
        grid[inside] = -cfg.sdf_clip
        if out is None:
            return grid
        # Output level: the depth-D field interpolated to the depth-(D+1) centres (in
        # their cell units), the decoded children of the band cells written over it.
        fine = upsample_centre_grid(grid) * 2.0
        oxyz = key_to_xyz(out[0]).numpy()
        fine[oxyz[:, 0], oxyz[:, 1], oxyz[:, 2]] = out[1].float().clamp(-cfg.sdf_clip, cfg.sdf_clip).numpy()
        return fine

    @torch.no_grad()
    def decode(self, tokens: OctreeTokens, threshold: float = 0.5, clamp_off_band: bool = True,
               fill: str = "structure", min_part: float = 0.02):
        """Tokens to a watertight ``trimesh.Trimesh`` in [-1, 1]^3: marching cubes on
        the decoded SDF grid (see :meth:`tokens_to_grid` for the options), then
        connected parts with less than ``min_part`` of the largest part's area are
        dropped (stray sign errors far from the surface make such specks)."""
        return self.grid_to_mesh(self.tokens_to_grid(tokens, threshold, clamp_off_band, fill), min_part)

    def connect_leaves(self, tokens: OctreeTokens) -> tuple[float, torch.Tensor]:
        """How whole ``decode(tokens)`` is, and where its parts come closest: the
        largest face-connected part's share of the surface area (1.0: one part), and
        the depth-T leaves (indices in z-order) within :data:`JUNCTION_REACH` leaves of
        both the largest part and another part, whose codes drawn again could join the two
        (``SamplerConfig.connect``)."""
        from scipy import ndimage

        from ..octree import key_to_xyz
        from ..octree.mesh import mesh_parts

        none = torch.zeros(0, dtype=torch.long)
        mesh = self.decode(tokens)
        with _CHECKED_LOCK:
            self._checked[_token_digest(tokens)] = mesh
            while len(self._checked) > CHECKED_MESHES:
                self._checked.popitem(last=False)
        if len(mesh.faces) == 0 or mesh.area <= 0:
            return 1.0, none
        labels, area = mesh_parts(mesh)
        if len(area) == 1:
            return 1.0, none
        share = float(area.max() / area.sum())
        rt = 1 << self.config.token_depth
        cell = np.clip(np.floor((mesh.triangles_center + 1) / 2 * rt).astype(np.int64), 0, rt - 1)
        near = ndimage.generate_binary_structure(3, 3)
        def around(part: int) -> np.ndarray:
            occ = np.zeros((rt,) * 3, dtype=bool)
            occ[tuple(cell[labels == part].T)] = True
            return ndimage.binary_dilation(occ, near, iterations=JUNCTION_REACH)
        main = around(int(area.argmax()))
        junction = np.zeros_like(main)
        for part in np.flatnonzero(np.arange(len(area)) != area.argmax()):
            junction |= main & around(int(part))
        xyz = key_to_xyz(tokens.octree().keys[self.config.token_depth]).numpy()
        return share, torch.from_numpy(np.flatnonzero(junction[tuple(xyz.T)]))

    def decode_sample(self, tokens: OctreeTokens, timings: dict) -> ShapeResult:
        """:meth:`decode` with its two stages timed: a :class:`ShapeResult` whose
        timings are ``timings`` plus ``decode``, ``marching_cubes`` and ``total``.
        Tokens that :meth:`connect_leaves` has just decoded (the sampler's ``connect``)
        are not decoded again: their mesh is taken as it was, with ``decode`` and
        ``marching_cubes`` near zero (that work is timed in the leaf level's sampling)."""
        t0 = time.perf_counter()
        with _CHECKED_LOCK:
            mesh = self._checked.pop(_token_digest(tokens), None)
        if mesh is not None:  # decoded in the sampler by connect_leaves: that time is in its level's
            t1 = t2 = time.perf_counter()
        else:
            grid = self.tokens_to_grid(tokens)
            t1 = time.perf_counter()
            mesh = self.grid_to_mesh(grid)
            t2 = time.perf_counter()
        timings = {**timings, "decode": t1 - t0, "marching_cubes": t2 - t1}
        timings["total"] = sum(timings.values())
        return ShapeResult(mesh, tokens, timings)

    def grid_to_mesh(self, grid: np.ndarray, min_part: float = 0.02):
        """Marching cubes of a decoded fine-depth SDF grid (:meth:`tokens_to_grid`),
        minus the connected parts below ``min_part`` of the largest one's area."""
        return drop_small_parts(grid_to_mesh(grid, sampling="centre"), min_part)


def upsample_centre_grid(grid: np.ndarray) -> np.ndarray:
    """Trilinear 2x upsampling of a cell-centre grid (R^3 -> (2R)^3): a child centre
    lies a quarter cell from its parent's centre on each axis, so along each axis it
    takes 3/4 of its parent and 1/4 of the neighbour on its side (edges clamped)."""
    out = np.asarray(grid, dtype=np.float32)
    for axis in range(3):
        prev = np.concatenate([np.take(out, [0], axis), np.take(out, np.arange(out.shape[axis] - 1), axis)], axis)
        nxt = np.concatenate([np.take(out, np.arange(1, out.shape[axis]), axis), np.take(out, [-1], axis)], axis)
        lo, hi = 0.75 * out + 0.25 * prev, 0.75 * out + 0.25 * nxt
        out = np.stack([lo, hi], axis=axis + 1).reshape(*out.shape[:axis], 2 * out.shape[axis], *out.shape[axis + 1:])
    return out


def shape_to_band(shape, depth: int, margin: float = 0.05, seed: int = 0) -> ShapeBand:
    """Surface band of a mesh (normalised, sign by flood fill) or of an SDF callable."""
    import trimesh

    if isinstance(shape, trimesh.Trimesh):
        from ..octree.mesh import normalize_mesh
        from .shape_sdf import mesh_to_sdf_fn

        mesh = normalize_mesh(shape, margin)
        return sdf_to_band(mesh_to_sdf_fn(mesh, seed=seed), depth)
    if callable(shape):
        return sdf_to_band(shape, depth)
    raise TypeError(f"expected a trimesh.Trimesh or an SDF callable, got {type(shape).__name__}")


def resolve_tokenizer_dir(name_or_path: str) -> "Path":
    """Folder of a saved tokenizer: an existing folder path, or a name looked up in
    ``./tokenizers/`` and in the repository's ``tokenizers/``.

    Raises:
        InputError: no such tokenizer folder (with a ``config.json``).
    """
    from pathlib import Path

    from ..errors import InputError

    candidates = [Path(name_or_path), Path("tokenizers") / name_or_path,
                  Path(__file__).resolve().parents[2] / "tokenizers" / name_or_path]
    for c in candidates:
        if (c / "config.json").is_file():
            return c
    looked = ", ".join(dict.fromkeys(map(str, candidates)))
    raise InputError(f"{name_or_path}: no tokenizer folder with a config.json found (looked in {looked})")


def load_tokenizer(name_or_path: str) -> ShapeVQVAE:
    """Load a saved shape tokenizer in eval mode, weights in float32 (see
    :func:`resolve_tokenizer_dir`)."""
    return ShapeVQVAE.load(resolve_tokenizer_dir(name_or_path))


def drop_small_parts(mesh, min_part: float):
    """``mesh`` without the connected parts whose area is below ``min_part`` times
    the largest part's area (a no-op for ``min_part <= 0`` or one part)."""
    import trimesh

    from ..octree.mesh import mesh_parts

    if min_part <= 0 or len(mesh.faces) == 0:
        return mesh
    if len(mesh_parts(mesh)[1]) <= 1:  # the common case, without split's copy of the whole mesh
        return mesh
    parts = mesh.split(only_watertight=False)
    if len(parts) <= 1:
        return mesh
    areas = np.array([p.area for p in parts])
    keep = [p for p, a in zip(parts, areas) if a >= min_part * areas.max()]
    return trimesh.util.concatenate(keep)
