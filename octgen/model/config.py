"""``OctGenConfig``: the typed configuration of the OctGen transformer, and a
registry of named sizes.

The same dataclass is written into every checkpoint (``config.json`` through
diffusers' ``ConfigMixin``) so ``from_pretrained`` rebuilds the exact model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

CONFIG_VERSION = 2
PAYLOAD_HEADS = ("factorised", "autoregressive")


@dataclass
class OctGenConfig:
    """Shape of one OctGen transformer.

    Attributes:
        depth: leaf depth D of the token octrees. Levels 0..D-1 carry structure
            tokens (child masks 1..255); level D carries the payload.
        payload_vocab_sizes: vocabulary size of each payload field at the leaf
            level (atoms: element, x bin, y bin, z bin; shape codes: K fields of
            size 2). Empty for structure-only octrees.
        dim: model width C.
        n_layers: transformer blocks.
        n_heads: attention heads; ``dim / n_heads`` is the head size.
        mlp_ratio: hidden width of the MLP as a multiple of ``dim``.
        rope_theta: slowest rotary wavelength, in finest cells, is about
            ``2 pi rope_theta``; the fastest is ``2 pi`` cells.
        num_classes: class labels for label conditioning (0: none). Index
            ``num_classes`` is the learned "no condition" label used for
            classifier-free guidance.
        cond_dim: width of external condition embeddings (text / sketch
            encoders), projected to ``dim``; 0 when unused.
        n_prefix: number of learned prefix tokens for unconditional models and
            for the dropped condition.
        dropout: dropout on attention and MLP outputs during training.
        payload_head: ``"factorised"`` (one linear head per payload field, fields
            independent given the node's hidden state) or ``"autoregressive"``
            (field f is predicted from the hidden state plus embeddings of the
            values of fields 0..f-1, so an atom's element and offsets, or a code's
            bits, are sampled jointly).
        num_sizes: size conditioning (0: off). The number of leaves of the octree
            (atoms of a molecule), clipped to ``num_sizes - 1``, is one more prefix
            token; the sampler draws it from the training histogram or takes it
            from the user, so the model knows how much is left to generate.
        num_counts: count conditioning (0: off; needs ``num_sizes``). The number of
            leaves whose first payload field is ``count_value`` (a molecule's
            hydrogens), clipped to ``num_counts - 1``, is one more prefix token after
            the size; the sampler draws it from the training histogram of counts
            given the size, so the model knows the composition as well as the size.
        count_value: the first-field value ``num_counts`` counts.
        payload_offset_fields: indices of the payload fields that are sub-cell
            offsets along x, y, z (equal bins across a finest cell), or empty. When
            set, a revealed leaf is rotated at its exact position (cell centre plus
            decoded offset) instead of its cell centre, so attention measures
            distances between atoms below the cell size.
        rope_max_freq: fastest rotary frequency in radians per finest cell (1.0:
            the first design). Frequencies run geometrically from it down to
            ``1 / rope_theta``.
        pair_potential_fields: the x, y, z sub-cell offset fields (equal bins across a
            finest cell) that a learned pair potential scores, or empty (off). Field 0
            is the leaf's type (an atom's element). Each candidate bin of an offset
            field gets the extra logit ``sum_j U_{t, t_j}(|p - p_j|)`` over the leaves
            ``j`` already revealed in the level: ``p`` is the candidate position (cell
            centre, the offsets already drawn for the earlier axes, the candidate on
            this axis), ``p_j`` their exact positions, ``t, t_j`` the types, and ``U``
            a learned piecewise-linear function per axis and type pair.
            Needs the autoregressive head. Bond lengths are read straight from
            distances instead of through attention.
        pair_grid: (first knot, last knot, count) of the pair potential's
            piecewise-linear functions, in finest cells (0 outside the knots).
        structure_potential_levels: how many of the finest structure levels
            (``depth - n .. depth - 1``) get a learned potential on their child
            masks: each candidate child scores its distances to the children of
            the nodes of its level already drawn (:class:`~octgen.model.pair.StructurePotential`).
            0: off.
        structure_grid: (first knot, last knot, count) of those potentials, in finest cells.
        version: config format version (1: before ``payload_head`` / ``num_sizes``).
    """

    depth: int = 6
    payload_vocab_sizes: tuple[int, ...] = ()
    dim: int = 256
    n_layers: int = 6
    n_heads: int = 8
    mlp_ratio: float = 4.0
    rope_theta: float = 100.0
    num_classes: int = 0
    cond_dim: int = 0
    n_prefix: int = 1
    dropout: float = 0.0
    payload_head: str = "factorised"
    num_sizes: int = 0
    num_counts: int = 0
    count_value: int = 0
    payload_offset_fields: tuple[int, ...] = ()
    rope_max_freq: float = 1.0
    pair_potential_fields: tuple[int, ...] = ()
    pair_grid: tuple[float, float, int] = (3.0, 13.0, 101)
    structure_potential_levels: int = 0
    structure_grid: tuple[float, float, int] = (0.0, 16.0, 65)
    version: int = CONFIG_VERSION

    def __post_init__(self):
        self.payload_vocab_sizes = tuple(int(v) for v in self.payload_vocab_sizes)
        self.payload_offset_fields = tuple(int(f) for f in self.payload_offset_fields)
        if self.payload_offset_fields and (len(self.payload_offset_fields) != 3 or not all(
                0 <= f < len(self.payload_vocab_sizes) for f in self.payload_offset_fields)):
            raise ValueError("payload_offset_fields names 3 payload fields (x, y, z offsets) or none")
        self.pair_potential_fields = tuple(int(f) for f in self.pair_potential_fields)
        self.pair_grid = (float(self.pair_grid[0]), float(self.pair_grid[1]), int(self.pair_grid[2]))
        if self.pair_potential_fields:
            f = self.pair_potential_fields
            if len(f) != 3 or len(set(f)) != 3 or not all(0 < i < len(self.payload_vocab_sizes) for i in f):
                raise ValueError("pair_potential_fields names 3 distinct payload fields after field 0 (the type)")
            if self.payload_head != "autoregressive":
                raise ValueError("the pair potential needs payload_head 'autoregressive'")
            if not (0 < self.pair_grid[0] < self.pair_grid[1] and self.pair_grid[2] >= 2):
                raise ValueError(f"pair_grid is (first > 0, last > first, count >= 2), got {self.pair_grid}")
        self.structure_grid = (float(self.structure_grid[0]), float(self.structure_grid[1]),
                               int(self.structure_grid[2]))
        if not 0 <= self.structure_potential_levels <= self.depth:
            raise ValueError(f"structure_potential_levels must be in 0..depth, got {self.structure_potential_levels}")
        if self.structure_potential_levels and not (0 <= self.structure_grid[0] < self.structure_grid[1]
                                                    and self.structure_grid[2] >= 2):
            raise ValueError(f"structure_grid is (first >= 0, last > first, count >= 2), got {self.structure_grid}")
        if not self.rope_max_freq > 0:
            raise ValueError(f"rope_max_freq must be > 0, got {self.rope_max_freq}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")
        if (self.dim // self.n_heads) < 6:
            raise ValueError("head size must be at least 6 (two rotary dims per axis)")
        if not 1 <= self.depth <= 10:
            raise ValueError(f"depth must be in 1..10, got {self.depth}")
        if self.payload_head not in PAYLOAD_HEADS:
            raise ValueError(f"payload_head must be one of {PAYLOAD_HEADS}, got {self.payload_head!r}")
        if self.num_sizes < 0:
            raise ValueError(f"num_sizes must be >= 0, got {self.num_sizes}")
        if self.num_counts < 0:
            raise ValueError(f"num_counts must be >= 0, got {self.num_counts}")
        if self.num_counts and not self.num_sizes:
            raise ValueError("num_counts needs num_sizes > 0 (the count is drawn given the size)")
        if self.num_counts and not (self.payload_vocab_sizes and 0 <= self.count_value < self.payload_vocab_sizes[0]):
            raise ValueError(f"count_value must be a value of the first payload field, got {self.count_value}")
        if any(v < 2 for v in self.payload_vocab_sizes):
            raise ValueError("every payload field needs a vocabulary of at least 2")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["payload_vocab_sizes"] = list(self.payload_vocab_sizes)
        d["payload_offset_fields"] = list(self.payload_offset_fields)
        d["pair_potential_fields"] = list(self.pair_potential_fields)
        d["pair_grid"] = list(self.pair_grid)
        d["structure_grid"] = list(self.structure_grid)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "OctGenConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# Named sizes (depth and payload fields come from the tokenizer). ``params_qm9`` is
# the parameter count with the QM9 atom payload (5 elements, 3 x 24 offset bins,
# depth 6); `tests/test_model.py` rebuilds the models and checks it.
MODEL_SIZES: dict[str, dict] = {
    "tiny": dict(dim=48, n_layers=2, n_heads=4, params_qm9=89_324),           # tests
    "xs": dict(dim=128, n_layers=4, n_heads=4, params_qm9=879_948),           # 2-core CPU training
    "s": dict(dim=256, n_layers=8, n_heads=8, params_qm9=6_491_468),
    "m": dict(dim=512, n_layers=12, n_heads=8, params_qm9=38_175_052),
    "l": dict(dim=768, n_layers=24, n_heads=12, params_qm9=170_628_428),      # GPU cluster
}


def config_for_size(size: str, **overrides) -> OctGenConfig:
    """The named size ``size`` with ``overrides`` (depth, payload sizes...)."""
    if size not in MODEL_SIZES:
        raise KeyError(f"unknown model size '{size}'; known: {sorted(MODEL_SIZES)}")
    spec = {k: v for k, v in MODEL_SIZES[size].items() if k != "params_qm9"}
    return OctGenConfig(**{**spec, **overrides})
