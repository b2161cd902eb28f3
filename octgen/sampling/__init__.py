"""Sampling apart from the model: level-by-level, token-parallel unmasking."""
from .scheduler import LevelScheduler, SamplerConfig, resolve_precision
from .sampler import OctreeSampler

__all__ = ["LevelScheduler", "SamplerConfig", "OctreeSampler", "resolve_precision"]
