"""octgen web app (Gradio). A thin layer over the library: no model logic here.

Run ``python app.py``. It serves on http://127.0.0.1:7860: ``GRADIO_SERVER_NAME`` and
``GRADIO_SERVER_PORT`` move it (``OCTGEN_PORT`` is an alias of the port), and it binds
loopback unless told otherwise.

Tabs: shape generation (prompt, sketch or nothing; live coarse-to-fine preview, export
in any mesh format) with the shape checkpoint (``checkpoints/shapes-xs``, or the folder
named by OCTGEN_SHAPE_CHECKPOINT), molecule generation with the shipped QM9 checkpoint
(every molecule viewable), the molecule viewer (SDF / XYZ files through the molecule
tokenizer) and the octree explorer (any mesh).

Server hygiene: one queue (``QUEUE_CONCURRENCY`` job at a time per endpoint, at most
``QUEUE_MAX_SIZE`` waiting in all; more are refused by the queue), uploads up to
``MAX_UPLOAD``; every file the app writes, and Gradio's own cache, lives in a folder
of this process (``$OCTGEN_APP_TMP`` or the system temp folder, ``octgen-app/pid<PID>``);
a session's folder is removed when the session ends, the process folder when the
server stops, and folders of dead processes at start-up. User errors are logged as one
line (logger ``octgen.app``), never with a traceback.
"""
from __future__ import annotations

import functools
import inspect
import logging
import os
import queue
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np

from octgen.errors import InputError
from octgen.export.mesh import octree_to_voxel_mesh
from octgen.octree import MAX_DEPTH, tokens_to_octree
from octgen.pipeline.explorer import explore_mesh

ROOT = Path(__file__).resolve().parent
CHECKPOINTS = ROOT / "checkpoints"
EXAMPLES = ROOT / "examples"
EXPLORER_MAX_DEPTH = min(MAX_DEPTH, 8)  # deeper octrees have too many cells to draw in a browser
MAX_GENERATE = 64
SHAPE_CHECKPOINT_ENV = "OCTGEN_SHAPE_CHECKPOINT"
APP_TMP_ENV = "OCTGEN_APP_TMP"
DEFAULT_SHAPE_CHECKPOINT = CHECKPOINTS / "shapes-xs"
SHAPE_CONDITIONS = ("Prompt", "Sketch", "Nothing (unconditional)")
SHAPE_FORMATS = ("GLB", "OBJ", "PLY", "STL")
MAX_GUIDANCE = 10.0
MAX_STEPS = 64
MAX_TEMPERATURE = 2.0
WHOLE_BRIDGE = 4  # cells a "Whole objects" run may add to join a stray part, where the checkpoint sets none
MAX_SEED = 2**63 - 1
RANDOM_SEED_BELOW = 2**31  # randomized seeds stay short enough to read and retype
SHAPE_EXAMPLE_PROMPTS = ("a tall bar stool with three thin legs", "a round table with a central pedestal",
                         "a mug with a handle", "an airplane with swept wings")
SKETCH_CANVAS = 320  # pixels; the sketch is cropped to its strokes and resized for the encoder anyway
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
QUEUE_CONCURRENCY = 1  # jobs of one endpoint run at a time: sampling already uses every core
QUEUE_MAX_SIZE = 16    # waiting jobs; the queue refuses more with "queue is full"
MAX_UPLOAD = "20mb"
SHAPE_CAMERA = (45.0, 65.0, 4.5)  # azimuth, elevation (degrees), distance: the [-1, 1] cube in view

log = logging.getLogger("octgen.app")


# --------------------------------------------------------------------------- settings and hygiene
def server_settings(env=None) -> tuple[str, int]:
    """(host, port) to serve on: ``GRADIO_SERVER_NAME`` (default loopback) and
    ``GRADIO_SERVER_PORT``, else ``OCTGEN_PORT``, else 7860.

    Raises:
        InputError: a port that is not a whole number from 1 to 65535.
    """
    env = os.environ if env is None else env
    host = env.get("GRADIO_SERVER_NAME", "").strip() or DEFAULT_HOST
    name = "GRADIO_SERVER_PORT" if env.get("GRADIO_SERVER_PORT", "").strip() else "OCTGEN_PORT"
    text = env.get(name, "").strip()
    if not text:
        return host, DEFAULT_PORT
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise InputError(f"{name}={text!r}: expected a port number from 1 to 65535")
    return host, port


