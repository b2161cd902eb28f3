"""Off-screen pictures of meshes (pyvista / VTK, no display needed).

:class:`MeshRenderer` keeps one off-screen plotter and renders meshes in the
[-1, 1]^3 frame from a fixed three-quarter view, so pictures of different shapes
are comparable (same camera, same scale).
"""
from __future__ import annotations

import numpy as np

VIEW = {"position": (2.6, 2.0, 3.2), "focal_point": (0.0, 0.0, 0.0), "up": (0.0, 1.0, 0.0)}


class MeshRenderer:
    """Render ``trimesh.Trimesh`` objects to (size, size, 3) uint8 RGB arrays.

    Args:
        size: image width and height in pixels.
        color: surface colour (any pyvista colour).
    """

    def __init__(self, size: int = 256, color: str = "lightsteelblue"):
        import pyvista as pv

        self.size, self.color = size, color
        self._pv = pv
        self._plotter = pv.Plotter(off_screen=True, window_size=(size, size), lighting="three lights")
        self._plotter.set_background("white")

    def __call__(self, mesh) -> np.ndarray:
        p = self._plotter
        p.clear_actors()  # (clear() would also drop the lights)
        if len(mesh.faces):
            faces = np.hstack([np.full((len(mesh.faces), 1), 3), np.asarray(mesh.faces)]).ravel()
            p.add_mesh(self._pv.PolyData(np.asarray(mesh.vertices, dtype=np.float64), faces),
                       color=self.color, ambient=0.25, diffuse=0.75, specular=0.2)
        p.camera.position, p.camera.focal_point, p.camera.up = VIEW["position"], VIEW["focal_point"], VIEW["up"]
        p.camera.view_angle = 30.0
        p.render()
        return np.asarray(p.screenshot(return_img=True))[..., :3].copy()

    def close(self) -> None:
        self._plotter.close()
