"""What the unstable atoms of a molecule checkpoint's samples look like: per element,
how many atoms are stable, under-bonded (summed EDM bond orders below the allowed
valence; by how many bond orders: one is a double bond read as a single, more is a
missing neighbour) or over-bonded; of the heavy atoms one bond order short, how many
have a single-bonded partner also one short within 10 pm of the double-bond length (a
double bond just too long) and how many have none (a missing neighbour, mostly a
hydrogen); how many unstable atoms the molecules carry (is molecule
stability one fix away or many); and for unstable hydrogens, how far their nearest
heavy atom is (a detached hydrogen against a crowded one). The same figures for as
many QM9 validation molecules (evenly spaced over the split) show what the bond rules
make of real geometries.

    OCTGEN_CACHE=... OMP_NUM_THREADS=2 python bench/molecule_failures.py checkpoints/qm9-xs --num 500

Samples come from the checkpoint's own sampler with seed 1000003 (the learning curves'
validation seed) unless ``--seed`` says otherwise.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from octgen.bench.curve import validation_molecules
from octgen.data.bonds import _threshold_matrices, bond_orders
from octgen.metrics.molecules import ALLOWED_VALENCES
from octgen.pipeline.pipeline import OctGenPipeline


def failure_report(molecules) -> dict:
    """Per-element stable / under / over counts, the histogram of unstable atoms per
    molecule (0, 1, 2, 3, 4+), and the nearest heavy-atom distance quantiles of unstable
    hydrogens (10 / 50 / 90 %, Angstrom)."""
    per_element: dict[str, list[int]] = {}
    deficit: dict[str, list[int]] = {}
    one_short = {"double_just_too_long": 0, "no_partner_one_short": 0, "other": 0}
    unstable_per_mol = np.zeros(5, dtype=np.int64)
    h_far = []
    for m in molecules:
        if len(m) == 0:
            unstable_per_mol[4] += 1
            continue
        orders = bond_orders(m)
        valence = orders.sum(axis=1)
        pos = np.asarray(m.positions, dtype=np.float64)
        d_pm = 100.0 * np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        double_pm = _threshold_matrices(list(m.elements))[1]
        short = np.array([min(ALLOWED_VALENCES.get(e, (0,))) - int(v) for e, v in zip(m.elements, valence)])
        heavy = np.array([e != "H" for e in m.elements])
        bad = 0
        for i, (e, v) in enumerate(zip(m.elements, valence)):
            allowed = ALLOWED_VALENCES.get(e, ())
            row = per_element.setdefault(e, [0, 0, 0])
            if int(v) in allowed:
                row[0] += 1
                continue
            bad += 1
            under = bool(allowed) and short[i] > 0
            row[1 if under else 2] += 1
            if under:
                deficit.setdefault(e, [0, 0, 0])[min(int(short[i]), 3) - 1] += 1
            if under and e != "H" and short[i] == 1:
                partners = [j for j in np.nonzero((orders[i] == 1) & (short == 1))[0] if np.isfinite(double_pm[i, j])]
                gap = min((d_pm[i, j] - double_pm[i, j] for j in partners), default=None)
                kind = "no_partner_one_short" if gap is None else "double_just_too_long" if gap < 10 else "other"
                one_short[kind] += 1
            if e == "H" and heavy.any():
                h_far.append(float(np.linalg.norm(pos[heavy] - pos[i], axis=1).min()))
        unstable_per_mol[min(bad, 4)] += 1
    total = sum(sum(r) for r in per_element.values())
    report = {"atoms_per_molecule": total / max(1, len(molecules)),
              "elements": {e: {"atoms": sum(r), "share": sum(r) / max(1, total), "stable": r[0] / sum(r), "under": r[1] / sum(r), "over": r[2] / sum(r)}
                           for e, r in sorted(per_element.items())},
              "under_bonded_missing_1_2_3plus": {e: (np.array(d) / sum(d)).round(3).tolist() for e, d in sorted(deficit.items())},
              "heavy_one_short": one_short,
              "unstable_atoms_per_molecule_0_1_2_3_4plus": (unstable_per_mol / max(1, len(molecules))).round(4).tolist()}
    unstable = total - sum(r[0] for r in per_element.values())
    report["share_of_unstable_atoms"] = {e: (r[1] + r[2]) / max(1, unstable) for e, r in sorted(per_element.items())}
    if h_far:
        report["unstable_H_nearest_heavy_10_50_90"] = np.round(np.quantile(h_far, [0.1, 0.5, 0.9]), 3).tolist()
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--num", type=int, default=500)
    p.add_argument("--seed", type=int, default=1000003)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default="", help="also write the report here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = OctGenPipeline.from_pretrained(args.checkpoint)
    samples = pipe(args.num, generator=torch.Generator().manual_seed(args.seed))
    val = validation_molecules()  # in QM9's order, small molecules first: take every k-th
    reference = val[::max(1, len(val) // args.num)][:args.num]
    out = {"checkpoint": args.checkpoint, "num": args.num, "seed": args.seed,
           "samples": failure_report(samples), "qm9_validation": failure_report(reference)}
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
