"""How far QM9's geometries are from their principal axes: over the first N validation
molecules, the largest off-diagonal term of each (mass-weighted, centred) coordinate
covariance relative to its largest diagonal term, and how close the longest principal
axis lies to a coordinate axis (|cos|, 1 = on an axis). 0 and 1 would mean QM9 already
comes in a principal-axes frame. Then, in each molecule's principal-axes frame
(:func:`octgen.tokenize.molecule.principal_frame`, centred on the mean position as the
tokenizer does), how close its atoms lie to the plane z = 0, a split plane of every
octree level (the reason for the ``"principal-offset"`` frame).

    OCTGEN_CACHE=... python bench/qm9_orientation.py [--num 2000]

(The 0.35 median in checkpoints/qm9-xs/README.md, "principal-axes frame", came from this.)
"""
from __future__ import annotations

import argparse

import numpy as np

from octgen.bench.curve import validation_molecules
from octgen.tokenize.molecule import principal_frame

MASS = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "F": 18.998}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num", type=int, default=2000)
    args = ap.parse_args()
    off, cos, z_all, z_heavy = [], [], [], []
    for m in validation_molecules()[:args.num]:
        p = np.asarray(m.positions, dtype=np.float64)
        w = np.array([MASS[e] for e in m.elements])
        q = p - (p * w[:, None]).sum(0) / w.sum()
        cov = (w[:, None, None] * q[:, :, None] * q[:, None, :]).sum(0)
        off.append(np.abs(cov - np.diag(np.diag(cov))).max() / np.abs(np.diag(cov)).max())
        cos.append(np.abs(np.linalg.eigh(cov)[1][:, -1]).max())
        z = np.abs(((p - p.mean(0)) @ principal_frame(p).T)[:, 2])
        z_all.append(z)
        z_heavy.append(z[np.array([e != "H" for e in m.elements])])
    print(f"{len(off)} molecules; off-diagonal / diagonal covariance, 10/50/90 %:",
          np.round(np.quantile(off, [0.1, 0.5, 0.9]), 3).tolist())
    print("longest principal axis vs nearest coordinate axis |cos|, 10/50/90 %:",
          np.round(np.quantile(cos, [0.1, 0.5, 0.9]), 3).tolist())
    z_all, z_heavy = np.concatenate(z_all), np.concatenate(z_heavy)
    print("principal frame, |z| of atoms, 10/25/50/75/90 %: all",
          np.round(np.quantile(z_all, [0.1, 0.25, 0.5, 0.75, 0.9]), 3).tolist(), "heavy",
          np.round(np.quantile(z_heavy, [0.1, 0.25, 0.5, 0.75, 0.9]), 3).tolist())
    for t in (0.1, 0.2, 0.32, 0.64):
        print(f"  share within {t} A of z = 0: all {np.mean(z_all < t):.3f}, heavy {np.mean(z_heavy < t):.3f}")


if __name__ == "__main__":
    main()
