"""``octgen decode``: a token file back to a mesh."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "decode", help="turn an octree token file back into a mesh",
        description="Turn an octree token file into a mesh. Structure-only token files give the "
                    "mesh of their finest occupied cells (cubes, outer faces only).")
    p.add_argument("input", metavar="TOKENS.npz", help="token file written by 'octgen tokenize'")
    p.add_argument("--out", required=True, metavar="MESH", help="output mesh (.glb, .obj, .ply or .stl)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..export.mesh import check_mesh_out_path, octree_to_voxel_mesh, save_mesh
    from ..tokenize import OctreeTokens

    out = check_mesh_out_path(args.out)
    tokens = OctreeTokens.load(Path(args.input))
    if tokens.payload_kind != "none":
        raise InputError(f"{args.input}: payload '{tokens.payload_kind}' needs its tokenizer to decode")
    if tokens.depth == 0:
        raise InputError(f"{args.input}: token file has no levels")
    mesh = octree_to_voxel_mesh(tokens.octree())
    save_mesh(mesh, out)
    print(f"{args.input} -> {out}: {len(mesh.faces)} faces")
    return 0
