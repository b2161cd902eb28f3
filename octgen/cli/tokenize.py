"""``octgen tokenize``: a mesh (or a folder of meshes) to an octree token file."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ._args import depth_arg


def add_parser(sub) -> None:
    p = sub.add_parser(
        "tokenize", help="turn a mesh into an octree token file (.npz)",
        description="Turn a mesh into an octree token file: the structure tokens (8-bit child masks "
                    "of the non-empty nodes, level by level in z-order). The mesh is normalised into "
                    "[-1, 1]^3 and its surface sampled.")
    p.add_argument("input", metavar="MESH", help="mesh file (obj, ply, stl, off, glb, gltf)")
    p.add_argument("--depth", type=depth_arg, default=6, help="octree depth, 1..10 (default 6)")
    p.add_argument("--out", required=True, metavar="TOKENS.npz", help="output token file")
    p.add_argument("--seed", type=int, default=0, help="surface sampling seed (default 0)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.meshes import MESH_SUFFIXES, load_mesh
    from ..octree import mesh_to_octree
    from ..tokenize import OctreeTokens

    src, out = Path(args.input), Path(args.out)
    if out.suffix != ".npz":
        raise InputError(f"{out}: --out must end in .npz")
    if src.suffix.lower() not in MESH_SUFFIXES and src.exists() and not src.is_dir():
        raise InputError(f"{src}: unsupported input format '{src.suffix}'")
    mesh = load_mesh(src)
    octree = mesh_to_octree(mesh, args.depth, seed=args.seed)
    tokens = OctreeTokens.from_octree(octree, meta={"source": src.name, "kind": "octree"})
    tokens.save(out)
    print(f"{src} -> {out}: depth {args.depth}, {tokens.num_tokens()} tokens "
          f"(per level {tokens.tokens_per_level()})")
    return 0
