"""octgen web app (Gradio). A thin layer over the library: no model logic here.

Run ``python app.py`` (serves on http://127.0.0.1:7860; set OCTGEN_PORT to change).
Tabs: shape generation (prompt, sketch or nothing) with the shape checkpoint
(``checkpoints/shapes-xs``, or the folder named by OCTGEN_SHAPE_CHECKPOINT), molecule
generation with the shipped QM9 checkpoint, the molecule viewer (SDF / XYZ files
through the molecule tokenizer) and the octree explorer (any mesh).
"""
from __future__ import annotations

import functools
import os
import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np

from octgen.errors import InputError
from octgen.octree import MAX_DEPTH
from octgen.pipeline.explorer import explore_mesh

ROOT = Path(__file__).resolve().parent
CHECKPOINTS = ROOT / "checkpoints"
EXPLORER_MAX_DEPTH = min(MAX_DEPTH, 8)  # deeper octrees have too many cells to draw in a browser
MAX_GENERATE = 64
SHAPE_CHECKPOINT_ENV = "OCTGEN_SHAPE_CHECKPOINT"
DEFAULT_SHAPE_CHECKPOINT = CHECKPOINTS / "shapes-xs"
SHAPE_CONDITIONS = ("Prompt", "Sketch", "Nothing (unconditional)")
SHAPE_FORMATS = ("GLB", "OBJ", "STL")
MAX_GUIDANCE = 10.0
SHAPE_EXAMPLE_PROMPTS = ("a tall bar stool with three thin legs", "a round table with a central pedestal",
                         "a mug with a handle", "an airplane with swept wings")
SKETCH_CANVAS = 384  # pixels; the sketch is cropped to its strokes and resized for the encoder anyway


def _path_of(upload) -> str | None:
    return upload if isinstance(upload, str) else getattr(upload, "name", None)


def _user_error(e: InputError, path=None) -> gr.Error:
    # Uploads live under long temporary paths: show the file's own name only.
    msg = str(e)
    if path:
        msg = msg.replace(str(path), os.path.basename(str(path)))
    return gr.Error(msg)


def _out_dir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=f"octgen-{prefix}-")


# --------------------------------------------------------------------------- octree explorer
def explore(mesh_file, depth):
    """Explorer tab handler: (uploaded mesh, depth) -> (GLB preview, per-level table, summary)."""
    if mesh_file is None:
        raise gr.Error("Upload a mesh first (obj, ply, stl, off, glb or gltf).")
    path = _path_of(mesh_file)
    try:
        depth = int(depth)
    except (TypeError, ValueError):
        raise gr.Error(f"Depth must be a whole number from 1 to {EXPLORER_MAX_DEPTH}.")
    if not 1 <= depth <= EXPLORER_MAX_DEPTH:
        raise gr.Error(f"Depth must be from 1 to {EXPLORER_MAX_DEPTH}, got {depth}.")
    out = os.path.join(_out_dir("explore"), "octree.glb")
    try:
        report = explore_mesh(path, depth, preview_path=out)
    except InputError as e:
        raise _user_error(e, path)
    total = sum(report.tokens_per_level)
    summary = (f"{report.leaf_cells:,} occupied cells at depth {depth}; "
               f"{total:,} structure tokens (one 8-bit child mask per non-empty node above the leaves).")
    return out, report.table(), summary


# --------------------------------------------------------------------------- molecules
def _molecule_rows(molecules) -> list[list]:
    from octgen.metrics.molecules import evaluate_molecule

    rows = []
    for i, m in enumerate(molecules):
        r = evaluate_molecule(m)
        rows.append([i, m.formula(), len(m), "yes" if r["stable"] else "no", r["smiles"] or "(invalid)"])
    return rows


def view_molecules(mol_file, index):
    """Viewer tab: (SDF/XYZ upload, entry index) -> (ball-and-stick GLB, table, summary)."""
    from octgen.data.molecules import read_molecules
    from octgen.export.molecule import molecule_to_glb
    from octgen.tokenize.molecule import MoleculeTokenizer

    if mol_file is None:
        raise gr.Error("Upload a molecule file first (.sdf, .mol or .xyz).")
    path = _path_of(mol_file)
    skipped: list[str] = []
    try:
        molecules = read_molecules(path, on_skip=skipped.append)
        i = int(index or 0)
        if not 0 <= i < len(molecules):
            raise gr.Error(f"Entry {i} does not exist: the file has {len(molecules)} readable molecules (0..{len(molecules) - 1}).")
        out = molecule_to_glb(molecules[i], os.path.join(_out_dir("molecule"), "molecule.glb"))
        try:
            tokens = MoleculeTokenizer().encode(molecules[i])
            token_note = f"{tokens.num_tokens()} tokens (per level {tokens.tokens_per_level()})"
        except InputError as e:
            token_note = f"not tokenizable with the QM9 tokenizer: {e}"
    except InputError as e:
        raise _user_error(e, path)
    summary = f"{len(molecules)} molecule(s); entry {i}: {molecules[i].formula()}, {token_note}."
    if skipped:
        summary += f" Skipped {len(skipped)} bad entr{'y' if len(skipped) == 1 else 'ies'}: " + "; ".join(
            s.replace(str(path), os.path.basename(str(path))) for s in skipped[:3])
    return str(out), _molecule_rows(molecules), summary


