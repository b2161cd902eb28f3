"""``octgen generate shape|molecule``: sample with a trained pipeline folder.

``octgen generate shape [--prompt TEXT | --prompts FILE | --sketch IMAGE | --sketches DIR] --out DIR``
writes ``DIR/shape_{index:04d}.{format}`` (one mesh per item) and ``DIR/manifest.jsonl``.
Every input is checked before anything is generated; each mesh is written
atomically as soon as it is made, the manifest atomically at the end.

``octgen generate molecule --num N --seed S --out DIR`` writes ``DIR/molecules.sdf``
(all molecules, in order) and ``DIR/manifest.jsonl`` (one line per molecule: index,
seed, batch, row, formula, SMILES, validity, stability, atoms, seconds).

Both commands are resumable and can be split over processes: finished work units
(one shape, or one batch of molecules) are recorded in ``DIR/.octgen-parts/`` (each
unit's files written atomically, its record last), ``--resume`` skips the recorded
units of a run with the same settings, and the final files are assembled from the
units once all are done (then the parts folder is removed). Under ``accelerate
launch --multi_gpu --num_processes P`` process ``p`` makes the units ``u`` with
``u % P == p`` (sampling on its CPU); the main process assembles. A run killed at any point (even SIGKILL) leaves no
half-written or duplicate output, and its rerun with ``--resume`` gives the same
files as an uninterrupted run.
"""
from __future__ import annotations

import json
from pathlib import Path

from .._args import int_in_range
from ..weights import DEFAULT_CHECKPOINT, DEFAULT_SHAPE_CHECKPOINT, default_checkpoint, default_shape_checkpoint

PARTS_DIR = ".octgen-parts"

SHAPE_FORMATS = ("glb", "obj", "ply", "stl")
MAX_SEED = 2**63 - 1


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


def _add_resume(p) -> None:
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out (same settings): finished items are kept, "
                        "the rest made; without it a previous run's unfinished parts are discarded")


class _Parts:
    """The finished work units of one run, recorded in ``DIR/.octgen-parts``.

    A unit is finished when its record ``unit_{u:06d}.jsonl`` (its manifest lines)
    exists; the record is written atomically after the unit's files. ``run.json``
    holds the run's settings, so ``--resume`` refuses to mix runs.
    """

    def __init__(self, out: Path, settings: dict, resume: bool, state):
        self.dir, self.state = out / PARTS_DIR, state
        self.settings = json.loads(json.dumps(settings))
        if state.is_main_process:
            self._start(resume)
        state.wait_for_everyone()
        self._check()

    def _start(self, resume: bool) -> None:
        import shutil

        from ..export.atomic import atomic_path

        if not resume:
            shutil.rmtree(self.dir, ignore_errors=True)
        # Temporary files of atomic writes cut short by a kill (SIGKILL skips their clean-up).
        for folder in (self.dir.parent, self.dir):
            for tmp in folder.glob(".*.part*") if folder.is_dir() else []:
                tmp.unlink(missing_ok=True)
        if not (self.dir / "run.json").is_file():
            with atomic_path(self.dir / "run.json") as tmp:
                tmp.write_text(json.dumps(self.settings, indent=1) + "\n")

    def _check(self) -> None:
        from ..errors import InputError

        try:
            recorded = json.loads((self.dir / "run.json").read_text())
        except (OSError, ValueError):
            raise InputError(f"{self.dir / 'run.json'}: unreadable run record; rerun without --resume") from None
        if recorded != self.settings:
            changed = sorted(k for k in set(recorded) | set(self.settings) if recorded.get(k) != self.settings.get(k))
            raise InputError(f"--resume: {self.dir.parent} holds a run with other settings "
                             f"({', '.join(changed)} differ); use the same flags, or rerun without --resume")

    def path(self, unit: int) -> Path:
        return self.dir / f"unit_{unit:06d}.jsonl"

    def done(self, unit: int) -> bool:
        return self.path(unit).is_file()

    def mine(self, units: int) -> list[int]:
        """This process's unfinished units."""
        return [u for u in range(units)
                if u % self.state.num_processes == self.state.process_index and not self.done(u)]

    def finish(self, unit: int, lines: list[dict]) -> None:
        _write_jsonl(self.path(unit), lines)

    def lines(self, units: int) -> list[dict]:
        """Manifest lines of the finished units, in unit order."""
        return [json.loads(line) for u in range(units) if self.done(u)
                for line in self.path(u).read_text().splitlines()]

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def _process_state():
    """accelerate's process state: one process, or this process's rank among those
    started by ``accelerate launch --multi_gpu --num_processes P`` (torchrun; on a
    machine without GPUs too). The pipelines sample on the CPU, so the processes
    meet over gloo. (``accelerate launch --cpu --num_processes P`` starts a single
    process in accelerate 1.15 unless MPI is installed.)"""
    from accelerate import PartialState

    return PartialState(cpu=True)


