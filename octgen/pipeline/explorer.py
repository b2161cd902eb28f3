"""The octree explorer behind the app's first tab: mesh file -> octree preview."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..octree import MAX_DEPTH, Octree

# Beyond this many leaf cells a cube preview is too heavy for a browser viewer.
MAX_PREVIEW_CELLS = 300_000


@dataclass
class OctreeReport:
    octree: Octree
    tokens_per_level: list[int]  # structure tokens at depths 0..D-1
    leaf_cells: int

    def table(self) -> list[list]:
        """Rows (depth, nodes, structure tokens) for display."""
        rows = [[d, self.octree.num_nodes(d), self.tokens_per_level[d]] for d in range(self.octree.depth)]
        rows.append([self.octree.depth, self.leaf_cells, 0])
        return rows


def explore_mesh(path: str | os.PathLike, depth: int, preview_path: str | os.PathLike | None = None,
                 seed: int = 0) -> OctreeReport:
    """Octree of a mesh file and, optionally, a GLB preview of its occupied leaf cells.

    Raises:
        InputError: bad file or depth, or a preview with too many cells.
    """
    from ..data.meshes import load_mesh
    from ..export.mesh import octree_to_voxel_mesh, save_mesh
    from ..octree import mesh_to_octree, octree_to_tokens

    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise InputError(f"depth must be an integer from 1 to {MAX_DEPTH}, got {depth!r}")
    mesh = load_mesh(Path(path))
    octree = mesh_to_octree(mesh, depth, seed=seed)
    tokens = octree_to_tokens(octree)
    report = OctreeReport(octree, [int(t.numel()) for t in tokens], octree.num_nodes(depth))
    if preview_path is not None:
        if report.leaf_cells > MAX_PREVIEW_CELLS:
            raise InputError(f"{report.leaf_cells:,} cells at depth {depth} are too many to preview "
                             f"(at most {MAX_PREVIEW_CELLS:,}); choose a smaller depth")
        save_mesh(octree_to_voxel_mesh(octree), preview_path)
    return report