def app_tmp_root() -> Path:
    """Where the app's per-process folders live: ``$OCTGEN_APP_TMP`` or ``<temp>/octgen-app``."""
    base = os.environ.get(APP_TMP_ENV, "").strip()
    return Path(base) if base else Path(tempfile.gettempdir()) / "octgen-app"


def process_dir() -> Path:
    """This process's folder (outputs of every session, and Gradio's cache when served)."""
    return app_tmp_root() / f"pid{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_folders() -> list[Path]:
    """Remove the folders of app processes that are no longer running; returns them."""
    removed = []
    root = app_tmp_root()
    for d in root.glob("pid*") if root.is_dir() else []:
        pid = d.name[3:]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _session_dir(request: gr.Request | None) -> Path:
    session = getattr(request, "session_hash", None) or "direct"
    return process_dir() / "sessions" / re.sub(r"[^A-Za-z0-9_-]", "_", str(session))[:64]


def _out_dir(prefix: str, request: gr.Request | None = None) -> str:
    """A fresh folder for one call's outputs, inside the caller's session folder."""
    parent = _session_dir(request)
    parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix=f"{prefix}-", dir=parent)


def end_session(request: gr.Request | None = None) -> None:
    """Unload handler: remove the session's folder."""
    if request is not None and getattr(request, "session_hash", None):
        shutil.rmtree(_session_dir(request), ignore_errors=True)


def _path_of(upload) -> str | None:
    if isinstance(upload, dict):  # a FileData payload (handlers called without preprocessing)
        upload = upload.get("path")
    return upload if isinstance(upload, str) else getattr(upload, "name", None)


def _short(msg: str, path=None) -> str:
    # Uploads live under long temporary paths: show the file's own name only.
    return msg.replace(str(path), os.path.basename(str(path))) if path else msg


def _sentence(msg: str) -> str:
    msg = " ".join(str(msg).split())
    first = msg.split(" ", 1)[0]
    # A message led by a file name ("bad.xyz entry 1: ...", "/tmp/x: ...") keeps its case.
    if not (first.endswith(":") or "/" in first or "." in first.rstrip(".,;")):
        msg = msg[:1].upper() + msg[1:]
    return msg if msg.endswith((".", "!", "?")) else msg + "."


