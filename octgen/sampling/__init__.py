"""Sampling apart from the model: level-by-level, token-parallel unmasking."""
from .scheduler import LevelScheduler, SamplerConfig
from .sampler import OctreeSampler

__all__ = ["LevelScheduler", "SamplerConfig", "OctreeSampler"]