def molecule_checkpoints() -> list[str]:
    """Shipped molecule generators (folders with a pipeline.json of modality 'molecule')."""
    import json

    found = []
    for p in sorted(CHECKPOINTS.glob("*/pipeline.json")):
        try:
            if json.loads(p.read_text()).get("modality") == "molecule":
                found.append(p.parent.name)
        except (OSError, ValueError):
            continue
    return found


@functools.lru_cache(maxsize=2)
def _pipeline(name: str):
    from octgen.pipeline import OctGenPipeline

    return OctGenPipeline.from_pretrained(CHECKPOINTS / name)


def generate_molecules(checkpoint, num, seed, temperature):
    """Generate tab: -> (GLB of the first molecule, table, SDF file, summary)."""
    import torch

    from octgen.data.molecules import write_sdf
    from octgen.export.molecule import molecule_to_glb

    if checkpoint not in molecule_checkpoints():
        raise gr.Error("Choose one of the shipped molecule checkpoints.")
    try:
        num, seed, temperature = int(num), int(seed), float(temperature)
    except (TypeError, ValueError):
        raise gr.Error("Number, seed and temperature must be numbers.")
    if not 1 <= num <= MAX_GENERATE:
        raise gr.Error(f"Generate between 1 and {MAX_GENERATE} molecules at a time.")
    if not 0.05 <= temperature <= 2.0:
        raise gr.Error("Temperature must be between 0.05 and 2.")
    if not 0 <= seed < 2**63:
        raise gr.Error("The seed must be a non-negative integer.")
    try:
        pipe = _pipeline(checkpoint)
        t0 = time.perf_counter()
        molecules = pipe(num, generator=torch.Generator().manual_seed(seed), temperature=temperature)
        seconds = time.perf_counter() - t0
    except InputError as e:
        raise _user_error(e)
    out_dir = _out_dir("generate")
    sdf = write_sdf(molecules, os.path.join(out_dir, "molecules.sdf"))
    glb = molecule_to_glb(molecules[0], os.path.join(out_dir, "molecule_0.glb")) if len(molecules[0]) else None
    rows = _molecule_rows(molecules)
    stable = sum(r[3] == "yes" for r in rows)
    summary = f"{num} molecules in {seconds:.2f} s (seed {seed}); {stable} stable, {sum(r[4] != '(invalid)' for r in rows)} valid."
    return (str(glb) if glb else None), rows, str(sdf), summary


# --------------------------------------------------------------------------- shapes
def shape_checkpoint() -> Path:
    """The shape checkpoint folder: $OCTGEN_SHAPE_CHECKPOINT, else ``checkpoints/shapes-xs``."""
    override = os.environ.get(SHAPE_CHECKPOINT_ENV, "").strip()
    return Path(override).expanduser().resolve() if override else DEFAULT_SHAPE_CHECKPOINT


def _no_shape_checkpoint_message(folder: Path) -> str:
    return (f"No shape checkpoint is installed (looked for `{folder}`): train one with "
            f"`octgen train configs/shapes-xs.json`, or set {SHAPE_CHECKPOINT_ENV} to a shape pipeline folder.")


def _shape_info(folder: Path) -> dict:
    """``pipeline.json`` of a shape checkpoint, without loading any weights.

    Raises:
        InputError: no checkpoint there, or not a shape one.
    """
    if not (folder / "pipeline.json").is_file():  # checked before importing torch and diffusers
        raise InputError(_no_shape_checkpoint_message(folder))
    from octgen.pipeline.shape import read_pipeline_info

    info = read_pipeline_info(folder)
    if info.get("modality") != "shape":
        raise InputError(f"{folder} holds a '{info.get('modality')}' checkpoint, not a shape one.")
    return info


