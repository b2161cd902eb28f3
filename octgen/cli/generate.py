"""``octgen generate shape|molecule``: sample with a trained pipeline folder.

``octgen generate shape [--prompt TEXT | --prompts FILE | --sketch IMAGE | --sketches DIR] --out DIR``
writes ``DIR/shape_{index:04d}.{format}`` (one mesh per item) and ``DIR/manifest.jsonl``.
Every input is checked before anything is generated; each mesh is written
atomically as soon as it is made, the manifest atomically at the end.

``octgen generate molecule --num N --seed S --out DIR`` writes ``DIR/molecules.sdf``
(all molecules, in order) and ``DIR/manifest.jsonl`` (one line per molecule: index,
seed, atoms, seconds). Both files are written atomically at the end, so an
interrupted run leaves no half-written output.
"""
from __future__ import annotations

from pathlib import Path

from ._args import int_in_range

DEFAULT_CHECKPOINT = "checkpoints/qm9-xs"
DEFAULT_SHAPE_CHECKPOINT = "checkpoints/shapes-xs"
SHAPE_FORMATS = ("glb", "obj", "ply", "stl")
MAX_SEED = 2**63 - 1


def default_checkpoint() -> Path:
    """The shipped QM9 checkpoint (``checkpoints/qm9-xs`` at the repository root)."""
    return Path(__file__).resolve().parents[2] / DEFAULT_CHECKPOINT


def default_shape_checkpoint() -> Path:
    """The shipped shapes checkpoint (``checkpoints/shapes-xs`` at the repository root)."""
    return Path(__file__).resolve().parents[2] / DEFAULT_SHAPE_CHECKPOINT


def _positive_float(text: str) -> float:
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not v >= 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def _add_checkpoint_and_sampling(p, checkpoint_help: str) -> None:
    """--checkpoint, --steps and --temperature, shared by every generate command."""
    p.add_argument("--checkpoint", metavar="DIR", default=None, help=checkpoint_help)
    p.add_argument("--steps", type=int_in_range(0, 100_000), default=None,
                   help="unmasking steps per octree level (default: the checkpoint's; 0 = one token per step)")
    p.add_argument("--temperature", type=_positive_float, default=None,
                   help="sampling temperature (default: the checkpoint's; 0 = greedy)")


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="generate shapes or molecules with a trained checkpoint",
                       description="Generate samples with a trained OctGen checkpoint.")
    gsub = p.add_subparsers(dest="modality", metavar="MODALITY", required=True, parser_class=type(p))
    _add_shape_parser(gsub)
    m = gsub.add_parser("molecule", help="sample 3D molecules (SDF + manifest)",
                        description="Sample 3D molecules; writes DIR/molecules.sdf and DIR/manifest.jsonl.")
    m.add_argument("--num", type=int_in_range(1, 10_000_000), default=10, help="number of molecules (default 10)")
    m.add_argument("--seed", type=int_in_range(0, MAX_SEED), default=0, help="random seed (default 0)")
    m.add_argument("--out", required=True, metavar="DIR", help="output folder")
    _add_checkpoint_and_sampling(m, f"pipeline folder (default: the shipped {DEFAULT_CHECKPOINT})")
    m.add_argument("--batch-size", type=int_in_range(1, 100_000), default=500,
                   help="molecules sampled together (default 500)")
    m.set_defaults(func=run_molecule)


