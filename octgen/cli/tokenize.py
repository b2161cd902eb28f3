"""``octgen tokenize``: a mesh or a molecule file to an octree token file.

Dispatches on the input suffix: meshes (obj, ply, stl, off, glb, gltf) give a
structure-only token file; molecules (sdf, mol, xyz) go through the molecule
tokenizer (:mod:`octgen.tokenize.molecule`) and give ``payload_kind="atoms"``.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .._args import depth_arg, int_in_range


def add_parser(sub) -> None:
    p = sub.add_parser(
        "tokenize", help="turn a mesh or a molecule into an octree token file (.npz)",
        description="Turn a mesh or a molecule into an octree token file. Meshes (obj, ply, stl, off, "
                    "glb, gltf) are normalised into [-1, 1]^3, their surface sampled, and the file holds "
                    "the structure tokens (8-bit child masks of the non-empty nodes, level by level in "
                    "z-order). Molecules (sdf, mol, xyz) are centred in a box of --cell-size * 2^depth "
                    "Angstrom, one atom per finest cell; each atom's payload is its element and its "
                    "offset inside the cell in 0.01 A bins. A file with several molecules gives one "
                    "token file per entry (OUT-0001.npz, ...) unless --entry picks one; bad entries are "
                    "reported on stderr, one line each, and skipped (--strict: the first one stops "
                    "the command before any file is written).")
    p.add_argument("input", metavar="INPUT", help="mesh (obj, ply, stl, off, glb, gltf) or molecule (sdf, mol, xyz)")
    p.add_argument("--depth", type=depth_arg, default=6, help="octree depth, 1..10 (default 6)")
    p.add_argument("--out", required=True, metavar="TOKENS.npz", help="output token file")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the mesh surface sampling or the molecule's random rotation (default 0)")
    p.add_argument("--tokenizer", metavar="DIR",
                   help="shape tokenizer folder (e.g. tokenizers/shape-vqvae-d6t4k16): meshes give its "
                        "structure tokens plus K code bits per leaf, decodable to a watertight mesh; "
                        "--depth is then the tokenizer's. INPUT may also be a folder of meshes, with --out "
                        "a folder: one token file per mesh, same relative paths")
    m = p.add_argument_group("molecules")
    m.add_argument("--entry", type=int_in_range(1, 10_000_000), metavar="K",
                   help="tokenize only entry K (from 1) of a multi-molecule file")
    m.add_argument("--elements", default="qm9", metavar="LIST",
                   help="element vocabulary: 'qm9' (H,C,N,O,F; default), 'drugs' or a comma list such as H,C,N,O,S")
    m.add_argument("--cell-size", type=float, default=0.24, metavar="A",
                   help="finest cell edge in Angstrom (default 0.24); offsets use cell/0.01 bins per axis")
    m.add_argument("--random-rotation", action="store_true",
                   help="rotate the molecule uniformly at random (from --seed) before tokenizing")
    m.add_argument("--strict", action="store_true",
                   help="stop at the first bad entry of a multi-molecule file instead of skipping it "
                        "(nothing is written then)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.meshes import MESH_SUFFIXES

    src, out = Path(args.input), Path(args.out)
    if src.is_dir():
        return run_mesh_folder(args, src, out)
    if out.suffix != ".npz":
        raise InputError(f"{out}: --out must end in .npz")
    if src.suffix.lower() in (".sdf", ".mol", ".xyz"):
        return run_molecules(args, src, out)
    if src.suffix.lower() not in MESH_SUFFIXES and src.exists() and not src.is_dir():
        raise InputError(f"{src}: unsupported input format '{src.suffix}'")
    tokenizer = _shape_tokenizer(args)
    tokens = mesh_file_to_tokens(src, args, tokenizer)
    tokens.save(out)
    print(f"{src} -> {out}: depth {tokens.depth}, {tokens.num_tokens()} tokens "
          f"(per level {tokens.tokens_per_level()})")
    return 0


def _shape_tokenizer(args):
    if not getattr(args, "tokenizer", None):
        return None
    from ..tokenize.shape_vqvae import load_tokenizer

    return load_tokenizer(args.tokenizer)


def mesh_file_to_tokens(src: Path, args, tokenizer=None):
    """Token file contents for one mesh: the bare octree at --depth, or the shape
    tokenizer's code bits when ``tokenizer`` is given."""
    from ..data.meshes import load_mesh
    from ..octree import mesh_to_octree
    from ..tokenize import OctreeTokens

    mesh = load_mesh(src)
    if tokenizer is None:
        octree = mesh_to_octree(mesh, args.depth, seed=args.seed)
        return OctreeTokens.from_octree(octree, meta={"source": src.name, "kind": "octree"})
    try:
        tokens = tokenizer.encode(mesh, seed=args.seed, meta={"source": src.name})
    except ValueError as e:
        raise InputError(f"{src}: cannot tokenize this mesh ({e})") from None
    from ..tokenize.shape_vqvae import resolve_tokenizer_dir

    tokens.meta["tokenizer_path"] = str(resolve_tokenizer_dir(args.tokenizer).resolve())
    return tokens


