"""Training: the one accelerate loop (`trainer`) and its jobs (`job`: the generator of
any modality, the shape VQ-VAE, the shape classifier), token shards and objectives."""
from .config import TrainConfig

__all__ = ["TrainConfig"]