def run_molecule(args) -> int:
    import json
    import time

    import torch
    from tqdm import tqdm

    from ..data.molecules import write_sdf
    from ..errors import InputError
    from ..export.atomic import atomic_path
    from ..pipeline.pipeline import OctGenPipeline

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    ckpt = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    pipe = OctGenPipeline.from_pretrained(ckpt)
    overrides = {}
    if args.steps is not None:
        overrides["steps"] = None if args.steps == 0 else args.steps
    if args.temperature is not None:
        overrides["temperature"] = args.temperature
    generator = torch.Generator().manual_seed(args.seed)
    molecules, manifest = [], []
    with tqdm(total=args.num, unit="mol", desc="generating") as bar:
        while len(molecules) < args.num:
            n = min(args.batch_size, args.num - len(molecules))
            t0 = time.perf_counter()
            batch = pipe(n, generator=generator, batch_size=n, **overrides)
            per = (time.perf_counter() - t0) / n
            for mol in batch:
                i = len(molecules)
                mol.name = f"octgen_{args.seed}_{i:06d}"
                molecules.append(mol)
                # Molecules of one batch are sampled together: each gets the batch time / batch size.
                manifest.append({"index": i, "seed": args.seed, "num_atoms": len(mol), "seconds": round(per, 6)})
            bar.update(n)
    out.mkdir(parents=True, exist_ok=True)
    write_sdf(molecules, out / "molecules.sdf")
    with atomic_path(out / "manifest.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in manifest))
    print(f"wrote {len(molecules)} molecules to {out / 'molecules.sdf'} and {out / 'manifest.jsonl'}")
    return 0


# --------------------------------------------------------------------------- shapes
_SHAPE_EPILOG = """\
seeds: item k (its manifest "index") is sampled alone, with its own generator
seeded S + k, where items are numbered prompt by prompt (or sketch by sketch),
--num per condition. So any item can be made again on its own: the same
condition with --seed S+k --num 1 gives the same mesh (same checkpoint, steps,
temperature and guidance).

manifest.jsonl, one line per item: index, prompt, sketch (the one not used is
null), seed, guidance (null when unconditional), steps, temperature, files
(names in DIR; [] when no surface was decoded), empty, watertight, faces,
seconds (wall clock, including writing the file) and timings (seconds per
pipeline stage).

examples:
  octgen generate shape --prompt "a round table with three legs" --num 4 --out tables
  octgen generate shape --sketches my_drawings/ --format obj --out from_sketches
  octgen generate shape --num 8 --seed 100 --out unconditional
"""


def _add_shape_parser(gsub) -> None:
    import argparse

    s = gsub.add_parser(
        "shape", help="generate 3D meshes from a prompt, a sketch or nothing",
        description="Generate watertight meshes from text prompts, sketch images, or unconditionally "
                    "(no condition flag). Writes DIR/shape_{index:04d}.{format} per item and "
                    "DIR/manifest.jsonl. All inputs are checked before anything is generated.",
        epilog=_SHAPE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cond = s.add_mutually_exclusive_group()
    cond.add_argument("--prompt", metavar="TEXT", help="one text prompt")
    cond.add_argument("--prompts", metavar="FILE",
                      help="UTF-8 text file, one prompt per line (blank lines and lines starting with '#' skipped)")
    cond.add_argument("--sketch", metavar="IMAGE", help="one sketch image (dark strokes on a light background)")
    cond.add_argument("--sketches", metavar="DIR",
                      help="a folder: every .png/.jpg/.jpeg/.webp/.bmp in it, in sorted name order")
    s.add_argument("--num", type=int_in_range(1, 1_000_000), default=1,
                   help="shapes per prompt / sketch, or unconditional shapes (default 1)")
    s.add_argument("--seed", type=int_in_range(0, MAX_SEED), default=0,
                   help="seed S of the first item; item k uses S + k (default 0)")
    s.add_argument("--guidance", type=_positive_float, default=None, metavar="G",
                   help="classifier-free guidance weight, a finite number >= 0 (0: ignore the condition, "
                        "1: no extra guidance; default: the checkpoint's); needs a prompt or sketch")
    s.add_argument("--format", choices=SHAPE_FORMATS, default="glb", help="mesh file format (default glb)")
    s.add_argument("--out", required=True, metavar="DIR", help="output folder (made if missing)")
    _add_checkpoint_and_sampling(s, f"shape pipeline folder (default: the shipped {DEFAULT_SHAPE_CHECKPOINT})")
    s.set_defaults(func=run_shape)


def _check_out_dir(out: Path) -> None:
    """``out`` is, or can be made as, a writable folder (checked before any work)."""
    import os

    from ..errors import InputError

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"--out {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: {parent} is not writable")


def read_prompts_file(path: str | Path) -> list[str]:
    """Prompts of a UTF-8 text file, one per line; blank lines and ``#`` comments skipped.

    Raises:
        InputError: missing / non-UTF-8 file, a bad prompt (named by line number), or no prompts.
    """
    from ..condition.text import check_prompt
    from ..errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"--prompts {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"--prompts {path}: not UTF-8 text") from None
    except OSError as e:
        raise InputError(f"--prompts {path}: unreadable ({e.strerror or type(e).__name__})") from None
    prompts = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            prompts.append(check_prompt(line))
        except InputError as e:
            raise InputError(f"{path}, line {lineno}: {e}") from None
    if not prompts:
        raise InputError(f"--prompts {path}: no prompts (every line is blank or a '#' comment)")
    return prompts


def list_sketches(folder: str | Path) -> list[Path]:
    """The sketch images of a folder (png/jpg/jpeg/webp/bmp, hidden files skipped), sorted by name."""
    from ..condition.sketch import SKETCH_SUFFIXES
    from ..errors import InputError

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--sketches {folder}: not a folder")
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in SKETCH_SUFFIXES and not p.name.startswith(".") and p.is_file())
    if not files:
        raise InputError(f"--sketches {folder}: no sketch images ({', '.join(SKETCH_SUFFIXES)}) in it")
    return files


