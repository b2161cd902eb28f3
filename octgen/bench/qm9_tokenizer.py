"""``octgen bench qm9-tokenizer``: the molecule tokenizer's round trip over QM9.

For every QM9 molecule (130,831 by default) and each requested orientation
(as stored, and/or one uniformly random rotation per molecule from a seeded
generator): count atoms that share a finest cell (collisions), encode, decode, and
compare with the box-frame input matched through the encoder's atom order:
elements must be identical and every coordinate within half an offset bin.
Reports the collision rate, the largest coordinate error, token counts per
molecule (median, p95, max) and the encode / decode speed. Also reports the two
geometric facts behind the settings: the shortest interatomic distance (against the
cell diagonal) and the largest atom distance from the centre (against the box).
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch

from .timing import machine_summary


def add_arguments(p) -> None:
    p.add_argument("--rotations", nargs="+", choices=("none", "random"), default=["none", "random"],
                   help="orientations to test (default: both)")
    p.add_argument("--limit", type=int, default=None, help="only the first N molecules (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random rotations (default 0)")


def _min_distance(pos: np.ndarray) -> float:
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(d.min()) if len(pos) > 1 else float("inf")


def _stats(v) -> dict:
    return {"median": float(np.median(v)), "p95": float(np.percentile(v, 95)), "max": int(np.max(v))}


def round_trip_row(tok, mols: list, rot_mode: str, seed: int) -> dict:
    """Encode and decode every molecule once (rotation "none" or "random", seeded):
    collisions, failures, element mismatches, worst coordinate error, token counts
    and times (the figures of one row of the bench)."""
    from ..errors import InputError

    cfg = tok.config
    n = len(mols)
    gen = torch.Generator().manual_seed(seed)
    collisions = mol_with_collision = failures = element_mismatch = 0
    max_err = 0.0
    totals, structure, atoms = [], [], []
    t_enc = t_dec = 0.0
    for k, m in enumerate(mols, start=1):
        if k % 20_000 == 0:
            print(f"  rotation={rot_mode}: {k}/{n} molecules", file=sys.stderr, flush=True)
        rot = tok.molecule_to_box(m, "random", gen)[2] if rot_mode == "random" else None
        x_box = tok.molecule_to_box(m, rot)[0]
        q = tok.box_to_grid(x_box, m.name)
        n_cells = len(np.unique(q // cfg.offset_bins, axis=0))
        if n_cells < len(m):
            collisions += len(m) - n_cells
            mol_with_collision += 1
            continue
        try:
            t0 = time.perf_counter()
            tokens, order = tok.encode_with_order(m, rot)
            t1 = time.perf_counter()
            back = tok.decode(tokens)
            t2 = time.perf_counter()
        except InputError:
            failures += 1
            continue
        t_enc += t1 - t0
        t_dec += t2 - t1
        order = order.numpy()
        if [m.elements[i] for i in order] != back.elements:
            element_mismatch += 1
        max_err = max(max_err, float(np.abs(back.positions - x_box[order]).max()))
        per_level = tokens.tokens_per_level()
        totals.append(sum(per_level))
        structure.append(sum(per_level[:-1]))
        atoms.append(per_level[-1])
    ok = len(totals)
    return {"rotation": rot_mode, "molecules": n, "round_trips": ok, "failures": failures,
            "collisions": collisions, "molecules_with_collision": mol_with_collision,
            "collision_rate": mol_with_collision / n, "element_mismatches": element_mismatch,
            "max_coord_error_A": max_err, "half_bin_A": cfg.bin_size / 2,
            "tokens_total": _stats(totals), "tokens_structure": _stats(structure), "atoms": _stats(atoms),
            "encode_ms": 1e3 * t_enc / max(ok, 1), "decode_ms": 1e3 * t_dec / max(ok, 1)}


def _print_row(row: dict, bin_size: float) -> None:
    print(f"rotation={row['rotation']}: {row['round_trips']}/{row['molecules']} round trips, {row['failures']} "
          f"failures, collisions {row['collisions']} atoms in {row['molecules_with_collision']} molecules "
          f"(rate {row['collision_rate']:.2e}), element mismatches {row['element_mismatches']}, max coordinate "
          f"error {row['max_coord_error_A']:.9f} A (half bin {bin_size / 2:.9f} A)")
    for key in ("tokens_total", "tokens_structure", "atoms"):
        s = row[key]
        print(f"  {key:<16} median {s['median']:.0f}  p95 {s['p95']:.0f}  max {s['max']}")
    print(f"  encode {row['encode_ms']:.3f} ms/molecule, decode {row['decode_ms']:.3f} ms/molecule")


def run(args) -> dict:
    from ..data.qm9 import load_qm9
    from ..tokenize.molecule import MoleculeTokenizer

    data = load_qm9()
    n = len(data) if args.limit is None else max(1, min(args.limit, len(data)))
    tok = MoleculeTokenizer()
    cfg = tok.settings
    print(f"machine: {machine_summary()}")
    print(f"tokenizer: {tok}; bin {cfg.bin_size:.4f} A, cell diagonal {cfg.cell_size * 3 ** 0.5:.3f} A")
    mols = data.molecules(range(n))
    min_dist = min(_min_distance(m.positions) for m in mols)
    max_radius = max(float(np.linalg.norm(m.positions - m.positions.mean(0), axis=1).max()) for m in mols)
    print(f"QM9 ({n} molecules): shortest interatomic distance {min_dist:.4f} A, "
          f"largest distance from centre {max_radius:.3f} A (box half-width {cfg.half_box:.2f} A)")
    rows = []
    for rot_mode in args.rotations:
        row = round_trip_row(tok, mols, rot_mode, args.seed)
        rows.append(row)
        _print_row(row, cfg.bin_size)
    return {"bench": "qm9-tokenizer", "machine": machine_summary(), "tokenizer": repr(tok),
            "min_interatomic_distance_A": min_dist, "max_radius_A": max_radius, "rows": rows}
