"""Modalities: what differs between molecules, shapes and any new kind of thing
(see :mod:`octgen.modality.base`). Importing this package registers the built-in
ones: ``qm9``, ``shapes`` and ``synthetic``."""
from . import molecules, shapes, synthetic
from .base import Modality, get_modality, modality_names, register_modality

__all__ = ["Modality", "get_modality", "modality_names", "register_modality", "molecules", "shapes", "synthetic"]
