"""Tokenizers: meshes and molecules to ``OctreeTokens`` and back."""
from .tokens import FORMAT_VERSION, PAYLOAD_KINDS, OctreeTokens

__all__ = ["FORMAT_VERSION", "PAYLOAD_KINDS", "OctreeTokens"]
