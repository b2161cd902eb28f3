"""The tokenizer protocol every modality implements (ARCHITECTURE.md section 2).

A tokenizer turns one thing of its modality (a mesh, a molecule, a coloured point
cloud...) into :class:`~octgen.tokenize.tokens.OctreeTokens` and back. The
generator, the sampler, the trainer and the pipeline only ever use what this
class declares:

- ``depth``: D, the depth of the token octree (structure tokens at depths
  0..D-1, one payload row per leaf at depth D);
- ``payload_vocab_sizes``: the number of classes of each payload column (the
  transformer gets one payload head per column);
- ``payload_kind``: the name written into every :class:`OctreeTokens` it makes
  (class attribute; a subclass registers it as a valid kind of token file);
- ``encode(...) -> OctreeTokens`` and ``decode(OctreeTokens) -> object``;
- ``save_pretrained(dir)`` / ``load(dir)`` (diffusers ``ModelMixin`` +
  ``ConfigMixin``: a ``config.json``, plus safetensors weights when the tokenizer
  has any); ``load`` checks the folder first and fails with one line.

A new modality is a new subclass (plus a :class:`~octgen.modality.Modality`):
nothing else in the library needs to change.
"""
from __future__ import annotations

from pathlib import Path

from diffusers import ConfigMixin, ModelMixin

from ..weights import DIFFUSERS_WEIGHTS_NAME, load_checked
from .tokens import OctreeTokens, register_payload_kind


class OctreeTokenizer(ModelMixin, ConfigMixin):
    """Base class of the tokenizers (see the module docstring).

    Subclasses set ``payload_kind`` and implement ``depth``,
    ``payload_vocab_sizes``, ``encode`` and ``decode``.
    """

    config_name = "config.json"
    payload_kind: str = "none"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register_payload_kind(cls.payload_kind)

    @property
    def depth(self) -> int:
        raise NotImplementedError

    @property
    def payload_vocab_sizes(self) -> list[int]:
        raise NotImplementedError

    def encode(self, *args, **kwargs) -> OctreeTokens:
        raise NotImplementedError

    def decode(self, tokens: OctreeTokens):
        raise NotImplementedError

    def decode_sample(self, tokens: OctreeTokens, timings: dict):
        """What a pipeline returns for one generated sequence, given the seconds the
        pipeline spent on it so far (``timings``, per stage). Default: ``decode(tokens)``;
        a tokenizer whose decoding has stages worth timing returns a richer result."""
        return self.decode(tokens)

    def connect_leaves(self, tokens: OctreeTokens) -> tuple[float, torch.Tensor]:
        """For ``SamplerConfig.connect``: how whole ``decode(tokens)`` is (its largest
        connected part's share, 1.0 = one part) and the leaves (indices in z-order)
        whose payload, drawn again, could join its parts. Default: whole, none (an
        output without a notion of parts)."""
        return 1.0, torch.zeros(0, dtype=torch.long)

    @classmethod
    def load(cls, directory: str | Path) -> "OctreeTokenizer":
        """A tokenizer saved with ``save_pretrained``, checked first (one-line
        :class:`~octgen.errors.InputError` on a bad folder), float32, eval mode."""
        return load_checked(cls, directory, DIFFUSERS_WEIGHTS_NAME, "tokenizer").float().eval()