@functools.lru_cache(maxsize=1)
def _shape_pipeline(folder: str):
    # Loaded on the first click, then kept: loading takes seconds, a call well under one.
    from octgen.pipeline.shape import ShapePipeline

    return ShapePipeline.from_pretrained(folder)


def _sentence(e: Exception) -> gr.Error:
    msg = str(e).strip()
    msg = msg[:1].upper() + msg[1:]
    return gr.Error(msg if msg.endswith((".", "!", "?")) else msg + ".")


def _check_seed(seed) -> int:
    if isinstance(seed, bool):
        seed = None
    try:
        value = float(seed)
        if value != int(value):
            raise ValueError
        value = int(value)
    except (TypeError, ValueError, OverflowError):
        raise gr.Error("The seed must be a non-negative whole number, e.g. 0.")
    if not 0 <= value < 2**63:
        raise gr.Error(f"The seed must be a non-negative whole number below 2^63, got {value}.")
    return value


def _check_guidance(guidance) -> float:
    try:
        value = float(guidance)
    except (TypeError, ValueError):
        raise gr.Error(f"The guidance scale must be a number from 0 to {MAX_GUIDANCE:g}.")
    if not 0 <= value <= MAX_GUIDANCE:  # also refuses NaN
        raise gr.Error(f"The guidance scale must be from 0 to {MAX_GUIDANCE:g}, got {value:g}.")
    return value


def generate_shape(condition, prompt, sketch, guidance, seed, file_format="GLB"):
    """Shape tab handler.

    Args:
        condition: one of :data:`SHAPE_CONDITIONS`: which input conditions the shape.
        prompt: text (used when ``condition`` is "Prompt").
        sketch: the sketchpad value (a numpy / PIL image or an ImageEditor dict with
            ``background``, ``layers``, ``composite``; used when ``condition`` is "Sketch").
        guidance: classifier-free guidance scale, 0 to :data:`MAX_GUIDANCE`.
        seed: non-negative integer; one seed gives one shape.
        file_format: download format, one of :data:`SHAPE_FORMATS`.
    Returns:
        (GLB path for the viewer, download path, one-line Markdown summary, seconds per
        stage: ``encode_condition``, ``sample_level_<d>``, ``decode``, ``marching_cubes``,
        ``total``); both paths are None when the sampled field has no surface.
    Raises:
        gr.Error: one sentence for any bad input or a missing checkpoint.
    """
    import torch

    from octgen.condition.text import check_prompt
    from octgen.export.mesh import save_mesh

    folder = shape_checkpoint()
    try:
        info = _shape_info(folder)
    except InputError as e:
        raise _sentence(e)
    if condition not in SHAPE_CONDITIONS:
        raise gr.Error(f"Choose the condition: {', '.join(SHAPE_CONDITIONS)}.")
    if file_format not in SHAPE_FORMATS:
        raise gr.Error(f"Choose a download format: {', '.join(SHAPE_FORMATS)}.")
    seed = _check_seed(seed)
    guidance = _check_guidance(guidance)
    inputs: dict = {}
    try:
        if condition == "Prompt":
            inputs["prompt"] = check_prompt(prompt if prompt is not None else "")
        elif condition == "Sketch":
            if sketch is None:
                raise InputError("the sketch is empty: draw the shape's outline first")
            inputs["sketch"] = sketch  # the pipeline preprocesses it (blank / unreadable -> InputError)
        pipe = _shape_pipeline(str(folder))
        [result] = pipe(**inputs, num=1, generator=torch.Generator().manual_seed(seed), guidance_scale=guidance)
    except InputError as e:
        raise _sentence(e)

    mesh, timings = result.mesh, {k: round(float(v), 4) for k, v in result.timings.items()}
    if condition == "Prompt":
        used = f"prompt \"{inputs['prompt']}\", guidance {guidance:g}"
    elif condition == "Sketch":
        used = f"the sketch, guidance {guidance:g}"
    else:
        used = "unconditional"
    note = f" Checkpoint note: {info['note']}." if info.get("note") else ""
    if len(mesh.faces) == 0:
        summary = f"No surface for seed {seed} ({used}): the decoded field is empty; try another seed.{note}"
        return None, None, summary, timings
    out_dir = Path(_out_dir("shape"))
    glb = save_mesh(mesh, out_dir / f"shape_seed{seed}.glb")
    download = glb if file_format == "GLB" else save_mesh(mesh, out_dir / f"shape_seed{seed}.{file_format.lower()}")
    summary = (f"{len(mesh.faces):,} faces, watertight: {'yes' if mesh.is_watertight else 'no'}; "
               f"{timings['total']:.2f} s in all (seed {seed}, {used}).{note}")
    return str(glb), str(download), summary, timings