def run_mesh_folder(args, src: Path, out: Path) -> int:
    """Tokenize every mesh under ``src`` into ``out/<relative path>.npz``; bad
    meshes are reported on stderr, one line each, and skipped."""
    import sys

    from ..data.meshes import MESH_SUFFIXES

    if out.suffix == ".npz" or out.is_file():
        raise InputError(f"{out}: with a folder INPUT, --out must be a folder")
    files = sorted(f for f in src.rglob("*") if f.is_file() and f.suffix.lower() in MESH_SUFFIXES)
    if not files:
        raise InputError(f"{src}: no mesh files ({', '.join(MESH_SUFFIXES)}) in this folder")
    tokenizer = _shape_tokenizer(args)
    written = 0
    for f in files:
        target = out / f.relative_to(src).with_suffix(".npz")
        try:
            tokens = mesh_file_to_tokens(f, args, tokenizer)
        except InputError as e:
            print(f"octgen: warning: {' '.join(str(e).split())}; skipped", file=sys.stderr)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tokens.save(target)
        written += 1
        print(f"{f} -> {target}: {tokens.num_tokens()} tokens (per level {tokens.tokens_per_level()})")
    print(f"{written} of {len(files)} meshes tokenized into {out}")
    if written == 0:
        raise InputError(f"{src}: no mesh could be tokenized")
    return 0


def molecule_tokenizer_from_args(args):
    """The molecule tokenizer that --elements, --cell-size and --depth describe."""
    from ..tokenize.molecule import DRUG_ELEMENTS, QM9_ELEMENTS, MoleculeTokenizer, MoleculeTokenizerConfig

    named = {"qm9": QM9_ELEMENTS, "drugs": DRUG_ELEMENTS}
    elements = named.get(args.elements.lower()) or tuple(e for e in args.elements.split(",") if e.strip())
    if not 0.01 <= args.cell_size <= 10:
        raise InputError(f"--cell-size must be in [0.01, 10] Angstrom, got {args.cell_size}")
    bins = max(1, round(args.cell_size / 0.01))  # keep the offset bins at about 0.01 Angstrom
    return MoleculeTokenizer.from_settings(MoleculeTokenizerConfig(elements=elements, cell_size=args.cell_size, depth=args.depth,
                                                     offset_bins=bins))


def run_molecules(args, src: Path, out: Path) -> int:
    """Tokenize the molecules of an SDF/MOL/XYZ file (one token file per entry)."""
    import sys

    import torch

    from ..data.molecules import Molecule, read_molecule_entries

    tokenizer = molecule_tokenizer_from_args(args)
    entries = read_molecule_entries(src)
    if args.entry is not None:
        if args.entry > len(entries):
            raise InputError(f"{src}: --entry {args.entry} but the file has {len(entries)} entr"
                             f"{'y' if len(entries) == 1 else 'ies'}")
        entries = [entries[args.entry - 1]]
    single = len(entries) == 1
    # Encode every entry before writing any file, so --strict leaves nothing behind.
    encoded = []
    for k, item in entries:
        try:
            if not isinstance(item, Molecule):
                raise InputError(item)
            gen = torch.Generator().manual_seed(args.seed + k) if args.random_rotation else None
            tokens = tokenizer.encode(item, rotation="random" if args.random_rotation else None, generator=gen)
        except InputError as e:
            message = f"{src} entry {k}: {e}"
            if single or args.strict:
                raise InputError(message + (" (--strict)" if args.strict and not single else "")) from None
            print(f"octgen: warning: {message}; skipped", file=sys.stderr)
            continue
        encoded.append((k, item, tokens))
    written = 0
    for k, item, tokens in encoded:
        target = out if single else out.with_name(f"{out.stem}-{k:04d}.npz")
        tokens.meta["source"] = f"{src.name}#{k}"
        tokens.save(target)
        written += 1
        print(f"{src} entry {k} -> {target}: {len(item)} atoms, depth {tokenizer.depth}, "
              f"{tokens.num_tokens()} tokens (per level {tokens.tokens_per_level()})")
    if written == 0:
        raise InputError(f"{src}: no entry could be tokenized")
    return 0
