"""Writing outputs: meshes, molecules, token files; always atomically."""
from .atomic import atomic_path
from .mesh import MESH_OUT_FORMATS, cells_to_voxel_mesh, octree_to_voxel_mesh, save_mesh

__all__ = ["atomic_path", "MESH_OUT_FORMATS", "cells_to_voxel_mesh", "octree_to_voxel_mesh", "save_mesh"]
