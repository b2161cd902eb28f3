"""``octgen decode``: a token file back to a mesh or a molecule.

Dispatches on the token file's payload kind: ``atoms`` files go through the
molecule tokenizer their metadata describes and are written as SDF (bonds
perceived from geometry), XYZ or a ball-and-stick GLB; the others give meshes.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "decode", help="turn an octree token file back into a mesh or a molecule",
        description="Turn an octree token file into a mesh or a molecule. Structure-only token files "
                    "give the mesh of their finest occupied cells (cubes, outer faces only). Molecule "
                    "token files (payload 'atoms') give an .sdf (bonds perceived from distances), an "
                    ".xyz, or a ball-and-stick .glb, in the frame of the tokenized input file.")
    p.add_argument("input", metavar="TOKENS.npz", help="token file written by 'octgen tokenize'")
    p.add_argument("--out", required=True, metavar="OUT",
                   help="output mesh (.glb, .obj, .ply or .stl) or, for molecule tokens, .sdf, .xyz or .glb")
    p.add_argument("--tokenizer", metavar="DIR",
                   help="shape tokenizer folder for 'shape_bits' token files (default: the one named in the file)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..export.mesh import check_mesh_out_path, octree_to_voxel_mesh, save_mesh
    from ..tokenize import OctreeTokens

    tokens = OctreeTokens.load(Path(args.input))
    if tokens.payload_kind == "atoms":
        return run_molecule(args, tokens)
    out = check_mesh_out_path(args.out)
    if tokens.payload_kind == "shape_bits":
        return run_shape(args, tokens, out)
    if tokens.payload_kind != "none":
        raise InputError(f"{args.input}: payload '{tokens.payload_kind}' needs its tokenizer to decode")
    if tokens.depth == 0:
        raise InputError(f"{args.input}: token file has no levels")
    mesh = octree_to_voxel_mesh(tokens.octree())
    save_mesh(mesh, out)
    print(f"{args.input} -> {out}: {len(mesh.faces)} faces")
    return 0


def run_molecule(args, tokens) -> int:
    """Decode atom tokens with the tokenizer settings stored in their metadata."""
    from ..data.molecules import check_molecule_out_path, write_molecules
    from ..export.molecule import molecule_to_glb
    from ..tokenize.molecule import MoleculeTokenizer, MoleculeTokenizerConfig

    out = Path(args.out)
    if out.suffix.lower() not in (".sdf", ".xyz", ".glb"):
        raise InputError(f"{out}: molecule tokens decode to .sdf, .xyz or .glb")
    if out.suffix.lower() != ".glb":
        out = check_molecule_out_path(out)
    meta = tokens.meta
    settings = {k: meta[k] for k in ("elements", "cell_size", "offset_bins") if k in meta}
    try:
        tokenizer = MoleculeTokenizer.from_settings(MoleculeTokenizerConfig(depth=tokens.depth, **settings))
        molecule = tokenizer.decode(tokens, restore_frame=True)
    except InputError as e:
        raise InputError(f"{args.input}: {e}") from None
    if out.suffix.lower() == ".glb":
        molecule_to_glb(molecule, out)
    else:
        write_molecules(molecule, out)
    print(f"{args.input} -> {out}: {len(molecule)} atoms ({molecule.formula()})")
    return 0


def run_shape(args, tokens, out: Path) -> int:
    """Decode shape-tokenizer code bits to a watertight mesh (marching cubes)."""
    from ..export.mesh import save_mesh
    from ..tokenize.shape_vqvae import load_tokenizer

    name = args.tokenizer or tokens.meta.get("tokenizer_path") or tokens.meta.get("tokenizer")
    if not name:
        raise InputError(f"{args.input}: the file names no shape tokenizer; pass --tokenizer DIR")
    try:
        tokenizer = load_tokenizer(name)
    except InputError:
        if args.tokenizer or not tokens.meta.get("tokenizer"):
            raise
        tokenizer = load_tokenizer(tokens.meta["tokenizer"])  # moved checkout: look the name up instead
    expected = tokens.meta.get("config_hash")
    if expected and expected != tokenizer.config_hash():
        raise InputError(f"{args.input}: made by tokenizer config {expected}, but {name} has "
                         f"{tokenizer.config_hash()}; pass the matching --tokenizer")
    try:
        mesh = tokenizer.decode(tokens)
    except ValueError as e:
        raise InputError(f"{args.input}: {e}") from None
    if len(mesh.faces) == 0:
        raise InputError(f"{args.input}: the decoded shape is empty (no surface)")
    save_mesh(mesh, out)
    print(f"{args.input} -> {out}: {len(mesh.faces)} faces, watertight {mesh.is_watertight}")
    return 0