def _sketch_tensor(path: Path, size: int):
    """A sketch file -> its preprocessed (1, size, size) tensor; errors name the file."""
    from ..condition.sketch import load_sketch_image, preprocess_sketch
    from ..errors import InputError

    if path.is_dir():
        raise InputError(f"--sketch {path}: is a folder (use --sketches DIR for a folder of sketches)")
    image = load_sketch_image(path)  # its errors name the file already
    try:
        return preprocess_sketch(image, size)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None


def _load_shape_pipeline(checkpoint: str | None):
    from ..errors import InputError
    from ..pipeline.shape import ShapePipeline

    if checkpoint is None:
        ckpt = default_shape_checkpoint()
        if not (ckpt / "pipeline.json").is_file():
            raise InputError(f"the shipped shape checkpoint {DEFAULT_SHAPE_CHECKPOINT} is not in this install; "
                             f"pass --checkpoint DIR (a shape pipeline folder)")
        return ShapePipeline.from_pretrained(ckpt)
    return ShapePipeline.from_pretrained(Path(checkpoint))


def _shape_conditions(args) -> tuple[list[str] | None, list[Path] | None]:
    """(prompts, sketch paths) named by the flags; both None when unconditional."""
    from ..condition.text import check_prompt

    if args.prompt is not None:
        return [check_prompt(args.prompt)], None
    if args.prompts is not None:
        return read_prompts_file(args.prompts), None
    if args.sketch is not None:
        return None, [Path(args.sketch)]
    if args.sketches is not None:
        return None, list_sketches(args.sketches)
    return None, None