def user_errors(fn):
    """Turn :class:`InputError` / ``gr.Error`` from a handler into one ``gr.Error``
    sentence, logged as one line (no traceback on the console). Works for plain and
    generator handlers."""
    def convert(e: Exception) -> gr.Error:
        msg = _sentence(e.message if isinstance(e, gr.Error) else str(e))
        log.warning("user error in %s: %s", fn.__name__, msg)
        return gr.Error(msg, print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapped_gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except (InputError, gr.Error) as e:
                raise convert(e) from None
        return wrapped_gen

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (InputError, gr.Error) as e:
            raise convert(e) from None
    return wrapped


def _whole(value, what: str, lo: int, hi: int) -> int:
    """``value`` as an int in [lo, hi] (whole floats accepted), else gr.Error naming ``what``."""
    if isinstance(value, bool):
        value = None
    try:
        f = float(value)
        if f != int(f):
            raise ValueError
        v = int(f) if not isinstance(value, int) else value
    except (TypeError, ValueError, OverflowError):
        raise gr.Error(f"The {what} must be a whole number from {lo} to {hi}.")
    if not lo <= v <= hi:
        raise gr.Error(f"The {what} must be a whole number from {lo} to {hi}, got {v}.")
    return v


def _number(value, what: str, lo: float, hi: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"The {what} must be a number from {lo:g} to {hi:g}.")
    if not lo <= v <= hi:  # also refuses NaN
        raise gr.Error(f"The {what} must be from {lo:g} to {hi:g}, got {v:g}.")
    return v


# --------------------------------------------------------------------------- octree explorer
@user_errors
def explore(mesh_file, depth, request: gr.Request = None):
    """Explorer tab handler: (uploaded mesh, depth) -> (GLB preview, per-level table, summary)."""
    if mesh_file is None:
        raise gr.Error("Upload a mesh first (obj, ply, stl, off, glb or gltf).")
    path = _path_of(mesh_file)
    depth = _whole(depth, "depth", 1, EXPLORER_MAX_DEPTH)
    out = os.path.join(_out_dir("explore", request), "octree.glb")
    try:
        report = explore_mesh(path, depth, preview_path=out)
    except InputError as e:
        raise gr.Error(_short(str(e), path))
    total = sum(report.tokens_per_level)
    summary = (f"{report.leaf_cells:,} occupied cells at depth {depth}; "
               f"{total:,} structure tokens (one 8-bit child mask per non-empty node above the leaves).")
    return out, report.table(), summary


# --------------------------------------------------------------------------- molecules
MOLECULE_HEADERS = ["#", "formula", "atoms", "stable", "SMILES"]


def _molecule_rows(molecules) -> list[list]:
    from octgen.metrics.molecules import evaluate_molecule

    rows = []
    for i, m in enumerate(molecules):
        r = evaluate_molecule(m)
        rows.append([i, m.formula(), len(m), "yes" if r["stable"] else "no", r["smiles"] or "(invalid)"])
    return rows


@user_errors
def view_molecules(mol_file, index, request: gr.Request = None):
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
    except InputError as e:
        raise gr.Error(_short(str(e), path))
    i = _whole(index if index is not None else 0, "entry", 0, MAX_SEED)
    if i >= len(molecules):
        raise gr.Error(f"Entry {i} does not exist: the file has {len(molecules)} readable molecules "
                       f"(0..{len(molecules) - 1}).")
    out = molecule_to_glb(molecules[i], os.path.join(_out_dir("molecule", request), "molecule.glb"))
    try:
        tokens = MoleculeTokenizer().encode(molecules[i])
        token_note = f"{tokens.num_tokens()} tokens (per level {tokens.tokens_per_level()})"
    except InputError as e:
        token_note = f"not tokenizable with the QM9 tokenizer: {e}"
    summary = f"{len(molecules)} molecule(s); entry {i}: {molecules[i].formula()}, {token_note}."
    if skipped:
        summary += f" Skipped {len(skipped)} bad entr{'y' if len(skipped) == 1 else 'ies'}: " + "; ".join(
            _short(s, path) for s in skipped[:3])
    return str(out), _molecule_rows(molecules), summary


def molecule_checkpoints() -> list[str]:
    """Shipped molecule generators (pipeline folders whose tokenizer makes atom tokens)."""
    from octgen.pipeline.pipeline import read_pipeline_info
    from octgen.tokenize.molecule import MoleculeTokenizer

    found = []
    for p in sorted(CHECKPOINTS.glob("*/pipeline.json")):
        try:
            if read_pipeline_info(p.parent).get("payload_kind") == MoleculeTokenizer.payload_kind:
                found.append(p.parent.name)
        except InputError:
            continue
    return found


@functools.lru_cache(maxsize=2)
def _pipeline(name: str):
    from octgen.pipeline import OctGenPipeline

    return OctGenPipeline.from_pretrained(CHECKPOINTS / name)


_pipeline_lock = threading.Lock()  # lru_cache does not stop two first calls loading twice


def _checkpoint_temperature(name: str) -> float:
    """The sampling temperature a molecule checkpoint was tuned for (its pipeline.json), read
    without loading weights; 1.0 where it names none."""
    from octgen.pipeline.pipeline import read_pipeline_info

    return float(read_pipeline_info(CHECKPOINTS / name).get("sampler", {}).get("temperature", 1.0))


@user_errors
def generate_molecules(checkpoint, num, seed, temperature, request: gr.Request = None):
    """Generate tab: -> (GLB of molecule 0, table, SDF file, summary, state).

    ``state`` is ``{"sdf": path, "glb_dir": folder}``: :func:`show_molecule` draws any
    molecule of the batch from it.
    """
    import torch

    from octgen.data.molecules import write_sdf
    from octgen.export.molecule import molecule_to_glb

    if checkpoint not in molecule_checkpoints():
        raise gr.Error(f"Choose one of the shipped molecule checkpoints: {', '.join(molecule_checkpoints())}.")
    num = _whole(num, "number of molecules", 1, MAX_GENERATE)
    seed = _whole(seed, "seed", 0, MAX_SEED)
    temperature = _number(temperature, "temperature", 0.05, MAX_TEMPERATURE)
    with _pipeline_lock:
        pipe = _pipeline(checkpoint)
    t0 = time.perf_counter()
    molecules = pipe(num, generator=torch.Generator().manual_seed(seed), temperature=temperature)
    seconds = time.perf_counter() - t0
    out_dir = _out_dir("generate", request)
    for i, m in enumerate(molecules):
        m.name = f"octgen_{seed}_{i}"
    sdf = write_sdf(molecules, os.path.join(out_dir, "molecules.sdf"))
    glb = molecule_to_glb(molecules[0], os.path.join(out_dir, "molecule_0.glb")) if len(molecules[0]) else None
    rows = _molecule_rows(molecules)
    stable = sum(r[3] == "yes" for r in rows)
    summary = (f"{num} molecules in {seconds:.2f} s (seed {seed}); {stable} stable, "
               f"{sum(r[4] != '(invalid)' for r in rows)} valid. Select a row to view that molecule.")
    return (str(glb) if glb else None), rows, str(sdf), summary, {"sdf": str(sdf), "glb_dir": out_dir}


@user_errors
def show_molecule(index, state):
    """Draw molecule ``index`` of the last generated batch: -> (GLB path, caption)."""
    from octgen.data.molecules import read_molecule_entries
    from octgen.export.molecule import molecule_to_glb

    if not state or not state.get("sdf") or not os.path.isfile(state["sdf"]):
        raise gr.Error("Generate molecules first.")
    entries = read_molecule_entries(state["sdf"])
    i = _whole(index, "molecule number", 0, len(entries) - 1)
    mol = entries[i][1]
    if isinstance(mol, str) or len(mol) == 0:
        raise gr.Error(f"Molecule {i} has no atoms to draw.")
    path = os.path.join(state["glb_dir"], f"molecule_{i}.glb")
    if not os.path.isfile(path):
        molecule_to_glb(mol, path)
    return path, f"Molecule {i}: {mol.formula()}, {len(mol)} atoms."


def _select_row(state, evt: gr.SelectData):
    index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    path, caption = show_molecule(index, state)
    return path, caption, index


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
    from octgen.pipeline.pipeline import read_pipeline_info
    from octgen.tokenize.shape_vqvae import ShapeVQVAE

    info = read_pipeline_info(folder)
    if info.get("payload_kind") != ShapeVQVAE.payload_kind:
        raise InputError(f"{folder} holds a '{info.get('modality')}' checkpoint, not a shape one")
    return info


@functools.lru_cache(maxsize=1)
def _shape_pipeline(folder: str):
    # Loaded on the first click, then kept: loading takes seconds, a call well under one.
    from octgen.pipeline import OctGenPipeline

    return OctGenPipeline.from_pretrained(folder)


def _open_sketch_file(path: str):
    """A sketch upload as a PIL image; its size is read from the header and checked
    before any pixel is decoded (decompression bombs). Upload names need not end in
    an image suffix (the browser's canvas export may not)."""
    from PIL import Image, UnidentifiedImageError

    from octgen.condition.sketch import MAX_SKETCH_PIXELS

    name = os.path.basename(path)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_SKETCH_PIXELS:
                raise InputError(f"{name}: {im.width}x{im.height} is too large for a sketch "
                                 f"(at most {MAX_SKETCH_PIXELS:,} pixels)")
            im.load()
            return im.copy()
    except InputError:
        raise
    except Image.DecompressionBombError:  # Pillow's own header check, for the very largest
        raise InputError(f"{name}: the image is too large for a sketch "
                         f"(at most {MAX_SKETCH_PIXELS:,} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{name}: not a readable image ({type(e).__name__})") from None


def _sketch_input(sketch):
    """The sketch as the pipeline takes it. Sketchpad payloads that were not
    preprocessed (``{"composite": {"path": ...}}``) are opened here."""
    if isinstance(sketch, dict) and isinstance(sketch.get("composite"), dict):
        path = _path_of(sketch["composite"])
        if not path:
            raise InputError("the sketch is empty: draw the shape's outline first")
        return _open_sketch_file(path)
    if isinstance(sketch, dict) and sketch.get("composite") is None and sketch.get("background") is None:
        raise InputError("the sketch is empty: draw the shape's outline first")
    return sketch


def _preview(structure: list, path: Path) -> tuple[str, int]:
    """GLB of the occupied cells one level below ``structure`` -> (path, cells)."""
    from octgen.export.mesh import save_mesh

    octree = tokens_to_octree(structure)
    mesh = octree_to_voxel_mesh(octree)
    save_mesh(mesh, path)
    return str(path), int(octree.keys[octree.depth].numel())


def _sample_in_thread(pipe, inputs: dict, seed: int, sampler: dict):
    """Run the pipeline in a worker thread; yields ("level", d, structure) per octree
    level as it is sampled, then ("done", result) (or re-raises the worker's error)."""
    import torch

    events: queue.Queue = queue.Queue()

    def on_level(level, structure_B):
        events.put(("level", level, structure_B[0]))

    def work():
        try:
            [result] = pipe(**inputs, num=1, generator=torch.Generator().manual_seed(seed), callback=on_level,
                            **sampler)
            events.put(("done", result))
        except BaseException as e:  # handed to the caller's thread
            events.put(("error", e))

    threading.Thread(target=work, daemon=True, name="octgen-shape").start()
    while True:
        event = events.get()
        if event[0] == "error":
            raise event[1]
        yield event
        if event[0] == "done":
            return


@user_errors
def generate_shape(condition, prompt, sketch, seed, randomize_seed=False, guidance=None, steps=None,
                   temperature=None, whole=None, request: gr.Request = None, progress=gr.Progress()):
    """Shape tab handler (a generator: coarse previews first, then the mesh).

    Args:
        condition: one of :data:`SHAPE_CONDITIONS`: which input conditions the shape.
        prompt: text (used when ``condition`` is "Prompt").
        sketch: the sketchpad value (a numpy / PIL image, an ImageEditor dict of
            arrays, or an unpreprocessed one of file payloads; used for "Sketch").
        seed: non-negative integer; one seed gives one shape.
        randomize_seed: draw a fresh seed instead (it is written back).
        guidance: classifier-free guidance scale, 0 to :data:`MAX_GUIDANCE`; None: the checkpoint's.
        steps: unmasking steps per octree level (0: one token per step); None: the checkpoint's.
        temperature: sampling temperature (0: greedy); None: the checkpoint's.
        whole: join stray parts while sampling (``SamplerConfig.connect``: the
            checkpoint's bridge size, or :data:`WHOLE_BRIDGE` cells where it has none)
            or not; None: the checkpoint's.
    Yields:
        (GLB for the viewer, seed used, Markdown summary, seconds per stage, mesh
        path for export). While sampling: the occupied cells of the finished coarse
        levels (a voxel GLB), no timings and no mesh; finally the mesh (viewer and
        mesh path None when the sampled field has no surface).
    Raises:
        gr.Error: one sentence for any bad input or a missing checkpoint.
    """
    from octgen.condition.text import check_prompt
    from octgen.export.mesh import save_mesh

    folder = shape_checkpoint()
    info = _shape_info(folder)
    if condition not in SHAPE_CONDITIONS:
        raise gr.Error(f"Choose the condition: {', '.join(SHAPE_CONDITIONS)}.")
    seed = random.SystemRandom().randrange(RANDOM_SEED_BELOW) if randomize_seed is True else \
        _whole(seed, "seed", 0, MAX_SEED)
    sampler: dict = {}
    if guidance is not None:
        sampler["guidance_scale"] = _number(guidance, "guidance scale", 0, MAX_GUIDANCE)
    if steps is not None:
        n = _whole(steps, "number of steps per level", 0, MAX_STEPS)
        sampler["steps"] = None if n == 0 else n
    if temperature is not None:
        sampler["temperature"] = _number(temperature, "temperature", 0, MAX_TEMPERATURE)
    if whole is not None:
        if not isinstance(whole, bool):
            raise gr.Error("Whole objects must be on or off.")
        sampler["connect"] = (int(info.get("sampler", {}).get("connect", 0)) or WHOLE_BRIDGE) if whole else 0
    inputs: dict = {}
    if condition == "Prompt":
        inputs["prompt"] = check_prompt(prompt if isinstance(prompt, str) else "")
    elif condition == "Sketch":
        if sketch is None:
            raise InputError("the sketch is empty: draw the shape's outline first")
        inputs["sketch"] = _sketch_input(sketch)  # the pipeline preprocesses it (blank / unreadable -> InputError)
    pipe = _shape_pipeline(str(folder))
    if "sketch" in inputs:
        pipe.condition(sketches=[inputs["sketch"]])  # a bad sketch fails here, before the thread starts
    out_dir = Path(_out_dir("shape", request))
    depth = pipe.transformer.depth
    t_click = time.perf_counter()
    result = None
    progress(0, desc="encoding the condition")
    for event in _sample_in_thread(pipe, inputs, seed, sampler):
        if event[0] == "done":
            result = event[1]
            break
        _, level, structure = event
        progress((level + 1) / (depth + 2), desc=f"octree level {level} of {depth} sampled")
        if level < depth:  # the leaf level adds codes, not cells: nothing new to show
            glb, cells = _preview(structure, out_dir / f"preview_depth{level + 1}.glb")
            yield (glb, seed, f"Coarse preview: {cells:,} occupied cells at depth {level + 1} of {depth} "
                   f"({time.perf_counter() - t_click:.2f} s); sampling the finer levels...", None, None)
    progress((depth + 1) / (depth + 2), desc="decoding the mesh")
    mesh, timings = result.mesh, {k: round(float(v), 4) for k, v in result.timings.items()}
    if condition == "Prompt":
        used = f"prompt \"{inputs['prompt']}\""
    elif condition == "Sketch":
        used = "the sketch"
    else:
        used = "unconditional"
    if "guidance_scale" in sampler and condition != SHAPE_CONDITIONS[2]:
        used += f", guidance {sampler['guidance_scale']:g}"
    if sampler.get("connect") == 0:
        used += ", stray parts kept"
    note = f" Checkpoint note: {info['note']}." if info.get("note") else ""
    if len(mesh.faces) == 0:
        yield None, seed, f"No surface for seed {seed} ({used}): the decoded field is empty; try another seed.{note}", \
            timings, None
        return
    glb = save_mesh(mesh, out_dir / f"shape_seed{seed}.glb")
    summary = (f"{len(mesh.faces):,} faces, watertight: {'yes' if mesh.is_watertight else 'no'}; "
               f"{timings['total']:.2f} s in all (seed {seed}, {used}).{note}")
    yield str(glb), seed, summary, timings, str(glb)


@user_errors
def export_shape(mesh_path, file_format):
    """Write the last generated mesh (``mesh_path``, a GLB of this session) in
    ``file_format`` next to it: -> the file to download."""
    import trimesh

    from octgen.export.mesh import save_mesh

    if file_format not in SHAPE_FORMATS:
        raise gr.Error(f"Choose an export format: {', '.join(SHAPE_FORMATS)}.")
    if not mesh_path or not os.path.isfile(mesh_path):
        raise gr.Error("Generate a shape first.")
    src = Path(mesh_path)
    if file_format == "GLB":
        return str(src)
    mesh = trimesh.load(src, force="mesh")
    return str(save_mesh(mesh, src.with_suffix(f".{file_format.lower()}")))


def _shape_examples_sketches() -> list[str]:
    return [str(p) for p in sorted((EXAMPLES / "sketches").glob("*.png"))]


def _shape_tab() -> None:
    """The "Generate shapes" tab, or one line on how to get a checkpoint."""
    folder = shape_checkpoint()
    try:
        info = _shape_info(folder)
    except InputError as e:
        gr.Markdown(str(e))
        return
    from octgen.sampling.scheduler import SamplerConfig

    # What OctGenPipeline.from_pretrained puts in pipe.sampler_config, read without loading weights.
    sampler_info = info.get("sampler", {})
    default_guidance = float(sampler_info.get("guidance_scale", SamplerConfig().guidance_scale))
    default_steps = sampler_info.get("steps", SamplerConfig().steps) or 0
    default_temperature = float(sampler_info.get("temperature", SamplerConfig().temperature))
    default_whole = int(sampler_info.get("connect", 0) or 0) > 0
    with gr.Row():
        with gr.Column(scale=1):
            condition = gr.Radio(list(SHAPE_CONDITIONS), value=SHAPE_CONDITIONS[0], label="Condition",
                                 visible=False)
            with gr.Tabs():
                with gr.Tab("Prompt") as tab_prompt:
                    prompt = gr.Textbox(label="Prompt", placeholder="a chair with four legs", max_lines=3,
                                        elem_id="shape-prompt")
                    gr.Examples([[p] for p in SHAPE_EXAMPLE_PROMPTS], inputs=[prompt], label="Example prompts")
                with gr.Tab("Sketch") as tab_sketch:
                    # RGB mode flattens the canvas on white, so the handler always sees dark ink on white.
                    sketch = gr.Sketchpad(
                        value=np.full((SKETCH_CANVAS, SKETCH_CANVAS, 3), 255, dtype=np.uint8),
                        label="Sketch", type="numpy", image_mode="RGB",
                        canvas_size=(SKETCH_CANVAS, SKETCH_CANVAS), fixed_canvas=True, height=SKETCH_CANVAS + 80,
                        brush=gr.Brush(colors=["#000000"], default_color="#000000", color_mode="fixed",
                                       default_size=4))
                    sketches = _shape_examples_sketches()
                    if sketches:
                        gr.Examples([[p] for p in sketches], inputs=[sketch], label="Example sketches")
                with gr.Tab("Nothing") as tab_none:
                    gr.Markdown("Unconditional: a shape from the model's own distribution.")
            for tab, value in zip((tab_prompt, tab_sketch, tab_none), SHAPE_CONDITIONS):
                tab.select(lambda v=value: v, None, condition, api_visibility="private")
            button = gr.Button("Generate", variant="primary", elem_id="shape-generate")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="Seed", scale=2)
                randomize = gr.Checkbox(value=True, label="Randomize seed", scale=1)
            with gr.Accordion("Advanced", open=False):
                guidance = gr.Slider(0, MAX_GUIDANCE, value=min(max(default_guidance, 0.0), MAX_GUIDANCE),
                                     step=0.1, label="Guidance scale (0: ignore the condition)")
                steps = gr.Number(value=int(default_steps), precision=0,
                                  label="Steps per octree level (0: one token per step)")
                temperature = gr.Slider(0, MAX_TEMPERATURE, value=default_temperature, step=0.05,
                                        label="Temperature (0: greedy)")
                whole = gr.Checkbox(value=default_whole, label="Whole objects (join stray parts while sampling)")
        with gr.Column(scale=2):
            viewer = gr.Model3D(label="Generated shape", clear_color=(1, 1, 1, 1), camera_position=SHAPE_CAMERA,
                                height=480, elem_id="shape-viewer")
            summary = gr.Markdown(label="Summary", elem_id="shape-summary")
            mesh_path = gr.State(None)
            with gr.Row():
                file_format = gr.Radio(list(SHAPE_FORMATS), value="GLB", label="Export format", scale=2)
                export_btn = gr.Button("Export", scale=1)
            download = gr.File(label="Exported mesh")
            timings = gr.JSON(label="Seconds per stage")
    button.click(generate_shape, [condition, prompt, sketch, seed, randomize, guidance, steps, temperature, whole],
                 [viewer, seed, summary, timings, mesh_path], api_name="generate_shape", preprocess=False)
    export_btn.click(export_shape, [mesh_path, file_format], [download], api_name="export_shape",
                preprocess=False)