def _write_jsonl(path: Path, lines: list[dict]) -> None:
    """One JSON object per line, written atomically."""
    from ..export.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in lines))


def _write_manifest(out: Path, lines: list[dict]) -> None:
    _write_jsonl(out / "manifest.jsonl", lines)


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
                   help="molecules sampled together (default 500); batch b uses seed S + b")
    _add_resume(m)
    m.set_defaults(func=run_molecule)
    a = gsub.add_parser("sample", help="sample any pipeline folder (its modality writes the files)",
                        description="Sample unconditionally from a pipeline folder of any modality: the "
                                    "modality named in its pipeline.json writes the outputs into DIR and "
                                    "DIR/metrics.json gets its evaluation of them.")
    a.add_argument("--checkpoint", metavar="DIR", required=True, help="pipeline folder")
    a.add_argument("--num", type=int_in_range(1, 100_000), default=4, help="number of samples (default 4)")
    a.add_argument("--seed", type=int_in_range(0, MAX_SEED), default=0, help="random seed (default 0)")
    a.add_argument("--out", required=True, metavar="DIR", help="output folder")
    a.add_argument("--steps", type=int_in_range(0, 100_000), default=None,
                   help="unmasking steps per octree level (default: the checkpoint's; 0 = one token per step)")
    a.set_defaults(func=run_sample)


def run_sample(args) -> int:
    """Generate ``--num`` samples with one generator seeded ``--seed``; the files come
    from the checkpoint's modality (:meth:`octgen.modality.Modality.write_outputs`)."""
    import torch

    from ..export.atomic import atomic_path
    from ..modality import get_modality
    from ..pipeline.pipeline import OctGenPipeline, read_pipeline_info

    out = Path(args.out)
    _check_out_dir(out)
    modality = get_modality(read_pipeline_info(args.checkpoint).get("modality"))
    pipe = OctGenPipeline.from_pretrained(args.checkpoint)
    overrides = {} if args.steps is None else {"steps": None if args.steps == 0 else args.steps}
    outputs = pipe(args.num, generator=torch.Generator().manual_seed(args.seed), **overrides)
    out.mkdir(parents=True, exist_ok=True)
    files = modality.write_outputs(outputs, out)
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps({"checkpoint": str(args.checkpoint), "num": args.num, "seed": args.seed,
                                   "modality": modality.name, "files": files,
                                   "metrics": modality.evaluate(outputs)}, indent=2) + "\n")
    print(f"wrote {len(files)} file(s) and {out / 'metrics.json'}")
    return 0


