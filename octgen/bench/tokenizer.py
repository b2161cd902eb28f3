"""``octgen bench tokenizer``: reconstruction quality, token counts and speed of a
shape tokenizer.

- Held-out procedural test split (:mod:`octgen.data.shapes`, split "test", or
  "val" with ``--split val`` to choose between tokenizers; the result keeps the
  key ``procedural_test``, ``settings.split`` names the split): each
  shape's exact SDF is tokenized and decoded; the reference solid is ``sdf < 0``
  on a dense grid, the reference surface the marching-cubes mesh of the SDF at
  ``--ref-depth`` (finer than the tokenizer's grid).
- Real meshes shipped inside installed packages (pyvista's bundled examples,
  gradio's 3D media assets): each is normalised into [-1 + 0.05, 1 - 0.05]^3 and
  tokenized from its triangles; the reference surface is the normalised mesh, the
  reference solid its ray-parity inside (watertight meshes) or flood-fill inside
  (open meshes, as the tokenizer sees them).
- Tokens per shape per level (median, p95), bits per shape, encode / decode
  seconds per shape (wall clock, this machine's torch threads).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

# Real meshes that ship inside pip packages of this environment (no download).
REAL_MESHES = (
    ("pyvista", "examples/airplane.ply"), ("pyvista", "examples/ant.ply"), ("pyvista", "examples/nut.ply"),
    ("pyvista", "examples/sphere.ply"), ("gradio", "media_assets/models3d/Bunny.obj"),
    ("gradio", "media_assets/models3d/Duck.glb"), ("gradio", "media_assets/models3d/sofia.stl"),
    ("gradio", "media_assets/models3d/face.obj"),
)


def add_arguments(p) -> None:
    p.add_argument("--tokenizer", default="shape-vqvae-d6t4k16", help="tokenizer folder or name under tokenizers/")
    p.add_argument("--num-test", type=int, default=100, help="procedural test shapes (default 100)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="procedural split (default test; choose between tokenizers on val)")
    p.add_argument("--iou-res", type=int, default=128, help="dense grid for volumetric IoU (default 128^3)")
    p.add_argument("--ref-depth", type=int, default=7, help="reference marching-cubes depth (default 7: 128^3)")
    p.add_argument("--surface-samples", type=int, default=100_000, help="Chamfer samples per surface")
    p.add_argument("--no-real", action="store_true", help="skip the real meshes")
    p.add_argument("--flip-rates", default="", metavar="P,P,...",
                   help="also decode each test shape's codes with this share of bits flipped at random "
                        "(e.g. 0.01,0.05,0.1): IoU against the flip rate")
    p.add_argument("--no-ceiling", dest="ceiling", action="store_false",
                   help="skip the resolution ceiling (the exact SDF through the same grid and marching cubes)")


def find_real_meshes() -> list[Path]:
    """Paths of the bundled real meshes that exist in this environment."""
    import importlib.util

    out = []
    for pkg, rel in REAL_MESHES:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(list(spec.submodule_search_locations)[0]) / rel
        if path.is_file():
            out.append(path)
    return out


def _summary(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "min": float(v.min()), "max": float(v.max())}


def _token_stats(rows: list[dict]) -> dict:
    levels = np.array([r["tokens_per_level"] for r in rows])
    return {"tokens_per_level_median": np.median(levels, 0).tolist(),
            "tokens_per_level_p95": np.percentile(levels, 95, 0).tolist(),
            "tokens_median": float(np.median(levels.sum(1))), "tokens_p95": float(np.percentile(levels.sum(1), 95)),
            "payload_bits_median": float(np.median([r["payload_bits"] for r in rows])),
            "payload_bits_p95": float(np.percentile([r["payload_bits"] for r in rows], 95)),
            "total_bits_median": float(np.median([r["total_bits"] for r in rows])),
            "total_bits_p95": float(np.percentile([r["total_bits"] for r in rows], 95))}


def _encode_decode(model, shape) -> tuple[object, object, float, float]:
    t0 = time.perf_counter()
    tokens = model.encode(shape)
    t1 = time.perf_counter()
    mesh = model.decode(tokens)
    t2 = time.perf_counter()
    return tokens, mesh, t1 - t0, t2 - t1


def _row(name: str, tokens, t_enc: float, t_dec: float, metrics: dict, mesh) -> dict:
    return {"name": name, **metrics, "encode_s": t_enc, "decode_s": t_dec,
            "tokens_per_level": tokens.tokens_per_level(), "payload_bits": int(tokens.payload.numel()),
            "total_bits": int(8 * sum(s.numel() for s in tokens.structure) + tokens.payload.numel()),
            "watertight": bool(mesh.is_watertight) if len(mesh.faces) else False}


def run_procedural(model, args, flip_rates: list[float] = ()) -> list[dict]:
    """One row per test shape; with ``flip_rates``, also ``flip_iou``: the IoU of its
    codes decoded with each share of bits flipped (:func:`flip_ious`)."""
    from ..data.shapes import ShapeDataset
    from ..metrics.shapes import compare_meshes, sdf_occupancy_grid
    from ..data.grid import grid_to_mesh, sdf_grid

    ds = ShapeDataset(args.split, size=args.num_test, seed=args.seed)
    rows = []
    for i in range(len(ds)):
        s = ds[i]
        tokens, mesh, t_enc, t_dec = _encode_decode(model, s.sdf)
        ref_occ = sdf_occupancy_grid(s.sdf, args.iou_res)
        ref_mesh = grid_to_mesh(sdf_grid(s.sdf, 1 << args.ref_depth, sampling="centre"), sampling="centre")
        m = compare_meshes(ref_mesh, ref_occ, mesh, n_surface=args.surface_samples, seed=i)
        row = _row(f"{s.category}-{s.index}", tokens, t_enc, t_dec, m, mesh)
        row["category"] = s.category
        if args.ceiling:
            depth = model.output_depth
            exact = grid_to_mesh(sdf_grid(s.sdf, 1 << depth, sampling="centre"), sampling="centre")
            c = compare_meshes(ref_mesh, ref_occ, exact, n_surface=args.surface_samples, seed=i)
            row["ceiling_iou"], row["ceiling_chamfer_l1"] = c["iou"], c["chamfer_l1"]
        if flip_rates:
            row["flip_iou"] = flip_ious(model, tokens, ref_occ, flip_rates, args.iou_res, i)
        rows.append(row)
        print(f"  {row['name']:<22} IoU {m['iou']:.4f}  CD-L1 {m['chamfer_l1']:.5f}  NC {m['normal_consistency']:.4f}  "
              f"enc {t_enc:.2f}s dec {t_dec:.2f}s  tokens {row['tokens_per_level']}", flush=True)
    return rows


def parse_rates(text: str) -> list[float]:
    from ..errors import InputError

    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--flip-rates must be comma-separated numbers, got {text!r}") from None
    if any(not 0 <= r <= 1 for r in rates):
        raise InputError(f"--flip-rates must lie in 0..1, got {text!r}")
    return rates


def flip_bits(tokens, rate: float, generator):
    """``tokens`` with each payload bit flipped with probability ``rate``."""
    import torch

    from ..tokenize.tokens import OctreeTokens

    flips = torch.rand(tokens.payload.shape, generator=generator) < rate
    return OctreeTokens(tokens.structure, tokens.payload ^ flips.to(tokens.payload.dtype), tokens.payload_kind,
                        tokens.meta)


def flip_ious(model, tokens, ref_occ, rates: list[float], iou_res: int, seed: int) -> dict:
    """Volumetric IoU of one shape decoded from its codes with each share of bits flipped."""
    import torch

    from ..metrics.shapes import mesh_occupancy_grid, volumetric_iou

    return {str(r): volumetric_iou(ref_occ, mesh_occupancy_grid(
        model.decode(flip_bits(tokens, r, torch.Generator().manual_seed(seed))), iou_res)) for r in rates}


def run_real(model, args) -> list[dict]:
    from ..data.meshes import load_mesh
    from ..metrics.shapes import compare_meshes, mesh_occupancy_grid, sdf_occupancy_grid
    from ..octree.mesh import normalize_mesh
    from ..tokenize.shape_sdf import mesh_to_sdf_fn

    rows = []
    for path in find_real_meshes():
        mesh = normalize_mesh(load_mesh(path), 0.05)
        tokens, recon, t_enc, t_dec = _encode_decode(model, mesh)
        if mesh.is_watertight:
            ref_occ = mesh_occupancy_grid(mesh, args.iou_res)
        else:
            ref_occ = sdf_occupancy_grid(mesh_to_sdf_fn(mesh), args.iou_res)
        m = compare_meshes(mesh, ref_occ, recon, n_surface=args.surface_samples)
        row = _row(path.name, tokens, t_enc, t_dec, m, recon)
        row["source_watertight"] = bool(mesh.is_watertight)
        rows.append(row)
        print(f"  {path.name:<22} IoU {m['iou']:.4f}  CD-L1 {m['chamfer_l1']:.5f}  NC {m['normal_consistency']:.4f}  "
              f"enc {t_enc:.2f}s dec {t_dec:.2f}s  watertight in/out {mesh.is_watertight}/{row['watertight']}",
              flush=True)
    return rows


def _aggregate(rows: list[dict]) -> dict:
    return {"count": len(rows), "iou": _summary([r["iou"] for r in rows]),
            "chamfer_l1": _summary([r["chamfer_l1"] for r in rows]),
            "normal_consistency": _summary([r["normal_consistency"] for r in rows]),
            "encode_s": _summary([r["encode_s"] for r in rows]), "decode_s": _summary([r["decode_s"] for r in rows]),
            "watertight_fraction": float(np.mean([r["watertight"] for r in rows])), **_token_stats(rows)}


def run(args) -> dict:
    from ..errors import InputError
    from ..tokenize.shape_vqvae import load_tokenizer, resolve_tokenizer_dir
    from .timing import machine_summary

    if args.num_test < 1 or not 16 <= args.iou_res <= 512 or not 5 <= args.ref_depth <= 9:
        raise InputError("need --num-test >= 1, --iou-res in 16..512 and --ref-depth in 5..9")
    rates = parse_rates(args.flip_rates)  # checked before the long run, not after it
    model = load_tokenizer(args.tokenizer)
    cfg = model.config
    print(f"machine: {machine_summary()}")
    print(f"tokenizer {resolve_tokenizer_dir(args.tokenizer)}: fine depth {cfg.fine_depth}, token depth "
          f"{cfg.token_depth}, {cfg.code_bits} bits per token")
    print(f"procedural {args.split} split ({args.num_test} shapes):")
    proc = run_procedural(model, args, rates)
    result = {"bench": "tokenizer", "machine": machine_summary(), "tokenizer": cfg.name,
              "settings": {"num_test": args.num_test, "iou_res": args.iou_res, "ref_depth": args.ref_depth,
                           "surface_samples": args.surface_samples, "seed": args.seed, "split": args.split},
              "procedural_test": _aggregate(proc)}
    if args.ceiling:
        result["procedural_ceiling"] = {"iou": _summary([r["ceiling_iou"] for r in proc]),
                                        "chamfer_l1": _summary([r["ceiling_chamfer_l1"] for r in proc])}
    cats = sorted({r["category"] for r in proc})
    result["procedural_by_category"] = {
        c: {"count": sum(r["category"] == c for r in proc),
            "iou_mean": float(np.mean([r["iou"] for r in proc if r["category"] == c])),
            "chamfer_l1_mean": float(np.mean([r["chamfer_l1"] for r in proc if r["category"] == c]))} for c in cats}
    if rates:
        result["iou_by_flip_rate"] = {str(r): float(np.mean([row["flip_iou"][str(r)] for row in proc]))
                                      for r in rates}
        print("IoU against bit-flip rate: " + ", ".join(f"{r}: {v:.3f}" for r, v in
                                                        result["iou_by_flip_rate"].items()), flush=True)
    if not args.no_real:
        print("real meshes bundled with installed packages:")
        real = run_real(model, args)
        if real:
            result["real_meshes"] = _aggregate(real)
            result["real_meshes"]["per_mesh"] = {r["name"]: {k: r[k] for k in ("iou", "chamfer_l1", "normal_consistency",
                                                                           "source_watertight", "watertight")}
                                                 for r in real}
    agg = result["procedural_test"]
    print(f"procedural {args.split}: IoU mean {agg['iou']['mean']:.4f} (median {agg['iou']['median']:.4f}), Chamfer-L1 mean "
          f"{agg['chamfer_l1']['mean']:.5f}, normal consistency {agg['normal_consistency']['mean']:.4f}, "
          f"watertight {agg['watertight_fraction']:.0%}")
    if args.ceiling:
        c = result["procedural_ceiling"]
        print(f"resolution ceiling (exact SDF, same {1 << model.output_depth}^3 grid + marching cubes): IoU mean "
              f"{c['iou']['mean']:.4f}, Chamfer-L1 mean {c['chamfer_l1']['mean']:.5f}")
    print(f"tokens per level median {agg['tokens_per_level_median']} p95 {agg['tokens_per_level_p95']}; "
          f"bits per shape (payload) median {agg['payload_bits_median']:.0f} p95 {agg['payload_bits_p95']:.0f}; "
          f"(structure + payload) median {agg['total_bits_median']:.0f}")
    print(f"encode {agg['encode_s']['median']:.3f} s, decode {agg['decode_s']['median']:.3f} s per shape (median; "
          f"p95 decode {agg['decode_s']['p95']:.3f} s)")
    for c, v in result["procedural_by_category"].items():
        print(f"  {c:<10} n={v['count']:<3} IoU {v['iou_mean']:.4f}  CD-L1 {v['chamfer_l1_mean']:.5f}")
    if "real_meshes" in result:
        r = result["real_meshes"]
        print(f"real meshes ({r['count']}): IoU mean {r['iou']['mean']:.4f}, Chamfer-L1 mean {r['chamfer_l1']['mean']:.5f}, "
              f"normal consistency {r['normal_consistency']['mean']:.4f}")
    return result
