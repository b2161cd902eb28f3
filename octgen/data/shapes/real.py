"""Real meshes that ship inside installed Python packages.

No mesh data set can be downloaded here, so the tokenizer's out-of-distribution
check uses the few example meshes that packages bundle in their wheels: pyvista's
``examples`` folder (airplane, ant, nut, sphere) and gradio's 3D demo assets
(Stanford bunny, duck, fox, a face, a statue). Which of them are present depends
on what is installed; missing packages are skipped.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

# (package, folder inside it, file names): the examples octgen reports on.
PACKAGED_MESHES = (
    ("pyvista", "examples", ("airplane.ply", "ant.ply", "nut.ply", "sphere.ply")),
    ("gradio", "media_assets/models3d", ("Bunny.obj", "Duck.glb", "Fox.gltf", "face.obj", "sofia.stl")),
)


def packaged_mesh_files() -> list[Path]:
    """Paths of the bundled example meshes that exist on this machine, in a fixed order.

    Only the package's spec is looked up (nothing is imported), so this is cheap.
    """
    found = []
    for package, folder, names in PACKAGED_MESHES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(list(spec.submodule_search_locations)[0]) / folder
        found += [root / n for n in names if (root / n).is_file()]
    return found
