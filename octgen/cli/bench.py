"""``octgen bench NAME``: print the figures the README quotes."""
from __future__ import annotations

import importlib
import json
import sys

BENCHES = {
    "molecules": ("octgen.bench.molecules", "QM9 generator: quality, molecules/s, steps curve, cache"),
    "molecule-curve": ("octgen.bench.curve", "train a molecule generator in chunks, scoring its EMA weights after each"),
    "molecule-sampler": ("octgen.bench.sampler_sweep", "compare sampler settings of a molecule checkpoint on validation seeds"),
    "shape-curve": ("octgen.bench.shape_curve", "train a shape generator in chunks, scoring its EMA weights after each"),
    "shape-stages": ("octgen.bench.shape_stages", "shape generator: teacher-forced accuracy per level vs baselines, IoU per stage"),
    "shape-sheets": ("octgen.bench.sheets", "contact sheet and sketch sheet PNGs of a shape checkpoint (pyvista, off-screen)"),
    "train-step": ("octgen.bench.train_step", "seconds and CPU-seconds per training step of a config, fp32 vs bf16 autocast"),
    "octree": ("octgen.bench.octree", "octree build + serialise and neighbour-table speed"),
    "shapes-data": ("octgen.bench.shapes_data", "procedural shapes -> surface octree shards, shapes/s"),
    "mesh-sdf": ("octgen.bench.mesh_sdf", "real meshes -> SDF grids: sign agreement, Chamfer, watertightness"),
    "qm9-tokenizer": ("octgen.bench.qm9_tokenizer", "molecule tokenizer round trip, collisions and token counts on QM9"),
    "tokenizer": ("octgen.bench.tokenizer", "shape tokenizer: reconstruction IoU / Chamfer / normals, tokens, speed"),
    "shapes": ("octgen.bench.shapes", "shape generator: prompt / sketch fidelity, MMD / COV / 1-NNA, text -> mesh speed"),
}


def _selected_bench(argv: list[str] | None) -> str | None:
    """The bench named on the command line (``octgen bench NAME ...``), if any."""
    argv = sys.argv[1:] if argv is None else argv
    if "bench" in argv:
        rest = argv[argv.index("bench") + 1:]
        return next((a for a in rest if not a.startswith("-")), None)
    return None


def add_parser(sub, argv: list[str] | None = None) -> None:
    p = sub.add_parser("bench", help="run a benchmark and print its figures",
                       description="Run a benchmark and print the figures the README quotes.")
    bsub = p.add_subparsers(dest="bench", metavar="BENCH", required=True, parser_class=type(p))
    selected = _selected_bench(argv)
    for name, (module, help_text) in BENCHES.items():
        bp = bsub.add_parser(name, help=help_text, description=help_text)
        # Bench modules import torch and friends: only the one being run (or asked
        # for --help) registers its options, so 'octgen --help' stays fast.
        if name == selected:
            importlib.import_module(module).add_arguments(bp)
        bp.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
        bp.set_defaults(func=run, bench_module=module)


def run(args) -> int:
    from ..export.atomic import atomic_path

    result = importlib.import_module(args.bench_module).run(args)
    if args.json:
        # The options the bench ran with, so the file says how to regenerate it.
        options = {k: v for k, v in vars(args).items()
                   if k not in ("func", "bench_module", "json", "command", "bench") and isinstance(v, (str, int, float, bool, list, type(None)))}
        result = {**result, "command": f"octgen bench {args.bench}", "options": options}
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(result, indent=2))
    return 0
