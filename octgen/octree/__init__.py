"""Octree core: Morton keys, sparse octrees, structure tokens and octree conv ops."""
from .morton import MAX_DEPTH, key_to_xyz, xyz_to_key
from .octree import (
    Octree,
    build_octree,
    children_keys,
    keys_to_octree,
    octree_to_tokens,
    points_to_xyz,
    tokens_to_octree,
    xyz_to_centres,
)
from .neighbours import neighbour_table, NEIGHBOUR_OFFSETS
from .ops import OctreeConv, OctreeDownsample, OctreeUpsample, octree_conv, octree_downsample, octree_upsample

__all__ = [
    "MAX_DEPTH", "key_to_xyz", "xyz_to_key", "Octree", "build_octree", "children_keys",
    "keys_to_octree", "octree_to_tokens", "points_to_xyz", "tokens_to_octree", "xyz_to_centres",
    "neighbour_table", "NEIGHBOUR_OFFSETS", "OctreeConv", "OctreeDownsample", "OctreeUpsample",
    "octree_conv", "octree_downsample", "octree_upsample", "mesh_to_octree",
]


def __getattr__(name):
    # mesh_to_octree needs trimesh; import it lazily so the core stays torch-only.
    if name == "mesh_to_octree":
        from .mesh import mesh_to_octree
        return mesh_to_octree
    raise AttributeError(name)
