"""The OctGen transformer: one model for every modality (ARCHITECTURE.md section 3).

Sequence layout: ``n_prefix`` condition tokens, then one token per octree node,
levels in order (depth 0..D-1: structure tokens, depth D: payload), z-order inside
a level. Batches pad each sequence (or each level, in the sampler) and mark the
padding with level -1.

- Input per node: level embedding + token embedding, or the learned [MASK]
  embedding when the token is being predicted. Payload fields are embedded and
  summed.
- Position: 3D rotary embedding of the node's cell centre, in units of finest
  (depth D) cells, in one frame shared by all depths; with
  ``payload_offset_fields`` a revealed leaf is rotated at its exact position
  (centre plus its decoded sub-cell offset). Each head splits its
  rotary pairs evenly over x, y and z; the prefix is not rotated.
- Attention: a key is visible to a query when its level is <= the query's level
  (the prefix has level -1 and padding is never visible). So a node sees the
  prefix, all coarser levels and its own level (bidirectionally), nothing finer.
  Finished levels therefore never change their keys and values, which is what the
  sampler's cache relies on.
- Probes (training only): a node flagged ``probe`` is a partly masked copy of a
  level appended after the clean levels. A probe of level d sees the prefix, the
  clean levels < d and the probes of level d, and no clean token sees a probe: the
  exact view the sampler gives level d (finished coarser levels, the level itself),
  so one pass trains every level (see :mod:`octgen.train.objective`).
- Heads: structure (255-way, class ``t - 1`` for child mask ``t``) and the payload
  head: one linear layer per field (``"factorised"``) or a small autoregressive head
  (``"autoregressive"``: field f reads the hidden state plus embeddings of fields
  0..f-1, through a per-field MLP), so a leaf's fields are sampled jointly.
- Pair potential: with ``pair_potential_fields`` the offset fields of a leaf also
  get a learned potential of its distances to the revealed leaves of its level
  (:mod:`octgen.model.pair`); the caller passes those leaves as
  :class:`~octgen.model.pair.LeafNeighbours` (:meth:`OctGenTransformer.leaf_neighbours`).
  With ``structure_potential_levels`` the child masks of the finest structure
  levels get the same kind of term over the distances between candidate children
  and the children already drawn in the level
  (:meth:`OctGenTransformer.structure_neighbours`).
- Size: with ``num_sizes > 0`` the prefix holds one more token, the embedding of
  the leaf count (clipped), so generation knows the size it must reach; with
  ``num_counts > 0`` one more, the count of leaves of one kind (hydrogens).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from .config import OctGenConfig
from .pair import (LeafNeighbours, PairPotential, StructureNeighbours, StructurePotential, leaf_neighbours,
                   offset_fractions, structure_neighbours)

PREFIX_LEVEL = -1
PAD_LEVEL = -2
NUM_STRUCTURE_CLASSES = 255


@dataclass
class NodeInputs:
    """One padded batch of octree nodes.

    Attributes:
        level_BT: (B, T) int64 depth of each node (0..D), ``PAD_LEVEL`` for padding.
        token_BT: (B, T) int64 structure token 1..255 (levels < D; anything elsewhere).
        payload_BTP: (B, T, P) int64 payload fields (level D; anything elsewhere).
        masked_BT: (B, T) bool, True where the token is hidden behind [MASK].
        centre_BT3: (B, T, 3) float cell centres in [-1, 1]^3.
        probe_BT: (B, T) bool or None; True on the probe copies of training
            batches (see the module docstring). None: no probes.
        leaves_B: (B,) int64 or None; the rows' leaf counts (the size condition)
            where a training batch altered the trees (coarse-node deletion); None:
            the sequences' own counts.
        weight_BT: (B, T) float or None; the loss weight of each target token
            (see :func:`octgen.train.objective.level_loss_weights`). None: every
            target alike.
    """

    level_BT: torch.Tensor
    token_BT: torch.Tensor
    payload_BTP: torch.Tensor
    masked_BT: torch.Tensor
    centre_BT3: torch.Tensor
    probe_BT: torch.Tensor | None = None
    leaves_B: torch.Tensor | None = None
    weight_BT: torch.Tensor | None = None

    @property
    def valid_BT(self) -> torch.Tensor:
        return self.level_BT >= 0

    def to(self, device) -> "NodeInputs":
        return NodeInputs(*(None if t is None else t.to(device)
                            for t in (self.level_BT, self.token_BT, self.payload_BTP, self.masked_BT,
                                      self.centre_BT3, self.probe_BT, self.leaves_B, self.weight_BT)))


@dataclass
class Condition:
    """What a sequence is conditioned on (all optional).

    Attributes:
        class_labels: (B,) int64 labels in 0..num_classes-1.
        embeds: (B, P', cond_dim) embeddings from a frozen condition encoder.
        drop_B: (B,) bool, True for rows that get the "no condition" tokens
            (condition dropout in training, the unconditional half of CFG).
        embeds_mask: (B, P') bool, True at real embedding positions; the others
            (padding of short prompts, say) get the learned "no condition" token.
        size_B: (B,) int64 leaf counts (atoms) for models with ``num_sizes > 0``;
            never dropped (guidance acts on the other conditions at a fixed size).
        count_B: (B,) int64 counts of leaves whose first payload field is the
            config's ``count_value`` (hydrogens) for models with ``num_counts > 0``;
            never dropped either.
    """

    class_labels: torch.Tensor | None = None
    embeds: torch.Tensor | None = None
    drop_B: torch.Tensor | None = None
    embeds_mask: torch.Tensor | None = None
    size_B: torch.Tensor | None = None
    count_B: torch.Tensor | None = None

    def repeat2(self, device=None) -> "Condition":
        """Rows twice over, the second copy dropped: the batch of one CFG forward."""
        twice = [None if t is None else torch.cat([t, t])
                 for t in (self.class_labels, self.embeds, self.embeds_mask, self.size_B, self.count_B)]
        B = self.batch_size()
        drop = torch.arange(2 * B, device=device) >= B
        return Condition(twice[0], twice[1], drop, twice[2], twice[3], twice[4])

    def batch_size(self) -> int | None:
        for t in (self.class_labels, self.embeds, self.drop_B, self.size_B, self.count_B):
            if t is not None:
                return int(t.shape[0])
        return None


class KVCache:
    """Keys and values of finished tokens (prefix and coarser levels), per layer.

    The sampler also opens a *slot* for the level being decoded
    (:meth:`open_slot`): every forward writes the level's current keys / values
    into the slot in place instead of concatenating the whole cache again, and
    :meth:`close_slot` keeps the last ones (those of the finished tokens).

    Attributes:
        k, v: per layer (B, H, Tc, hs) tensors (keys already rotated).
        level_BT: (B, Tc) key levels: ``PREFIX_LEVEL``, 0..D, or ``PAD_LEVEL``.
        slot_start: first position of the open slot, or None.
    """

    def __init__(self, kv: list[tuple[torch.Tensor, torch.Tensor]], level_BT: torch.Tensor):
        self.k = [k for k, _ in kv]
        self.v = [v for _, v in kv]
        self.level_BT = level_BT
        self.slot_start: int | None = None

    def __len__(self) -> int:
        return int(self.level_BT.shape[1])

    def append(self, kv: list[tuple[torch.Tensor, torch.Tensor]], level_BT: torch.Tensor) -> None:
        """Add the keys / values of ``level_BT.shape[1]`` new tokens per row."""
        self.k = [torch.cat([a, k], dim=2) for a, (k, _) in zip(self.k, kv)]
        self.v = [torch.cat([a, v], dim=2) for a, (_, v) in zip(self.v, kv)]
        self.level_BT = torch.cat([self.level_BT, level_BT], dim=1)

    def open_slot(self, level_BT: torch.Tensor) -> None:
        """Reserve room for the tokens of one level (B, L), filled by each forward."""
        if self.slot_start is not None:
            raise RuntimeError("close the open slot first")
        B, L = level_BT.shape
        self.slot_start = len(self)
        self.k = [torch.cat([a, a.new_zeros(B, a.shape[1], L, a.shape[3])], dim=2) for a in self.k]
        self.v = [torch.cat([a, a.new_zeros(B, a.shape[1], L, a.shape[3])], dim=2) for a in self.v]
        self.level_BT = torch.cat([self.level_BT, level_BT], dim=1)

    def close_slot(self) -> None:
        """Keep the slot's last keys / values as finished tokens."""
        self.slot_start = None


def _rope_frequencies(head_dim: int, theta: float, max_freq: float = 1.0) -> torch.Tensor:
    """(n,) angular frequencies per finest cell for ``n = head_dim // 6`` pairs per axis:
    ``max_freq * (max_freq * theta) ** (-i / n)``, from ``max_freq`` down towards ``1 / theta``."""
    n = head_dim // 6
    return max_freq * (max_freq * theta) ** (-torch.arange(n, dtype=torch.float64) / max(n, 1))


def rope_angles(centre_BT3: torch.Tensor, depth: int, freqs_n: torch.Tensor) -> torch.Tensor:
    """Rotation angles (B, T, 3n) of cell centres: axis-major, position in finest cells."""
    pos_BT3 = (centre_BT3.double() + 1.0) * (0.5 * (1 << depth))
    return (pos_BT3[..., None] * freqs_n.to(pos_BT3.device)).flatten(-2)  # (B, T, 3, n) -> (B, T, 3n)


def apply_rope(x_BHTD: torch.Tensor, cos_BT1R: torch.Tensor, sin_BT1R: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``2R`` channels of each head in pairs (even, odd); the rest pass.

    Args:
        x_BHTD: (B, H, T, hs) queries or keys.
        cos_BT1R, sin_BT1R: (B, 1, T, R) cosines / sines of the ``R`` rotation angles.
    """
    r = cos_BT1R.shape[-1]
    rot, rest = x_BHTD[..., :2 * r], x_BHTD[..., 2 * r:]
    x1, x2 = rot[..., 0::2], rot[..., 1::2]
    out = torch.stack([x1 * cos_BT1R - x2 * sin_BT1R, x1 * sin_BT1R + x2 * cos_BT1R], dim=-1).flatten(-2)
    return torch.cat([out, rest], dim=-1)


def rope_rotation(angles_BTR: torch.Tensor, head_dim: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, T, hs/2) complex rotations of the channel pairs of a head: the ``R``
    rotary angles, then angle 0 (identity) for the pairs beyond them."""
    pad = head_dim // 2 - angles_BTR.shape[-1]
    ang = F.pad(angles_BTR, (0, pad)).to(torch.float64 if dtype == torch.float64 else torch.float32)
    return torch.polar(torch.ones_like(ang), ang)[:, None]


def apply_rope_complex(x_BHTD: torch.Tensor, rot_B1TP: torch.Tensor) -> torch.Tensor:
    """Same as :func:`apply_rope`, as one complex product per channel pair (faster)."""
    xc = torch.view_as_complex(x_BHTD.to(rot_B1TP.real.dtype).reshape(*x_BHTD.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(xc * rot_B1TP).flatten(-2).to(x_BHTD.dtype)


class _Block(nn.Module):
    """Pre-norm transformer block with rotary self-attention."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.dropout = dropout

    def forward(self, x_BTC, rot, attn_mask_B1TK, past: "KVCache | None" = None, layer: int = 0):
        B, T, C = x_BTC.shape
        q, k, v = self.qkv(self.norm1(x_BTC)).view(B, T, 3, self.n_heads, C // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rope_complex(q, rot), apply_rope_complex(k, rot)  # (B, H, T, hs)
        new_kv = (k, v)
        if past is not None and past.slot_start is not None:
            s0 = past.slot_start
            past.k[layer][:, :, s0:s0 + T] = k
            past.v[layer][:, :, s0:s0 + T] = v
            k, v = past.k[layer], past.v[layer]
        elif past is not None:
            k = torch.cat([past.k[layer], k], dim=2)
            v = torch.cat([past.v[layer], v], dim=2)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask_B1TK, dropout_p=drop)
        y = y.transpose(1, 2).reshape(B, T, C)
        x_BTC = x_BTC + F.dropout(self.proj(y), drop, self.training)
        x_BTC = x_BTC + F.dropout(self.mlp(self.norm2(x_BTC)), drop, self.training)
        return x_BTC, new_kv


class OctGenTransformer(ModelMixin, ConfigMixin):
    """Masked-token transformer over octree levels; see the module docstring.

    Build it from an :class:`OctGenConfig` with :meth:`from_octgen_config`;
    ``save_pretrained`` / ``from_pretrained`` come from diffusers.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, depth: int = 6, payload_vocab_sizes: tuple = (), dim: int = 256, n_layers: int = 6,
                 n_heads: int = 8, mlp_ratio: float = 4.0, rope_theta: float = 100.0, num_classes: int = 0,
                 cond_dim: int = 0, n_prefix: int = 1, dropout: float = 0.0, payload_head: str = "factorised",
                 num_sizes: int = 0, num_counts: int = 0, count_value: int = 0, payload_offset_fields: tuple = (),
                 rope_max_freq: float = 1.0,
                 pair_potential_fields: tuple = (), pair_grid: tuple = (3.0, 13.0, 101),
                 structure_potential_levels: int = 0, structure_grid: tuple = (0.0, 16.0, 65), version: int = 1):
        super().__init__()
        cfg = OctGenConfig(depth=depth, payload_vocab_sizes=tuple(payload_vocab_sizes), dim=dim,
                           n_layers=n_layers, n_heads=n_heads, mlp_ratio=mlp_ratio, rope_theta=rope_theta,
                           num_classes=num_classes, cond_dim=cond_dim, n_prefix=n_prefix, dropout=dropout,
                           payload_head=payload_head, num_sizes=num_sizes, num_counts=num_counts,
                           count_value=count_value,
                           payload_offset_fields=tuple(payload_offset_fields), rope_max_freq=rope_max_freq,
                           pair_potential_fields=tuple(pair_potential_fields), pair_grid=tuple(pair_grid),
                           structure_potential_levels=structure_potential_levels,
                           structure_grid=tuple(structure_grid), version=version)
        self.cfg = cfg
        self.level_embed = nn.Embedding(depth + 1, dim)
        self.structure_embed = nn.Embedding(NUM_STRUCTURE_CLASSES + 1, dim)  # index = child mask 1..255
        self.payload_embeds = nn.ModuleList(nn.Embedding(v, dim) for v in cfg.payload_vocab_sizes)
        self.mask_embed = nn.Parameter(torch.zeros(dim))
        self.prefix = nn.Parameter(torch.zeros(n_prefix, dim))
        self.class_embed = nn.Embedding(num_classes + 1, dim) if num_classes else None
        self.cond_proj = nn.Linear(cond_dim, dim) if cond_dim else None
        self.null_cond = nn.Parameter(torch.zeros(dim)) if cond_dim else None
        self.blocks = nn.ModuleList(_Block(dim, n_heads, mlp_ratio, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(dim)
        self.structure_head = nn.Linear(dim, NUM_STRUCTURE_CLASSES)
        self.size_embed = nn.Embedding(num_sizes, dim) if num_sizes else None
        self.count_embed = nn.Embedding(num_counts, dim) if num_counts else None
        if cfg.payload_head == "autoregressive":
            # Field f: MLP(h + sum_{j<f} E_j[v_j]); E_j embeds the value of field j.
            self.payload_prev_embeds = nn.ModuleList(nn.Embedding(v, dim) for v in cfg.payload_vocab_sizes[:-1])
            self.payload_heads = nn.ModuleList(
                nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, v))
                for v in cfg.payload_vocab_sizes)
        else:
            self.payload_prev_embeds = None
            self.payload_heads = nn.ModuleList(nn.Linear(dim, v) for v in cfg.payload_vocab_sizes)
        self.pair_potential = (PairPotential(cfg.payload_vocab_sizes[0], cfg.pair_potential_fields,
                                             cfg.payload_vocab_sizes, cfg.pair_grid)
                               if cfg.pair_potential_fields else None)
        self.structure_potential = (StructurePotential(depth, cfg.structure_potential_levels, cfg.structure_grid)
                                    if cfg.structure_potential_levels else None)
        self.register_buffer("rope_freqs", _rope_frequencies(dim // n_heads, rope_theta, rope_max_freq),
                             persistent=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    @classmethod
    def from_octgen_config(cls, config: OctGenConfig) -> "OctGenTransformer":
        return cls(**config.to_dict())

    @property
    def octgen_config(self) -> OctGenConfig:
        return OctGenConfig.from_dict(dict(self.config))

    @property
    def depth(self) -> int:
        return self.cfg.depth

    # ----------------------------------------------------------------- inputs
    def embed_nodes(self, nodes: NodeInputs) -> torch.Tensor:
        """(B, T, C) input embeddings of the nodes (padding rows are zero-level junk)."""
        level = nodes.level_BT.clamp(min=0)
        is_leaf = (level == self.depth)[..., None]
        x = self.structure_embed(nodes.token_BT.clamp(0, NUM_STRUCTURE_CLASSES) * (~is_leaf[..., 0]))
        if self.payload_embeds:
            pay = sum(e(nodes.payload_BTP[..., f].clamp(0, e.num_embeddings - 1) * is_leaf[..., 0])
                      for f, e in enumerate(self.payload_embeds))
            x = torch.where(is_leaf, pay, x)
        x = torch.where(nodes.masked_BT[..., None], self.mask_embed.to(x.dtype).expand_as(x), x)
        return x + self.level_embed(level)

    def rope_centres(self, nodes: NodeInputs) -> torch.Tensor:
        """(B, T, 3) float positions the rotary embedding uses: cell centres, and with
        ``payload_offset_fields`` the exact position of every revealed leaf (its
        centre moved by the bin centre of its offsets, in a finest cell of edge 2 / 2^D)."""
        centre = nodes.centre_BT3.float()
        fields = self.cfg.payload_offset_fields
        if not fields:
            return centre
        frac = offset_fractions(nodes.payload_BTP, fields, self.cfg.payload_vocab_sizes)  # (B, T, 3) in cells
        exact = (nodes.level_BT == self.depth) & ~nodes.masked_BT
        return torch.where(exact[..., None], centre + frac * (2.0 / (1 << self.depth)), centre)

    def embed_prefix(self, batch_size: int, cond: "Condition | None" = None) -> torch.Tensor:
        """(B, P, C) condition prefix: the learned prefix, then the class token,
        then the projected external embeddings (whichever the config enables).
        Rows with ``cond.drop_B`` get the learned "no condition" tokens instead."""
        cond = cond or Condition()
        prefix = self.prefix.unsqueeze(0).expand(batch_size, -1, -1)
        parts = [prefix]
        drop = cond.drop_B if cond.drop_B is not None else torch.zeros(batch_size, dtype=torch.bool,
                                                                        device=prefix.device)
        if self.class_embed is not None:
            labels = cond.class_labels
            if labels is None:
                labels = torch.full((batch_size,), self.cfg.num_classes, device=prefix.device)
            labels = torch.where(drop, self.cfg.num_classes, labels)
            parts.append(self.class_embed(labels)[:, None])
        if self.cond_proj is not None:
            if cond.embeds is None:
                raise ValueError("this model is conditioned on embeddings: pass cond.embeds")
            e = self.cond_proj(cond.embeds)  # (B, P', C)
            off = drop[:, None].expand(e.shape[:2])
            if cond.embeds_mask is not None:
                off = off | ~cond.embeds_mask.to(off.device)
            parts.append(torch.where(off[..., None], self.null_cond.to(e.dtype).expand_as(e), e))
        if self.size_embed is not None:
            if cond.size_B is None:
                raise ValueError("this model is conditioned on its size: pass cond.size_B (leaf counts)")
            size = cond.size_B.to(prefix.device).clamp(0, self.cfg.num_sizes - 1)
            parts.append(self.size_embed(size)[:, None])
        if self.count_embed is not None:
            if cond.count_B is None:
                raise ValueError("this model is conditioned on a leaf count: pass cond.count_B")
            count = cond.count_B.to(prefix.device).clamp(0, self.cfg.num_counts - 1)
            parts.append(self.count_embed(count)[:, None])
        return torch.cat(parts, dim=1)

    # ---------------------------------------------------------------- forward
    @staticmethod
    def attention_mask(q_level_BT, key_level_BK, q_probe_BT=None, k_probe_BK=None) -> torch.Tensor:
        """(B, 1, T, K) bool visibility (see the module docstring).

        Levels are ``PREFIX_LEVEL``, 0..D or ``PAD_LEVEL``; padding queries see the prefix only.
        """
        q_level = torch.where(q_level_BT == PAD_LEVEL, PREFIX_LEVEL, q_level_BT)[:, :, None]
        k_level = key_level_BK[:, None, :]
        real_key = k_level != PAD_LEVEL
        if q_probe_BT is None and k_probe_BK is None:
            return ((k_level <= q_level) & real_key)[:, None]
        qp = q_probe_BT[:, :, None] if q_probe_BT is not None else torch.zeros_like(q_level, dtype=torch.bool)
        kp = k_probe_BK[:, None, :] if k_probe_BK is not None else torch.zeros_like(k_level, dtype=torch.bool)
        clean_key = ~kp & torch.where(qp, k_level < q_level, k_level <= q_level)
        probe_key = kp & qp & (k_level == q_level)
        return ((clean_key | probe_key) & real_key)[:, None]

    def _run(self, x_BTC, level_BT, centre_BT3, past: KVCache | None, probe_BT=None):
        rope = rope_angles(centre_BT3, self.depth, self.rope_freqs)  # (B, T, R)
        rope = torch.where((level_BT == PREFIX_LEVEL)[..., None], torch.zeros_like(rope), rope)
        rot = rope_rotation(rope, self.cfg.dim // self.cfg.n_heads, x_BTC.dtype)
        if past is None:
            key_level = level_BT
        elif past.slot_start is not None:
            key_level = past.level_BT  # the slot already holds this level's entries
        else:
            key_level = torch.cat([past.level_BT, level_BT], dim=1)
        if probe_BT is not None and past is not None:
            raise ValueError("probes are for training batches; the cache holds clean levels only")
        attn_mask = self.attention_mask(level_BT, key_level, probe_BT, probe_BT)  # (B, 1, T, Tk)
        new_kv = []
        for i, block in enumerate(self.blocks):
            x_BTC, kv = block(x_BTC, rot, attn_mask, past, i)
            new_kv.append(kv)
        return self.norm(x_BTC), new_kv

    def start_cache(self, batch_size: int, cond: "Condition | None" = None) -> KVCache:
        """A cache holding the condition prefix only (it attends to itself)."""
        x = self.embed_prefix(batch_size, cond)
        level = torch.full(x.shape[:2], PREFIX_LEVEL, dtype=torch.long, device=x.device)
        _, kv = self._run(x, level, torch.zeros(*x.shape[:2], 3, device=x.device), None)
        return KVCache(kv, level)

    def forward(self, nodes: NodeInputs, cond: "Condition | None" = None, past: KVCache | None = None,
                return_kv: bool = False):
        """Hidden states of the nodes.

        Args:
            nodes: (B, T) padded nodes, levels in order.
            cond: the condition (see :meth:`embed_prefix`); ignored when ``past``
                is given (the prefix is in the cache).
            past: cached keys / values of the prefix and of finished levels.
            return_kv: also return per-layer (k, v) of ``nodes`` for the cache.
        Returns:
            h_BTC: (B, T, C) final hidden states of the nodes, and with
            ``return_kv`` a list of per-layer (k, v), each (B, H, T, hs).
        """
        x = self.embed_nodes(nodes)
        level, centre = nodes.level_BT, self.rope_centres(nodes)
        level = torch.where(level >= 0, level, torch.full_like(level, PAD_LEVEL))
        n_prefix = 0
        probe = nodes.probe_BT
        if past is None:
            prefix = self.embed_prefix(x.shape[0], cond).to(x.dtype)
            n_prefix = prefix.shape[1]
            x = torch.cat([prefix, x], dim=1)
            level = torch.cat([torch.full(prefix.shape[:2], PREFIX_LEVEL, dtype=level.dtype, device=level.device),
                               level], dim=1)
            centre = torch.cat([centre.new_zeros(*prefix.shape[:2], 3), centre], dim=1)
            if probe is not None:
                probe = torch.cat([probe.new_zeros(prefix.shape[:2]), probe], dim=1)
        h, kv = self._run(x, level, centre, past, probe)
        h = h[:, n_prefix:]
        if return_kv:
            return h, [(k[:, :, n_prefix:], v[:, :, n_prefix:]) for k, v in kv]
        return h

    # ------------------------------------------------------------------ heads
    def structure_logits(self, h_NC: torch.Tensor, neighbours: StructureNeighbours | None = None) -> torch.Tensor:
        """(..., 255) logits; class ``c`` is child mask ``c + 1``. A model with a
        structure potential needs the nodes' ``neighbours`` (N flat nodes,
        :meth:`structure_neighbours`)."""
        logits = self.structure_head(h_NC)
        if self.structure_potential is not None:
            if neighbours is None:
                raise ValueError("this model has a structure potential: pass the nodes' neighbours")
            logits = logits + self.structure_potential.logits(neighbours).to(logits.dtype)
        return logits

    def structure_neighbours(self, nodes: NodeInputs, target_BT: torch.Tensor) -> StructureNeighbours | None:
        """The children already drawn around each target structure node of ``nodes``
        (row-major order), or None without a structure potential."""
        if self.structure_potential is None:
            return None
        return structure_neighbours(nodes.level_BT, nodes.masked_BT, nodes.centre_BT3, nodes.token_BT,
                                    nodes.probe_BT, target_BT, self.depth, self.structure_potential.first_level)

    def leaf_neighbours(self, nodes: NodeInputs, target_BT: torch.Tensor) -> LeafNeighbours | None:
        """The revealed leaves each target leaf of ``nodes`` is scored against by the
        pair potential (targets in row-major order), or None without one."""
        if self.pair_potential is None:
            return None
        cfg = self.cfg
        return leaf_neighbours(nodes.level_BT, nodes.masked_BT, nodes.centre_BT3, nodes.payload_BTP, target_BT,
                               self.depth, cfg.pair_potential_fields, cfg.payload_vocab_sizes)

    def payload_logits(self, h_NC: torch.Tensor, values_NF: torch.Tensor | None = None,
                       neighbours: LeafNeighbours | None = None) -> list[torch.Tensor]:
        """One (..., V_f) logit tensor per payload field.

        Args:
            h_NC: (..., C) hidden states of leaf nodes.
            values_NF: (..., F) field values the autoregressive head conditions on
                (teacher forcing: field f sees ``values_NF[..., :f]``); ignored by
                the factorised head, required by the autoregressive one.
            neighbours: the revealed leaves of each node (:meth:`leaf_neighbours`; N
                flat nodes), required by a model with a pair potential.
        """
        if self.payload_prev_embeds is not None and values_NF is None:
            raise ValueError("the autoregressive payload head needs the field values (teacher forcing)")
        return [self.payload_field_logits(h_NC, f, values_NF, neighbours) for f in range(len(self.payload_heads))]

    def payload_field_logits(self, h_NC: torch.Tensor, field: int, prev_NF: torch.Tensor | None = None,
                             neighbours: LeafNeighbours | None = None) -> torch.Tensor:
        """(..., V_f) logits of payload field ``field`` given the values of fields
        ``0..field-1`` in ``prev_NF[..., :field]`` (unused by the factorised head)
        and, with a pair potential, the node's revealed ``neighbours``."""
        if self.payload_prev_embeds is None:
            return self.payload_heads[field](h_NC)
        x = h_NC
        for j in range(field):
            x = x + self.payload_prev_embeds[j](prev_NF[..., j].clamp(0, self.payload_prev_embeds[j].num_embeddings - 1))
        logits = self.payload_heads[field](x)
        if self.pair_potential is not None and field in self.cfg.pair_potential_fields:
            if neighbours is None:
                raise ValueError("this model has a pair potential: pass the leaves' neighbours")
            logits = logits + self.pair_potential.logits(field, prev_NF, neighbours).to(logits.dtype)
        return logits


def count_parameters(config: OctGenConfig) -> int:
    """Number of trainable parameters of a model with ``config`` (builds it)."""
    return sum(p.numel() for p in OctGenTransformer.from_octgen_config(config).parameters())
