"""Write the app's example files (committed; rerun to remake them):

- ``sketches/*.png``: line drawings of procedural test-split shapes, drawn by the
  project's sketch renderer (:func:`octgen.data.sketches.render_sketch`, canonical view).
- ``molecules/*.sdf|*.xyz``: small molecules embedded in 3D with RDKit (fixed seed).
- ``meshes/``: a torus (OBJ) and a procedural mug (PLY).

Run: ``python examples/make_examples.py``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from octgen.data.molecules import Molecule, write_sdf, write_xyz
from octgen.data.sketches import render_sketch
from octgen.data.shapes import CATEGORY_BY_NAME, make_shape
from octgen.export.mesh import save_mesh
from octgen.data.sdf import sdf_to_mesh

HERE = Path(__file__).resolve().parent
SKETCHED = ("chair", "table", "mug", "lamp")
MOLECULES = {"caffeine": "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "ethanol": "CCO", "benzene": "c1ccccc1",
             "glycine": "NCC(=O)O"}


def _shape_of(category: str, start: int = 0):
    """The first procedural shape of ``category`` at dataset position >= ``start``."""
    assert category in CATEGORY_BY_NAME
    return make_shape(start, seed=0, category=category)


def sketches() -> None:
    for name in SKETCHED:
        _, _, _, sdf = _shape_of(name)
        path = HERE / "sketches" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(render_sketch(sdf, size=256, stroke_px=3)).save(path)


def molecules() -> None:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mols = []
    for name, smiles in MOLECULES.items():
        m = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(m, randomSeed=0)
        AllChem.MMFFOptimizeMolecule(m)
        pos = m.GetConformer().GetPositions()
        mols.append(Molecule([a.GetSymbol() for a in m.GetAtoms()], np.asarray(pos), name=name))
    folder = HERE / "molecules"
    write_sdf(mols[0], folder / "caffeine.sdf")
    write_sdf(mols[1:], folder / "small_molecules.sdf")
    write_xyz(mols[1], folder / "ethanol.xyz")


def meshes() -> None:
    folder = HERE / "meshes"
    save_mesh(trimesh.creation.torus(major_radius=0.6, minor_radius=0.2), folder / "torus.obj")
    _, _, _, sdf = _shape_of("mug")
    save_mesh(sdf_to_mesh(sdf, resolution=48), folder / "mug.ply")


if __name__ == "__main__":
    sketches()
    molecules()
    meshes()
    print("wrote", *sorted(str(p.relative_to(HERE)) for p in HERE.rglob("*.*") if p.suffix != ".py"))
