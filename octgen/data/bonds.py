"""Bond orders of a molecule from its interatomic distances: the reference bond
lengths and margins of the EDM evaluation (Hoogeboom et al., ICML 2022). The bond
perception behind SDF export (:func:`octgen.data.molecules.molecule_to_rdkit`), the
ball-and-stick view and the stability / validity metrics of
:mod:`octgen.metrics.molecules`.

For every atom pair, with ``d`` in picometres and the reference lengths ``b1, b2, b3``
(single, double, triple) of the pair: order 1 if ``d < b1 + 10``; 2 if also
``d < b2 + 5``; 3 if also ``d < b3 + 3`` (margins 10 / 5 / 3 pm). A bond order only
counts where the table has that pair; pairs missing from the single-bond table never
bond. The lengths are the table EDM published (values from wiredchemist's bond
energy/length table and chemistry-reference.com), transcribed as symmetric pair lists.
"""
from __future__ import annotations

import numpy as np

# Reference single-bond lengths in pm, one entry per unordered element pair.
_SINGLE = {
    "H": {"H": 74, "C": 109, "N": 101, "O": 96, "F": 92, "B": 119, "Si": 148, "P": 144, "As": 152,
          "S": 134, "Cl": 127, "Br": 141, "I": 161},
    "C": {"C": 154, "N": 147, "O": 143, "F": 135, "Si": 185, "P": 184, "S": 182, "Cl": 177, "Br": 194,
          "I": 214},
    "N": {"N": 145, "O": 140, "F": 136, "Cl": 175, "Br": 214, "S": 168, "I": 222, "P": 177},
    "O": {"O": 148, "F": 142, "Br": 172, "S": 151, "P": 163, "Si": 163, "Cl": 164, "I": 194},
    "F": {"F": 142, "S": 158, "Si": 160, "Cl": 166, "Br": 178, "P": 156, "I": 187},
    "B": {"Cl": 175},
    "Si": {"Si": 233, "S": 200, "Cl": 202, "Br": 215, "I": 243},
    "Cl": {"Cl": 199, "P": 203, "S": 207, "Br": 214},
    "S": {"S": 204, "Br": 225, "P": 210, "I": 234},
    "Br": {"Br": 228, "P": 222},
    "P": {"P": 221},
    "I": {"I": 266},
}
_DOUBLE = {"C": {"C": 134, "N": 129, "O": 120, "S": 160}, "N": {"N": 125, "O": 121},
           "O": {"O": 121, "P": 150}, "P": {"S": 186}}
_TRIPLE = {"C": {"C": 120, "N": 116, "O": 113}, "N": {"N": 110}}
MARGINS_PM = (10.0, 5.0, 3.0)

def _symmetric(table: dict) -> dict:
    out: dict = {}
    for a, row in table.items():
        for b, v in row.items():
            out[(a, b)] = out[(b, a)] = float(v)
    return out


BOND_LENGTHS_PM = tuple(_symmetric(t) for t in (_SINGLE, _DOUBLE, _TRIPLE))


def _threshold_matrices(elements: list[str]) -> np.ndarray:
    """(3, N, N) bond thresholds in pm (length + margin) per order; -inf where the
    table lacks the pair, so that order is never reached."""
    kinds = sorted(set(elements))
    t_K3 = np.full((3, len(kinds), len(kinds)), -np.inf)
    for o, (table, margin) in enumerate(zip(BOND_LENGTHS_PM, MARGINS_PM)):
        for i, a in enumerate(kinds):
            for j, b in enumerate(kinds):
                if (a, b) in table:
                    t_K3[o, i, j] = table[(a, b)] + margin
    idx = np.array([kinds.index(e) for e in elements])
    return t_K3[:, idx[:, None], idx[None, :]]


def bond_orders(molecule) -> np.ndarray:
    """(N, N) int64 symmetric EDM bond orders (0 = no bond, 1..3) from distances.

    Args:
        molecule: a :class:`~octgen.data.molecules.Molecule` (Angstrom).
    """
    pos = np.asarray(molecule.positions, dtype=np.float64)
    n = len(pos)
    if n == 0:
        return np.zeros((0, 0), dtype=np.int64)
    d_NN = 100.0 * np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)  # pm
    t1, t2, t3 = _threshold_matrices(list(molecule.elements))
    orders = np.where(d_NN < t1, np.where(d_NN < t2, np.where(d_NN < t3, 3, 2), 1), 0).astype(np.int64)
    np.fill_diagonal(orders, 0)
    return orders