def run_molecule(args) -> int:
    """Batch b (molecules b * B .. b * B + B - 1, B = --batch-size) is sampled with its
    own generator seeded S + b: it is the resumable unit, and any molecule can be
    made again from its manifest line (``--seed <seed> --num <batch size> --batch-size
    <batch size>``, then its ``row``)."""
    import time

    import torch
    from tqdm import tqdm

    from ..data.molecules import write_sdf
    from ..errors import InputError
    from ..export.atomic import atomic_path
    from ..metrics.molecules import evaluate_molecule
    from ..tokenize.molecule import MoleculeTokenizer

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    ckpt = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    if args.seed + (args.num - 1) // args.batch_size > MAX_SEED:
        raise InputError(f"--seed {args.seed}: the batches would use seeds above the largest seed {MAX_SEED}")
    pipe = _load_pipeline_of_kind(ckpt, MoleculeTokenizer.payload_kind, "molecule")
    overrides = {}
    if args.steps is not None:
        overrides["steps"] = None if args.steps == 0 else args.steps
    if args.temperature is not None:
        overrides["temperature"] = args.temperature
    state = _process_state()
    settings = {"command": "molecule", "num": args.num, "seed": args.seed, "batch_size": args.batch_size,
                "checkpoint": str(ckpt.resolve()), "steps": args.steps, "temperature": args.temperature}
    out.mkdir(parents=True, exist_ok=True)
    parts = _Parts(out, settings, args.resume, state)
    batches = -(-args.num // args.batch_size)
    mine = parts.mine(batches)
    with tqdm(total=sum(min(args.batch_size, args.num - b * args.batch_size) for b in mine), unit="mol",
              desc="generating", disable=not state.is_main_process) as bar:
        for b in mine:
            n, seed = min(args.batch_size, args.num - b * args.batch_size), args.seed + b
            t0 = time.perf_counter()
            batch = pipe(n, generator=torch.Generator().manual_seed(seed), batch_size=n, **overrides)
            per = (time.perf_counter() - t0) / n
            lines = []
            for row, mol in enumerate(batch):
                index = b * args.batch_size + row
                mol.name = f"octgen_{args.seed}_{index:06d}"
                facts = evaluate_molecule(mol) if len(mol) else {"smiles": None, "stable": False}
                # Molecules of one batch are sampled together: each gets the batch time / batch size.
                lines.append({"index": index, "seed": seed, "batch": b, "row": row, "formula": mol.formula(),
                              "smiles": facts["smiles"], "valid": facts["smiles"] is not None,
                              "stable": bool(facts["stable"]), "num_atoms": len(mol), "seconds": round(per, 6)})
            write_sdf(batch, parts.dir / f"unit_{b:06d}.sdf")
            parts.finish(b, lines)
            bar.update(n)
    state.wait_for_everyone()
    if not state.is_main_process:
        return 0
    manifest = parts.lines(batches)
    if len(manifest) != args.num:
        raise InputError(f"{out}: {len(manifest)} of {args.num} molecules were made; rerun with --resume")
    with atomic_path(out / "molecules.sdf") as tmp:
        with open(tmp, "w") as f:
            for b in range(batches):
                f.write((parts.dir / f"unit_{b:06d}.sdf").read_text())
    _write_manifest(out, manifest)
    parts.close()
    split = f" ({state.num_processes} processes)" if state.num_processes > 1 else ""
    print(f"wrote {args.num} molecules to {out / 'molecules.sdf'} and {out / 'manifest.jsonl'}{split}")
    return 0


# --------------------------------------------------------------------------- shapes
_SHAPE_EPILOG = """\
seeds: item k (its manifest "index") is sampled alone, with its own generator
seeded S + k, where items are numbered prompt by prompt (or sketch by sketch),
--num per condition. So any item can be made again on its own: the same
condition with --seed S+k --num 1 gives the same mesh (same checkpoint, steps,
temperature and guidance).

manifest.jsonl, one line per item: index, prompt, sketch (the one not used is
null), seed, guidance (null when unconditional), steps, temperature, connect, files
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
    s.add_argument("--connect", type=int_in_range(0, 4096), default=None, metavar="N",
                   help="whole objects: join each octree level's cells into one part with at most N added cells "
                        "per stray part and draw again the leaf codes where the mesh comes apart (0: off; "
                        "default: the checkpoint's)")
    s.add_argument("--format", choices=SHAPE_FORMATS, default="glb", help="mesh file format (default glb)")
    s.add_argument("--out", required=True, metavar="DIR", help="output folder (made if missing)")
    _add_checkpoint_and_sampling(s, f"shape pipeline folder (default: the shipped {DEFAULT_SHAPE_CHECKPOINT})")
    _add_resume(s)
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


def _load_pipeline_of_kind(folder: Path, payload_kind: str, what: str):
    """The pipeline in ``folder`` when its tokenizer makes ``payload_kind`` tokens
    (checked before any weights are read)."""
    from ..errors import InputError
    from ..pipeline.pipeline import OctGenPipeline, read_pipeline_info

    info = read_pipeline_info(folder)
    if info.get("payload_kind") != payload_kind:
        raise InputError(f"{folder}: a '{info.get('modality')}' checkpoint, not a {what} one")
    return OctGenPipeline.from_pretrained(folder)


def _load_shape_pipeline(checkpoint: str | None):
    from ..errors import InputError
    from ..tokenize.shape_vqvae import ShapeVQVAE

    if checkpoint is None:
        ckpt = default_shape_checkpoint()
        if not (ckpt / "pipeline.json").is_file():
            raise InputError(f"the shipped shape checkpoint {DEFAULT_SHAPE_CHECKPOINT} is not in this install; "
                             f"pass --checkpoint DIR (a shape pipeline folder)")
        return _load_pipeline_of_kind(ckpt, ShapeVQVAE.payload_kind, "shape")
    return _load_pipeline_of_kind(Path(checkpoint), ShapeVQVAE.payload_kind, "shape")


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
    if args.connect is not None:
        overrides["connect"] = args.connect
    cfg = pipe.sampler_config
    settings = {"guidance": overrides.get("guidance_scale", cfg.guidance_scale) if conditional else None,
                "steps": overrides.get("steps", cfg.steps),
                "temperature": overrides.get("temperature", cfg.temperature),
                "connect": overrides.get("connect", cfg.connect)}
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
    import sys

    from tqdm import tqdm

    pipe, conditions, overrides, settings = _prepare_shapes(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = _process_state()
    total = len(conditions) * args.num
    run = {"command": "shape", "conditions": [[c["prompt"], c["sketch"]] for c in conditions], "num": args.num,
           "seed": args.seed, "format": args.format, "checkpoint": str(Path(args.checkpoint).resolve())
           if args.checkpoint else None, **settings}
    parts = _Parts(out, run, args.resume, state)
    mine = parts.mine(total)
    try:
        with tqdm(total=len(mine), unit="shape", desc="generating", file=sys.stderr,
                  disable=not state.is_main_process) as bar:
            for index in mine:
                condition = conditions[index // args.num]
                line = _make_shape(pipe, condition, index, args.seed + index, out, args.format, overrides, settings)
                parts.finish(index, [line])
                bar.update(1)
    finally:
        # Also on Ctrl-C (one process): the manifest then lists exactly the finished items;
        # the parts stay for --resume.
        if state.num_processes == 1 and parts.lines(total):
            _write_manifest(out, parts.lines(total))
    state.wait_for_everyone()
    if not state.is_main_process:
        return 0
    manifest = parts.lines(total)
    _write_manifest(out, manifest)
    parts.close()
    n_empty = sum(r["empty"] for r in manifest)
    if n_empty:
        print(f"octgen: warning: {n_empty} of {len(manifest)} shapes came out empty (no surface decoded); "
              f"no file was written for them (\"empty\": true in the manifest)", file=sys.stderr)
    written = [f for r in manifest for f in r["files"]]
    where = (f"{out / written[0]} .. {written[-1]}" if len(written) > 1 else
             str(out / written[0]) if written else "no mesh files")
    print(f"wrote {len(written)} {args.format} meshes ({where}) and {out / 'manifest.jsonl'}")
    return 0