# --------------------------------------------------------------------------- layout
# Events take their inputs unpreprocessed (preprocess=False): API callers' values reach
# the handlers, whose checks give the app's own one-line message for any bad value, and
# uploads are opened by the readers, which check sizes before decoding. Gradio still
# refuses any file path that was not uploaded to this server.
def _example_files(folder: str, suffixes: tuple[str, ...]) -> list[list[str]]:
    return [[str(p)] for p in sorted((EXAMPLES / folder).iterdir()) if p.suffix.lower() in suffixes] \
        if (EXAMPLES / folder).is_dir() else []


def build_demo() -> gr.Blocks:
    """The app's Blocks, queue configured (launch with :func:`main`)."""
    with gr.Blocks(title="octgen") as demo:
        gr.Markdown("# octgen\nOctree autoregressive generation of 3D shapes and molecules.")
        with gr.Tab("Generate shapes"):
            _shape_tab()
        checkpoints = molecule_checkpoints()
        if checkpoints:
            with gr.Tab("Generate molecules", elem_id="tab-molecules"):
                with gr.Row():
                    with gr.Column(scale=1):
                        ckpt = gr.Dropdown(checkpoints, value=checkpoints[0], label="Checkpoint")
                        num = gr.Number(value=8, precision=0, label=f"Molecules (1 to {MAX_GENERATE})")
                        seed = gr.Number(value=0, precision=0, label="Seed")
                        temp = gr.Slider(0.05, MAX_TEMPERATURE, value=_checkpoint_temperature(checkpoints[0]),
                                         step=0.05, label="Temperature (default: the checkpoint's)")
                        gen_btn = gr.Button("Generate", variant="primary", elem_id="molecule-generate")
                        gen_summary = gr.Markdown(label="Summary", elem_id="molecule-summary")
                        gen_file = gr.File(label="molecules.sdf")
                    with gr.Column(scale=2):
                        gen_view = gr.Model3D(label="Molecule (ball and stick)", clear_color=(1, 1, 1, 1),
                                              height=420, elem_id="molecule-viewer")
                        with gr.Row():
                            pick = gr.Number(value=0, precision=0, label="Molecule #", scale=1)
                            caption = gr.Markdown(label="Shown", elem_id="molecule-caption")
                        gen_table = gr.Dataframe(headers=MOLECULE_HEADERS, interactive=False,
                                                 label="Generated molecules (select a row to view it)",
                                                 elem_id="molecule-table")
                batch = gr.State(None)
                gen_btn.click(generate_molecules, [ckpt, num, seed, temp],
                              [gen_view, gen_table, gen_file, gen_summary, batch], api_name="generate_molecules",
                preprocess=False)
                pick.submit(show_molecule, [pick, batch], [gen_view, caption], api_name="show_molecule",
                preprocess=False)
                gen_table.select(_select_row, [batch], [gen_view, caption, pick], api_visibility="private")
        with gr.Tab("Molecule viewer"):
            with gr.Row():
                with gr.Column(scale=1):
                    # No file_types filter: a wrong file gets the reader's message instead of being ignored.
                    mol_in = gr.File(label="Molecules (.sdf, .mol, .xyz)")
                    mol_idx = gr.Number(value=0, precision=0, label="Entry to show")
                    view_btn = gr.Button("Show", variant="primary")
                    view_summary = gr.Markdown(label="Summary")
                    examples = _example_files("molecules", (".sdf", ".mol", ".xyz"))
                    if examples:
                        gr.Examples(examples, inputs=[mol_in], label="Example molecule files")
                with gr.Column(scale=2):
                    mol_view = gr.Model3D(label="Ball and stick", clear_color=(1, 1, 1, 1), height=420)
                    mol_table = gr.Dataframe(headers=MOLECULE_HEADERS, interactive=False, label="Molecules")
            view_btn.click(view_molecules, [mol_in, mol_idx], [mol_view, mol_table, view_summary],
                           api_name="view_molecules",
                preprocess=False)
        with gr.Tab("Octree explorer"):
            with gr.Row():
                with gr.Column(scale=1):
                    mesh_in = gr.File(label="Mesh (obj, ply, stl, off, glb, gltf)")
                    depth_in = gr.Number(value=5, precision=0, label=f"Octree depth (1 to {EXPLORER_MAX_DEPTH})")
                    run_btn = gr.Button("Build octree", variant="primary")
                    summary = gr.Markdown(label="Summary")
                    examples = _example_files("meshes", (".obj", ".ply", ".stl", ".off", ".glb"))
                    if examples:
                        gr.Examples(examples, inputs=[mesh_in], label="Example meshes")
                with gr.Column(scale=2):
                    viewer = gr.Model3D(label="Occupied cells at the chosen depth", clear_color=(1, 1, 1, 1),
                                        camera_position=SHAPE_CAMERA, height=420)
                    table = gr.Dataframe(headers=["depth", "nodes", "structure tokens"], label="Tokens per level",
                                         interactive=False)
            run_btn.click(explore, inputs=[mesh_in, depth_in], outputs=[viewer, table, summary],
                          api_name="explore_octree",
                preprocess=False)
        demo.unload(end_session)
    demo.queue(default_concurrency_limit=QUEUE_CONCURRENCY, max_size=QUEUE_MAX_SIZE)
    return demo


def _exit_on_sigterm(signum, frame) -> None:
    """Leave through SystemExit so the atexit clean-up runs; a second SIGTERM arriving during
    that shutdown is ignored (raising again there would print a traceback)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(0)


def main() -> None:
    """Serve the app (see the module docstring for the environment variables)."""
    import atexit

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        host, port = server_settings()
    except InputError as e:
        raise SystemExit(f"octgen app: {e}")
    for d in remove_stale_folders():
        log.info("removed the folder of a stopped app process: %s", d)
    work = process_dir()
    work.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(work)  # Gradio's cache too: our outputs are served without copies
    atexit.register(shutil.rmtree, work, True)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    build_demo().launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD)


if __name__ == "__main__":
    main()
