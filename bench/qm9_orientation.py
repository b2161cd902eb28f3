"""How far QM9's geometries are from their principal axes: over the first N validation
molecules, the largest off-diagonal term of each (mass-weighted, centred) coordinate
covariance relative to its largest diagonal term, and how close the longest principal
axis lies to a coordinate axis (|cos|, 1 = on an axis). 0 and 1 would mean QM9 already
comes in a principal-axes frame.

    OCTGEN_CACHE=... python bench/qm9_orientation.py [--num 2000]

(The 0.35 median in checkpoints/qm9-xs/README.md, "principal-axes frame", came from this.)
"""
from __future__ import annotations

import argparse

import numpy as np

from octgen.bench.curve import validation_molecules

MASS = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "F": 18.998}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num", type=int, default=2000)
    args = ap.parse_args()
    off, cos = [], []
    for m in validation_molecules()[:args.num]:
        p = np.asarray(m.positions, dtype=np.float64)
        w = np.array([MASS[e] for e in m.elements])
        q = p - (p * w[:, None]).sum(0) / w.sum()
        cov = (w[:, None, None] * q[:, :, None] * q[:, None, :]).sum(0)
        off.append(np.abs(cov - np.diag(np.diag(cov))).max() / np.abs(np.diag(cov)).max())
        cos.append(np.abs(np.linalg.eigh(cov)[1][:, -1]).max())
    print(f"{len(off)} molecules; off-diagonal / diagonal covariance, 10/50/90 %:",
          np.round(np.quantile(off, [0.1, 0.5, 0.9]), 3).tolist())
    print("longest principal axis vs nearest coordinate axis |cos|, 10/50/90 %:",
          np.round(np.quantile(cos, [0.1, 0.5, 0.9]), 3).tolist())


if __name__ == "__main__":
    main()
