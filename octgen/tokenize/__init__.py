"""Tokenizers: things to ``OctreeTokens`` and back, behind one protocol
(:class:`~octgen.tokenize.base.OctreeTokenizer`): molecules, shapes (VQ-VAE)."""
from .tokens import FORMAT_VERSION, PAYLOAD_KINDS, OctreeTokens

__all__ = ["FORMAT_VERSION", "PAYLOAD_KINDS", "OctreeTokens"]
