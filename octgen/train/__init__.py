"""Training of the OctGen transformer (accelerate) and its data shards."""
from .config import TrainConfig

__all__ = ["TrainConfig"]
