"""The OctGen generator: one transformer over octree token levels for every modality."""
from .config import MODEL_SIZES, OctGenConfig, config_for_size
from .transformer import Condition, KVCache, NodeInputs, OctGenTransformer, count_parameters

__all__ = ["MODEL_SIZES", "OctGenConfig", "config_for_size", "count_parameters", "Condition", "KVCache",
           "NodeInputs", "OctGenTransformer"]
