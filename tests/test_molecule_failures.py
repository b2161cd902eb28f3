"""bench/molecule_failures.py on molecules whose failures are known by construction."""
import importlib.util
from pathlib import Path

import numpy as np

from octgen.data.molecules import Molecule

ROOT = Path(__file__).resolve().parents[1]


def _report(molecules):
    spec = importlib.util.spec_from_file_location("molecule_failures", ROOT / "bench" / "molecule_failures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.failure_report(molecules)


def _methane(h_shift=0.0):
    d = 1.09 / np.sqrt(3)
    pos = np.array([[0, 0, 0], [d, d, d], [d, -d, -d], [-d, d, -d], [-d, -d, d]], dtype=float)
    pos[1] *= (1.09 + h_shift) / 1.09  # move one hydrogen out along its bond
    return Molecule(["C", "H", "H", "H", "H"], pos, name="methane")


def _ethylene(cc):
    h = [[-0.55, 0.93, 0.0], [-0.55, -0.93, 0.0], [cc + 0.55, 0.93, 0.0], [cc + 0.55, -0.93, 0.0]]
    return Molecule(["C", "C", "H", "H", "H", "H"], np.array([[0, 0, 0], [cc, 0, 0]] + h, dtype=float), name="ethylene")


def test_stable_molecules_report_no_failures():
    r = _report([_methane(), _ethylene(1.33)])
    assert r["elements"]["C"]["stable"] == 1.0 and r["elements"]["H"]["stable"] == 1.0
    assert r["unstable_atoms_per_molecule_0_1_2_3_4plus"] == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert r["heavy_one_short"] == {"double_just_too_long": 0, "no_partner_one_short": 0, "other": 0}
    assert np.isclose(r["atoms_per_molecule"], 5.5) and np.isclose(r["elements"]["H"]["share"], 8 / 11)


def test_a_detached_hydrogen_and_a_stretched_double_bond_are_told_apart():
    # methane with one H at 1.30 A (past the 1.19 A C-H cut-off): C one short with no partner,
    # that H bonded to nothing; ethylene at 1.42 A (past 1.39 A for C=C, within 10 pm): both
    # carbons one short, each the other's partner
    r = _report([_methane(h_shift=0.21), _ethylene(1.42)])
    assert r["heavy_one_short"] == {"double_just_too_long": 2, "no_partner_one_short": 1, "other": 0}
    assert np.isclose(r["elements"]["C"]["under"], 1.0) and np.isclose(r["elements"]["H"]["under"], 1 / 8)
    assert r["under_bonded_missing_1_2_3plus"]["C"] == [1.0, 0.0, 0.0]
    assert np.isclose(r["unstable_H_nearest_heavy_10_50_90"], 1.30).all()
    assert r["unstable_atoms_per_molecule_0_1_2_3_4plus"] == [0.0, 0.0, 2.0 / 2, 0.0, 0.0]
    assert np.isclose(r["share_of_unstable_atoms"]["C"], 3 / 4)