def _prepare_shapes(args):
    """Check every input (cheapest first) and load the pipeline; nothing is written.

    Returns:
        (pipe, conditions, sampler overrides, manifest settings); ``conditions`` is one
        dict per prompt / sketch (a single one when unconditional) with the pipeline
        keyword in ``call`` and the manifest's ``prompt`` and ``sketch``.
    """
    from ..condition.sketch import SKETCH_SIZE
    from ..errors import InputError

    _check_out_dir(Path(args.out))
    prompts, sketch_paths = _shape_conditions(args)
    conditional = prompts is not None or sketch_paths is not None
    if args.guidance is not None and not conditional:
        raise InputError("--guidance needs --prompt, --prompts, --sketch or --sketches "
                         "(unconditional shapes have nothing to guide towards)")
    total = len(prompts or sketch_paths or [None]) * args.num
    if args.seed + total - 1 > MAX_SEED:
        raise InputError(f"--seed {args.seed}: the {total} items would use seeds up to {args.seed + total - 1}, "
                         f"above the largest seed {MAX_SEED}")
    # Sketch files are checked before the (slower) checkpoint load, at the usual size.
    sketches = [_sketch_tensor(p, SKETCH_SIZE) for p in sketch_paths or []]
    pipe = _load_shape_pipeline(args.checkpoint)
    size = pipe.conditioner.sketch_config.image_size
    if sketch_paths and size != SKETCH_SIZE:
        sketches = [_sketch_tensor(p, size) for p in sketch_paths]
    if prompts is not None:
        pipe.condition(prompts=prompts[:1])  # loads the text encoder and checks its width
        conditions = [{"call": {"prompt": p}, "prompt": p, "sketch": None} for p in prompts]
    elif sketch_paths is not None:
        conditions = [{"call": {"sketch": t}, "prompt": None, "sketch": str(p)}
                      for p, t in zip(sketch_paths, sketches)]
    else:
        conditions = [{"call": {}, "prompt": None, "sketch": None}]

    overrides = {}
    if args.steps is not None:
        overrides["steps"] = None if args.steps == 0 else args.steps
    if args.temperature is not None:
        overrides["temperature"] = args.temperature
    if args.guidance is not None:
        overrides["guidance_scale"] = args.guidance
    cfg = pipe.sampler_config
    settings = {"guidance": overrides.get("guidance_scale", cfg.guidance_scale) if conditional else None,
                "steps": overrides.get("steps", cfg.steps),
                "temperature": overrides.get("temperature", cfg.temperature)}
    return pipe, conditions, overrides, settings


def _make_shape(pipe, condition: dict, index: int, seed: int, out: Path, fmt: str, overrides: dict,
                settings: dict) -> dict:
    """Generate item ``index`` alone (B = 1, its own generator) and write its mesh;
    returns its manifest line."""
    import time

    import torch

    from ..export.mesh import save_mesh

    t0 = time.perf_counter()
    [result] = pipe(**condition["call"], num=1, generator=torch.Generator().manual_seed(seed), **overrides)
    mesh = result.mesh
    empty = len(mesh.faces) == 0
    files = []
    if not empty:
        files.append(f"shape_{index:04d}.{fmt}")
        save_mesh(mesh, out / files[0])
    return {"index": index, "prompt": condition["prompt"], "sketch": condition["sketch"], "seed": seed,
            **settings, "files": files, "empty": empty, "watertight": bool(not empty and mesh.is_watertight),
            "faces": int(len(mesh.faces)), "seconds": round(time.perf_counter() - t0, 6),
            "timings": {stage: round(float(t), 6) for stage, t in result.timings.items()}}


def run_shape(args) -> int:
    import json
    import sys

    from tqdm import tqdm

    from ..export.atomic import atomic_path

    pipe, conditions, overrides, settings = _prepare_shapes(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    try:
        with tqdm(total=len(conditions) * args.num, unit="shape", desc="generating", file=sys.stderr) as bar:
            for ci, condition in enumerate(conditions):
                for k in range(args.num):
                    index = ci * args.num + k
                    manifest.append(_make_shape(pipe, condition, index, args.seed + index, out, args.format,
                                                overrides, settings))
                    bar.update(1)
    finally:
        # Also on Ctrl-C: the manifest then lists exactly the items whose files exist.
        if manifest:
            with atomic_path(out / "manifest.jsonl") as tmp:
                tmp.write_text("".join(json.dumps(r) + "\n" for r in manifest))

    n_empty = sum(r["empty"] for r in manifest)
    if n_empty:
        print(f"octgen: warning: {n_empty} of {len(manifest)} shapes came out empty (no surface decoded); "
              f"no file was written for them (\"empty\": true in the manifest)", file=sys.stderr)
    written = [f for r in manifest for f in r["files"]]
    where = (f"{out / written[0]} .. {written[-1]}" if len(written) > 1 else
             str(out / written[0]) if written else "no mesh files")
    print(f"wrote {len(written)} {args.format} meshes ({where}) and {out / 'manifest.jsonl'}")
    return 0
