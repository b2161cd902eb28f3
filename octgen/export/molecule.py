"""Molecule outputs: SDF / XYZ files and a ball-and-stick GLB for the 3D viewer.

The SDF and XYZ writers live with the readers in :mod:`octgen.data.molecules`
and are re-exported here. :func:`molecule_to_glb` draws each atom as a sphere in
its CPK colour (Jmol's, with carbon dark grey) (radius proportional to the covalent radius) and each bond
perceived from geometry (EDM tables) as a stick split half-and-half in the colours
of its two atoms; double and triple bonds are two or three thinner parallel sticks.
One PBR material per element colour keeps the file small and renders in any glTF
viewer.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data.bonds import bond_orders as perceive_bonds
from ..data.molecules import check_molecule_out_path, write_molecules, write_sdf, write_xyz
from ..errors import InputError
from .atomic import atomic_path

__all__ = ["molecule_to_glb", "molecule_to_scene", "write_molecules", "write_sdf", "write_xyz",
           "check_molecule_out_path"]

# Jmol colours (RGB 0..255), except carbon in the darker CPK grey (Jmol's pale grey
# looks like white hydrogen once lit), and covalent radii (Angstrom) of common elements.
ELEMENT_COLOURS = {
    "H": (255, 255, 255), "B": (255, 181, 181), "C": (64, 64, 64), "N": (48, 80, 248), "O": (255, 13, 13),
    "F": (144, 224, 80), "Al": (191, 166, 166), "Si": (240, 200, 160), "P": (255, 128, 0), "S": (255, 255, 48),
    "Cl": (31, 240, 31), "As": (189, 128, 227), "Br": (166, 41, 41), "I": (148, 0, 148), "Hg": (184, 184, 208),
    "Bi": (158, 79, 181),
}
COVALENT_RADII = {"H": 0.31, "B": 0.84, "C": 0.76, "N": 0.71, "O": 0.66, "F": 0.57, "Al": 1.21, "Si": 1.11,
                  "P": 1.07, "S": 1.05, "Cl": 1.02, "As": 1.19, "Br": 1.20, "I": 1.39, "Hg": 1.32, "Bi": 1.48}
_OTHER_COLOUR = (255, 20, 147)
ATOM_SCALE = 0.4      # sphere radius = ATOM_SCALE * covalent radius
BOND_RADIUS = 0.09    # Angstrom, single bond stick
MAX_GLB_ATOMS = 5000


def _bond_offsets(p0: np.ndarray, p1: np.ndarray, order: int, spacing: float) -> list[np.ndarray]:
    """Sideways shifts of the ``order`` parallel sticks of one bond."""
    axis = (p1 - p0) / max(np.linalg.norm(p1 - p0), 1e-9)
    helper = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    side = np.cross(axis, helper)
    side /= np.linalg.norm(side)
    shifts = (np.arange(order) - (order - 1) / 2) * spacing
    return [s * side for s in shifts]


def molecule_to_scene(molecule, bond_orders: np.ndarray | None = None):
    """A ``trimesh.Scene`` of the ball-and-stick model (one mesh per element colour).

    Args:
        molecule: a :class:`~octgen.data.molecules.Molecule` (Angstrom).
        bond_orders: optional (N, N) int orders; default EDM perception from distances.
    """
    import trimesh

    if len(molecule) == 0:
        raise InputError(f"molecule '{molecule.name}' has no atoms to draw")
    if len(molecule) > MAX_GLB_ATOMS:
        raise InputError(f"molecule '{molecule.name}': {len(molecule)} atoms is more than the "
                         f"{MAX_GLB_ATOMS} the ball-and-stick view draws")
    orders = perceive_bonds(molecule) if bond_orders is None else np.asarray(bond_orders)
    pos = molecule.positions
    parts: dict[str, list] = {}
    unit_sphere = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    for e, p in zip(molecule.elements, pos):
        s = unit_sphere.copy()
        s.apply_scale(ATOM_SCALE * COVALENT_RADII.get(e, 0.8))
        s.apply_translation(p)
        parts.setdefault(e, []).append(s)
    ii, jj = np.nonzero(np.triu(orders, 1))
    for i, j in zip(ii.tolist(), jj.tolist()):
        order = int(orders[i, j])
        radius = BOND_RADIUS if order == 1 else BOND_RADIUS * 0.6
        mid = (pos[i] + pos[j]) / 2
        for shift in _bond_offsets(pos[i], pos[j], order, spacing=2.6 * radius):
            for end, e in ((pos[i], molecule.elements[i]), (pos[j], molecule.elements[j])):
                seg = np.stack([end + shift, mid + shift])
                parts.setdefault(e, []).append(trimesh.creation.cylinder(radius=radius, segment=seg, sections=12))
    scene = trimesh.Scene()
    for e, meshes in parts.items():
        mesh = trimesh.util.concatenate(meshes)
        rgb = ELEMENT_COLOURS.get(e, _OTHER_COLOUR)
        material = trimesh.visual.material.PBRMaterial(
            name=f"element_{e}", baseColorFactor=[c / 255 for c in rgb] + [1.0], metallicFactor=0.0,
            roughnessFactor=0.6)
        mesh.visual = trimesh.visual.TextureVisuals(material=material)
        scene.add_geometry(mesh, node_name=f"atoms_{e}", geom_name=f"atoms_{e}")
    return scene


def molecule_to_glb(molecule, path: str | os.PathLike, bond_orders: np.ndarray | None = None) -> Path:
    """Write a ball-and-stick ``.glb`` of one molecule atomically (see :func:`molecule_to_scene`)."""
    path = Path(path)
    if path.suffix.lower() != ".glb":
        raise InputError(f"{path}: ball-and-stick output must end in .glb")
    scene = molecule_to_scene(molecule, bond_orders)
    with atomic_path(path) as tmp:
        tmp.write_bytes(scene.export(file_type="glb"))
    return path
