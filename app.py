"""octgen web app (Gradio). A thin layer over the library: no model logic here.

Run ``python app.py`` (serves on http://127.0.0.1:7860; set OCTGEN_PORT to change).
"""
from __future__ import annotations

import os
import tempfile

import gradio as gr

from octgen.errors import InputError
from octgen.octree import MAX_DEPTH
from octgen.pipeline.explorer import explore_mesh

EXPLORER_MAX_DEPTH = min(MAX_DEPTH, 8)  # deeper octrees have too many cells to draw in a browser


def explore(mesh_file, depth):
    """Explorer tab handler: (uploaded mesh, depth) -> (GLB preview, per-level table, summary)."""
    if mesh_file is None:
        raise gr.Error("Upload a mesh first (obj, ply, stl, off, glb or gltf).")
    path = mesh_file if isinstance(mesh_file, str) else getattr(mesh_file, "name", None)
    try:
        depth = int(depth)
    except (TypeError, ValueError):
        raise gr.Error(f"Depth must be a whole number from 1 to {EXPLORER_MAX_DEPTH}.")
    if not 1 <= depth <= EXPLORER_MAX_DEPTH:
        raise gr.Error(f"Depth must be from 1 to {EXPLORER_MAX_DEPTH}, got {depth}.")
    out = os.path.join(tempfile.mkdtemp(prefix="octgen-explore-"), "octree.glb")
    try:
        report = explore_mesh(path, depth, preview_path=out)
    except InputError as e:
        # Uploads live under long temporary paths: show the file's own name only.
        raise gr.Error(str(e).replace(str(path), os.path.basename(str(path))))
    total = sum(report.tokens_per_level)
    summary = (f"{report.leaf_cells:,} occupied cells at depth {depth}; "
               f"{total:,} structure tokens (one 8-bit child mask per non-empty node above the leaves).")
    return out, report.table(), summary


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="octgen") as demo:
        gr.Markdown("# octgen\nOctree autoregressive generation of 3D shapes and molecules.")
        with gr.Tab("Octree explorer"):
            with gr.Row():
                with gr.Column(scale=1):
                    mesh_in = gr.File(label="Mesh (obj, ply, stl, off, glb, gltf)",
                                      file_types=[".obj", ".ply", ".stl", ".off", ".glb", ".gltf"])
                    depth_in = gr.Slider(1, EXPLORER_MAX_DEPTH, value=5, step=1, label="Octree depth")
                    run_btn = gr.Button("Build octree", variant="primary")
                    summary = gr.Markdown()
                with gr.Column(scale=2):
                    viewer = gr.Model3D(label="Occupied cells at the chosen depth", clear_color=(1, 1, 1, 1))
                    table = gr.Dataframe(headers=["depth", "nodes", "structure tokens"], label="Tokens per level",
                                         interactive=False)
            run_btn.click(explore, inputs=[mesh_in, depth_in], outputs=[viewer, table, summary])
    return demo


if __name__ == "__main__":
    build_demo().launch(server_name="127.0.0.1", server_port=int(os.environ.get("OCTGEN_PORT", "7860")))