def _shape_tab() -> None:
    """The "Generate shapes" tab, or one line on how to get a checkpoint."""
    folder = shape_checkpoint()
    try:
        info = _shape_info(folder)
    except InputError as e:
        gr.Markdown(str(e))
        return
    from octgen.sampling.scheduler import SamplerConfig

    # What ShapePipeline.from_pretrained puts in pipe.sampler_config, read without loading weights.
    default_guidance = float(info.get("sampler", {}).get("guidance_scale", SamplerConfig().guidance_scale))
    with gr.Row():
        with gr.Column(scale=1):
            condition = gr.Radio(list(SHAPE_CONDITIONS), value=SHAPE_CONDITIONS[0], label="Condition")
            prompt = gr.Textbox(label="Prompt", placeholder="a chair with four legs", max_lines=3)
            gr.Examples([[p] for p in SHAPE_EXAMPLE_PROMPTS], inputs=[prompt], label="Example prompts")
            # RGB mode flattens the canvas on white, so the handler always sees dark ink on white.
            sketch = gr.Sketchpad(
                value=np.full((SKETCH_CANVAS, SKETCH_CANVAS, 3), 255, dtype=np.uint8),
                label="Sketch (used when the condition is Sketch)", type="numpy", image_mode="RGB",
                canvas_size=(SKETCH_CANVAS, SKETCH_CANVAS), fixed_canvas=True, height=SKETCH_CANVAS + 80,
                brush=gr.Brush(colors=["#000000"], default_color="#000000", color_mode="fixed", default_size=4))
            guidance = gr.Slider(0, MAX_GUIDANCE, value=min(max(default_guidance, 0.0), MAX_GUIDANCE), step=0.1,
                                 label="Guidance scale (0: ignore the condition)")
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
            file_format = gr.Radio(list(SHAPE_FORMATS), value="GLB", label="Download format")
            button = gr.Button("Generate", variant="primary")
        with gr.Column(scale=2):
            viewer = gr.Model3D(label="Generated shape", clear_color=(1, 1, 1, 1))
            download = gr.File(label="Download")
            summary = gr.Markdown()
            timings = gr.JSON(label="Seconds per stage")
    button.click(generate_shape, [condition, prompt, sketch, guidance, seed, file_format],
                 [viewer, download, summary, timings])


# --------------------------------------------------------------------------- layout
def build_demo() -> gr.Blocks:
    with gr.Blocks(title="octgen") as demo:
        gr.Markdown("# octgen\nOctree autoregressive generation of 3D shapes and molecules.")
        mol_headers = ["#", "formula", "atoms", "stable", "SMILES"]
        with gr.Tab("Generate shapes"):
            _shape_tab()
        checkpoints = molecule_checkpoints()
        if checkpoints:
            with gr.Tab("Generate molecules"):
                with gr.Row():
                    with gr.Column(scale=1):
                        ckpt = gr.Dropdown(checkpoints, value=checkpoints[0], label="Checkpoint")
                        num = gr.Slider(1, MAX_GENERATE, value=8, step=1, label="Molecules")
                        seed = gr.Number(value=0, precision=0, label="Seed")
                        temp = gr.Slider(0.05, 2.0, value=1.0, step=0.05, label="Temperature")
                        gen_btn = gr.Button("Generate", variant="primary")
                        gen_summary = gr.Markdown()
                        gen_file = gr.File(label="molecules.sdf")
                    with gr.Column(scale=2):
                        gen_view = gr.Model3D(label="First molecule (ball and stick)", clear_color=(1, 1, 1, 1))
                        gen_table = gr.Dataframe(headers=mol_headers, interactive=False)
                gen_btn.click(generate_molecules, [ckpt, num, seed, temp], [gen_view, gen_table, gen_file, gen_summary])
        with gr.Tab("Molecule viewer"):
            with gr.Row():
                with gr.Column(scale=1):
                    mol_in = gr.File(label="Molecules (.sdf, .mol, .xyz)", file_types=[".sdf", ".mol", ".xyz"])
                    mol_idx = gr.Number(value=0, precision=0, label="Entry to show")
                    view_btn = gr.Button("Show", variant="primary")
                    view_summary = gr.Markdown()
                with gr.Column(scale=2):
                    mol_view = gr.Model3D(label="Ball and stick", clear_color=(1, 1, 1, 1))
                    mol_table = gr.Dataframe(headers=mol_headers, interactive=False)
            view_btn.click(view_molecules, [mol_in, mol_idx], [mol_view, mol_table, view_summary])
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
