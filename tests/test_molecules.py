"""Molecules: tokenizer round trips, readers / writers, the EDM evaluator, CLI paths."""
from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from octgen.data.molecules import Molecule, read_molecule_entries, read_molecules, write_sdf, write_xyz
from octgen.errors import InputError
from octgen.metrics.molecules import atom_stability, bond_orders, evaluate_molecule, evaluate_molecules
from octgen.tokenize import OctreeTokens
from octgen.tokenize.molecule import MoleculeTokenizer, MoleculeTokenizerConfig, random_rotation

TOK = MoleculeTokenizer()
HALF_BIN = TOK.settings.bin_size / 2


# ----------------------------------------------------------------------------- fixtures
def kekule_benzene(single=1.46, double=1.34, ch=1.09) -> Molecule:
    """Benzene with alternating bond lengths and 120 degree angles (the walk closes
    because the six unit steps at 60 degree turns sum to zero in each parity class)."""
    pts, p, ang = [], np.zeros(3), 0.0
    for k in range(6):
        pts.append(p.copy())
        step = double if k % 2 == 0 else single
        p = p + step * np.array([np.cos(ang), np.sin(ang), 0.0])
        ang += np.pi / 3
    c = np.array(pts)
    centre = c.mean(0)
    h = c + ch * (c - centre) / np.linalg.norm(c - centre, axis=1, keepdims=True)
    return Molecule(["C"] * 6 + ["H"] * 6, np.concatenate([c, h]), "benzene")


def regular_benzene(cc=1.3934, ch=1.0866) -> Molecule:
    ang = np.arange(6) * np.pi / 3
    ring = np.stack([np.cos(ang), np.sin(ang), np.zeros(6)], 1)
    return Molecule(["C"] * 6 + ["H"] * 6, np.concatenate([cc * ring, (cc + ch) * ring]), "benzene-d6h")


def methane(ch=1.09) -> Molecule:
    t = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3)
    return Molecule(["C", "H", "H", "H", "H"], np.concatenate([np.zeros((1, 3)), ch * t]), "methane")


def pentavalent_carbon() -> Molecule:
    """CH5 as a trigonal bipyramid: five C-H bonds of 1.09 A."""
    d = 1.09
    ang = np.arange(3) * 2 * np.pi / 3
    eq = np.stack([np.cos(ang), np.sin(ang), np.zeros(3)], 1) * d
    ax = np.array([[0, 0, d], [0, 0, -d]])
    return Molecule(["C"] + ["H"] * 5, np.concatenate([np.zeros((1, 3)), eq, ax]), "CH5")


def hydrogen_cyanide() -> Molecule:
    return Molecule(["H", "C", "N"], [[-1.066, 0, 0], [0, 0, 0], [1.156, 0, 0]], "HCN")


# ----------------------------------------------------------------------------- tokenizer
@st.composite
def small_molecules(draw):
    """Random molecules of 1..12 QM9 atoms within 4 A of the origin, no two atoms
    closer than 0.5 A (above the 0.416 A cell diagonal, below any real bond)."""
    n = draw(st.integers(1, 12))
    coord = st.floats(-4.0, 4.0, allow_nan=False, allow_infinity=False)
    pos = np.array(draw(st.lists(st.tuples(coord, coord, coord), min_size=n, max_size=n)), dtype=np.float64)
    if n > 1:
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(n) * 10
        if d.min() < 0.5:
            pos = pos[[i for i in range(n) if (d[i, :i] >= 0.5).all()]]
    elements = draw(st.lists(st.sampled_from(["H", "C", "N", "O", "F"]), min_size=len(pos), max_size=len(pos)))
    return Molecule(elements, pos, "random")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mol=small_molecules(), rotate=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_tokenizer_round_trip(mol, rotate, seed):
    gen = torch.Generator().manual_seed(seed)
    rot = random_rotation(gen) if rotate else None
    tokens, order = TOK.encode_with_order(mol, rot)
    order = order.numpy()
    assert sorted(order.tolist()) == list(range(len(mol)))
    assert tokens.payload_kind == "atoms" and tokens.payload.shape == (len(mol), 4)
    assert tokens.depth == TOK.depth and tokens.tokens_per_level()[-1] == len(mol)
    back = TOK.decode(tokens)
    x_box = TOK.molecule_to_box(mol, rot)[0]
    assert back.elements == [mol.elements[i] for i in order]
    assert np.abs(back.positions - x_box[order]).max() <= HALF_BIN + 1e-9
    # Restoring the frame undoes the centring and rotation (the error vector keeps its length).
    restored = TOK.decode(tokens, restore_frame=True)
    err = np.linalg.norm(restored.positions - mol.positions[order], axis=1).max()
    assert err <= HALF_BIN * np.sqrt(3) + 1e-9


def test_token_file_round_trip(tmp_path):
    mol = kekule_benzene()
    tokens = TOK.encode(mol, rotation="random", generator=torch.Generator().manual_seed(3))
    tokens.save(tmp_path / "b.npz")
    loaded = OctreeTokens.load(tmp_path / "b.npz")
    assert torch.equal(loaded.payload, tokens.payload)
    assert all(torch.equal(a, b) for a, b in zip(loaded.structure, tokens.structure))
    a, b = TOK.decode(tokens, restore_frame=True), TOK.decode(loaded, restore_frame=True)
    assert a.elements == b.elements and np.allclose(a.positions, b.positions)


def test_random_rotation_is_seeded_and_proper():
    r1 = random_rotation(torch.Generator().manual_seed(7))
    r2 = random_rotation(torch.Generator().manual_seed(7))
    r3 = random_rotation(torch.Generator().manual_seed(8))
    assert np.array_equal(r1, r2) and not np.allclose(r1, r3)
    assert np.allclose(r1 @ r1.T, np.eye(3)) and np.isclose(np.linalg.det(r1), 1.0)
    t1 = TOK.encode(methane(), "random", torch.Generator().manual_seed(7))
    t2 = TOK.encode(methane(), "random", torch.Generator().manual_seed(7))
    assert torch.equal(t1.payload, t2.payload)


def test_tokenizer_refuses_bad_molecules():
    with pytest.raises(InputError, match="not in the tokenizer's vocabulary"):
        TOK.encode(Molecule(["C", "S"], [[0, 0, 0], [1.8, 0, 0]], "cs"))
    with pytest.raises(InputError, match="beyond the tokenizer's box"):
        TOK.encode(Molecule(["C", "C"], [[0, 0, 0], [16.0, 0, 0]], "long"))
    with pytest.raises(InputError, match="fall in one"):
        # Centroid at the origin (a cell corner); the first two atoms share cell [0, 0.24)^3.
        TOK.encode(Molecule(["C", "C", "H"], [[0.05, 0.05, 0.05], [0.1, 0.1, 0.1], [-0.15, -0.15, -0.15]], "clash"))
    with pytest.raises(InputError, match="no atoms"):
        TOK.encode(Molecule([], np.zeros((0, 3)), "empty"))


def test_decode_checks_payload():
    tokens = TOK.encode(methane())
    bad = OctreeTokens(tokens.structure, tokens.payload.clone(), "atoms", {})
    bad.payload[0, 1] = TOK.settings.offset_bins
    with pytest.raises(InputError, match="out of range"):
        TOK.decode(bad)
    with pytest.raises(InputError, match="not atoms"):
        TOK.decode(OctreeTokens(tokens.structure, tokens.payload, "shape_bits", {}))
    other = MoleculeTokenizer.from_settings(MoleculeTokenizerConfig(depth=5))
    with pytest.raises(InputError, match="depth"):
        other.decode(tokens)


def test_vocab_and_config_round_trip(tmp_path):
    tok = MoleculeTokenizer(elements=("H", "C", "S", "Cl"), cell_size=0.3, depth=5, offset_bins=30)
    assert tok.payload_vocab_sizes == [4, 30, 30, 30] and tok.depth == 5
    tok.save_pretrained(tmp_path / "tok")
    again = MoleculeTokenizer.from_pretrained(tmp_path / "tok")
    assert again.config == tok.config
    mol = Molecule(["C", "S", "Cl", "H"], [[0, 0, 0], [1.8, 0, 0], [-1.0, 1.4, 0], [-0.4, -0.9, 0.5]])
    back = again.decode(tok.encode(mol))
    assert sorted(back.elements) == sorted(mol.elements)
    with pytest.raises(InputError):
        MoleculeTokenizerConfig(elements=("H", "Qq"))


# ----------------------------------------------------------------------------- readers / writers
def test_xyz_round_trip(tmp_path):
    mols = [kekule_benzene(), methane(), hydrogen_cyanide()]
    write_xyz(mols, tmp_path / "m.xyz")
    back = read_molecules(tmp_path / "m.xyz", strict=True)
    assert [m.elements for m in back] == [m.elements for m in mols]
    assert [m.name for m in back] == ["benzene", "methane", "HCN"]
    for a, b in zip(mols, back):
        assert np.abs(a.positions - b.positions).max() <= 1e-6


def test_sdf_round_trip_with_perceived_bonds(tmp_path):
    from rdkit import Chem

    mols = [kekule_benzene(), methane(), hydrogen_cyanide()]
    write_sdf(mols, tmp_path / "m.sdf")
    back = read_molecules(tmp_path / "m.sdf", strict=True)
    assert [m.elements for m in back] == [m.elements for m in mols]
    for a, b in zip(mols, back):
        assert np.abs(a.positions - b.positions).max() <= 1e-4  # MOL blocks keep 4 decimals
    rd = [m for m in Chem.SDMolSupplier(str(tmp_path / "m.sdf"), removeHs=False, sanitize=False)]
    orders = sorted(b.GetBondTypeAsDouble() for b in rd[0].GetBonds())
    assert orders.count(2.0) == 3 and orders.count(1.0) == 9  # Kekule benzene: 3 C=C, 3 C-C, 6 C-H
    assert any(b.GetBondTypeAsDouble() == 3.0 for b in rd[2].GetBonds())  # HCN triple bond


def test_bad_files(tmp_path):
    empty = tmp_path / "empty.xyz"
    empty.write_text("\n")
    with pytest.raises(InputError, match="empty"):
        read_molecules(empty)
    with pytest.raises(InputError, match="no such file"):
        read_molecules(tmp_path / "missing.sdf")
    pdb = tmp_path / "m.pdb"
    pdb.write_text("ATOM\n")
    with pytest.raises(InputError, match="unsupported"):
        read_molecules(pdb)
    bad = tmp_path / "bad.xyz"
    bad.write_text("2\nok\nC 0 0 0\nH 1.09 0 0\n2\nbroken\nC 0 0 zero\nH 1 0 0\n1\nbad element\nXx 0 0 0\n"
                   "1\nlast\nO 0 0 0\n")
    skipped = []
    good = read_molecules(bad, on_skip=skipped.append)
    assert [m.name for m in good] == ["ok", "last"]
    assert len(skipped) == 2 and "entry 2" in skipped[0] and "entry 3" in skipped[1]
    assert "unknown element 'Xx'" in skipped[1] and str(bad) in skipped[0]
    with pytest.raises(InputError, match="entry 2: line 7: coordinates are not numbers"):
        read_molecules(bad, strict=True)
    truncated = tmp_path / "trunc.xyz"
    truncated.write_text("5\nshort\nC 0 0 0\n")
    with pytest.raises(InputError, match="entry 1: line 1: promises 5 atoms"):
        read_molecules(truncated, strict=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mols=st.lists(small_molecules(), min_size=1, max_size=3))
def test_xyz_and_sdf_round_trip_random(tmp_path, mols):
    for suffix, tol in ((".xyz", 1e-6), (".sdf", 1e-4)):
        path = tmp_path / f"r{suffix}"
        (write_xyz if suffix == ".xyz" else write_sdf)(mols, path)
        back = read_molecules(path, strict=True)
        assert [m.elements for m in back] == [m.elements for m in mols]
        assert all(np.abs(a.positions - b.positions).max() <= tol for a, b in zip(mols, back))


_VALID = {}


def _valid_text(suffix: str, tmp_path) -> str:
    """A valid two-molecule file of each format, made once."""
    if suffix not in _VALID:
        path = tmp_path / f"valid{suffix}"
        (write_xyz if suffix == ".xyz" else write_sdf)([methane(), hydrogen_cyanide()], path)
        _VALID[suffix] = path.read_text()
    return _VALID[suffix]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=st.sampled_from([".xyz", ".sdf"]),
       noise=st.text(alphabet=st.sampled_from(list("0123456789 .-eCHNOXx\n$MEND")), max_size=200),
       edits=st.lists(st.tuples(st.floats(0, 1), st.sampled_from(list("0 .-xX\n$"))), max_size=6),
       mutate=st.booleans())
def test_readers_fail_only_with_input_error(tmp_path, suffix, noise, edits, mutate):
    """Random text, or a valid file with random characters replaced: the readers
    return good molecules or raise a one-line InputError naming the file."""
    text = noise
    if mutate:
        chars = list(_valid_text(suffix, tmp_path))
        for where, c in edits:
            chars[min(int(where * len(chars)), len(chars) - 1)] = c
        text = "".join(chars)
    path = tmp_path / f"fuzz{suffix}"
    path.write_text(text)
    try:
        mols = read_molecules(path, on_skip=None)
    except InputError as e:
        assert "\n" not in str(e) and str(path) in str(e)
    else:
        assert all(np.isfinite(m.positions).all() and len(m) > 0 for m in mols)


def test_bad_sdf_entry_is_skipped(tmp_path):
    path = tmp_path / "m.sdf"
    write_sdf([methane(), hydrogen_cyanide()], path)
    blocks = path.read_text().split("$$$$\n")
    garbage = "garbage\n\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\nnot an atom line\n"
    path.write_text(blocks[0] + "$$$$\n" + garbage + "$$$$\n" + blocks[1] + "$$$$\n")
    entries = read_molecule_entries(path)
    assert [isinstance(e, Molecule) for _, e in entries] == [True, False, True]
    skipped = []
    assert [m.name for m in read_molecules(path, on_skip=skipped.append)] == ["methane", "HCN"]
    assert len(skipped) == 1 and "entry 2" in skipped[0]


# ----------------------------------------------------------------------------- evaluator
def test_hand_checked_molecules():
    from rdkit import Chem

    def heavy(smiles):  # EDM's SMILES keep the explicit hydrogens
        return Chem.MolToSmiles(Chem.RemoveHs(Chem.MolFromSmiles(smiles)))

    kb = evaluate_molecule(kekule_benzene())
    assert kb["stable"] and kb["stable_atoms"] == 12 and heavy(kb["smiles"]) == "c1ccccc1"
    # EDM's tables call a 1.393 A aromatic C-C bond single (threshold 134 + 5 pm for a
    # double), so symmetric benzene, as in QM9's own geometry, has 3-valent carbons.
    rb = regular_benzene()
    assert bond_orders(rb)[0, 1] == 1
    assert evaluate_molecule(rb)["stable_atoms"] == 6 and not evaluate_molecule(rb)["stable"]
    ch5 = pentavalent_carbon()
    ok = atom_stability(ch5)
    assert not ok[0] and ok[1:].all() and bond_orders(ch5)[0].sum() == 5
    r = evaluate_molecule(ch5)
    assert not r["stable"] and r["smiles"] is None  # RDKit refuses a 5-valent carbon
    hcn = bond_orders(hydrogen_cyanide())
    assert hcn[1, 2] == 3 and hcn[0, 1] == 1 and hcn[0, 2] == 0
    assert heavy(evaluate_molecule(methane())["smiles"]) == "C"


def test_evaluate_molecules_counts():
    mols = [methane(), methane(), kekule_benzene(), pentavalent_carbon()]
    r = evaluate_molecules(mols, training_smiles=[evaluate_molecule(methane())["smiles"]])
    assert r["n_molecules"] == 4 and r["n_atoms"] == 5 + 5 + 12 + 6
    assert r["mol_stability"] == pytest.approx(3 / 4)
    assert r["atom_stability"] == pytest.approx((5 + 5 + 12 + 5) / 28)
    assert r["validity"] == pytest.approx(3 / 4)
    assert r["uniqueness"] == pytest.approx(2 / 3) and r["valid_unique"] == pytest.approx(2 / 4)
    assert r["novelty"] == pytest.approx(1 / 2)
    assert evaluate_molecules(mols)["novelty"] is None


# ----------------------------------------------------------------------------- export and CLI
def test_ball_and_stick_glb(tmp_path):
    import trimesh

    from octgen.export.molecule import molecule_to_glb

    out = molecule_to_glb(hydrogen_cyanide(), tmp_path / "hcn.glb")
    scene = trimesh.load(out)
    assert set(scene.geometry) == {"atoms_H", "atoms_C", "atoms_N"}
    colours = {k: tuple(g.visual.material.baseColorFactor[:3]) for k, g in scene.geometry.items()}
    assert colours["atoms_N"] == (48, 80, 248) and colours["atoms_H"] == (255, 255, 255)
    lo, hi = scene.bounds
    assert lo[0] < -1.066 and hi[0] > 1.156  # spheres around the end atoms
    with pytest.raises(InputError):
        molecule_to_glb(methane(), tmp_path / "x.obj")


def _cli(argv):
    from octgen.cli.main import main

    return main([str(a) for a in argv])


def test_cli_tokenize_decode_eval(tmp_path, capsys):
    src = tmp_path / "in.xyz"
    write_xyz([kekule_benzene(), hydrogen_cyanide()], src)
    assert _cli(["tokenize", src, "--out", tmp_path / "t.npz"]) == 0
    assert (tmp_path / "t-0001.npz").is_file() and (tmp_path / "t-0002.npz").is_file()
    assert _cli(["decode", tmp_path / "t-0001.npz", "--out", tmp_path / "b.sdf"]) == 0
    back = read_molecules(tmp_path / "b.sdf", strict=True)[0]
    ref = kekule_benzene()
    assert sorted(back.elements) == sorted(ref.elements)
    # Restored frame: each atom within sqrt(3) half bins of an input atom of the same element.
    d = np.linalg.norm(back.positions[:, None] - ref.positions[None], axis=-1).min(1)
    assert d.max() <= HALF_BIN * np.sqrt(3) + 1e-4
    assert _cli(["decode", tmp_path / "t-0002.npz", "--out", tmp_path / "hcn.glb"]) == 0
    capsys.readouterr()
    assert _cli(["eval", "molecules", tmp_path / "b.sdf", "--novelty", "none", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mol_stability"] == 1.0 and result["validity"] == 1.0
    # A folder: in.xyz (benzene, HCN) and b.sdf (benzene) -> three molecules.
    assert _cli(["eval", "molecules", tmp_path, "--novelty", "none", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_molecules"] == 3 and result["uniqueness"] == pytest.approx(2 / 3)


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    src = tmp_path / "s.xyz"
    src.write_text("2\nthiol\nS 0 0 0\nH 1.34 0 0\n")
    assert _cli(["tokenize", src, "--out", tmp_path / "t.npz"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "entry 1" in err and str(src) in err and "vocabulary" in err
    assert not list(tmp_path.glob("*.npz"))
    assert _cli(["tokenize", src, "--out", tmp_path / "t.npz", "--elements", "H,S"]) == 0
    empty = tmp_path / "e.sdf"
    empty.write_text("")
    assert _cli(["eval", "molecules", empty, "--novelty", "none"]) == 2
    assert "empty" in capsys.readouterr().err


def test_cli_tokenize_skips_a_bad_entry_or_stops_with_strict(tmp_path, capsys):
    src = tmp_path / "three.xyz"
    write_xyz([kekule_benzene()], src)
    with open(src, "a") as f:
        f.write("2\nthiol\nS 0 0 0\nH 1.34 0 0\n")  # entry 2: S is not in the QM9 vocabulary
    write_xyz([hydrogen_cyanide()], tmp_path / "hcn.xyz")
    src.write_text(src.read_text() + (tmp_path / "hcn.xyz").read_text())
    capsys.readouterr()
    # Default: entry 2 reported on stderr (one line) and skipped, the others written.
    assert _cli(["tokenize", src, "--out", tmp_path / "t.npz"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "entry 2" in err[0] and "skipped" in err[0]
    assert sorted(p.name for p in tmp_path.glob("t-*.npz")) == ["t-0001.npz", "t-0003.npz"]
    # --strict: one line, exit 2, and not even the good entries are written.
    assert _cli(["tokenize", src, "--out", tmp_path / "s.npz", "--strict"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("octgen: error:") and "entry 2" in err[0] and "--strict" in err[0]
    assert not list(tmp_path.glob("s*.npz"))


# ----------------------------------------------------------------------------- QM9
@functools.lru_cache(maxsize=1)
def _qm9():
    from octgen.data.qm9 import load_qm9

    return load_qm9(progress=False)


def test_qm9_split_is_deterministic_and_disjoint():
    from octgen.data.qm9 import QM9_NUM_MOLECULES, SPLIT_SIZES, split_indices

    parts = {s: split_indices(QM9_NUM_MOLECULES, s) for s in SPLIT_SIZES}
    assert {s: len(v) for s, v in parts.items()} == SPLIT_SIZES
    assert len(np.unique(np.concatenate(list(parts.values())))) == QM9_NUM_MOLECULES
    assert np.array_equal(parts["test"], split_indices(QM9_NUM_MOLECULES, "test"))
    assert not np.array_equal(parts["test"], split_indices(QM9_NUM_MOLECULES, "test", seed=1))
    with pytest.raises(InputError):
        split_indices(10, "holdout")


def test_qm9_loads_from_qm9pack():
    """Parses qm9pack once (seconds) into the cache, then loads it from there."""
    data = _qm9()
    assert len(data) == 130_831 and data.offsets[-1] == len(data.z) == len(data.positions)
    methane = data.molecule(0)
    assert methane.name == "qm9_000001" and sorted(methane.elements) == ["C", "H", "H", "H", "H"]
    ch = np.linalg.norm(methane.positions[1:] - methane.positions[0], axis=1)
    assert np.allclose(ch, 1.0919, atol=2e-3)  # B3LYP C-H length of methane
    assert set(np.unique(data.z).tolist()) == {1, 6, 7, 8, 9}
    assert data.n_atoms.max() == 29


@settings(max_examples=40, deadline=None)
@given(index=st.integers(0, 130_830), seed=st.integers(0, 2**31 - 1))
def test_round_trip_random_qm9_molecules(index, seed):
    """Real (valid) molecules: random QM9 entries under random rotations."""
    mol = _qm9().molecule(index)
    tokens, order = TOK.encode_with_order(mol, "random", torch.Generator().manual_seed(seed))
    rot = np.asarray(tokens.meta["rotation"])
    back = TOK.decode(tokens)
    order = order.numpy()
    assert back.elements == [mol.elements[i] for i in order]
    assert np.abs(back.positions - TOK.molecule_to_box(mol, rot)[0][order]).max() <= HALF_BIN + 1e-9
    assert evaluate_molecule(TOK.decode(tokens, restore_frame=True))["n_atoms"] == len(mol)


def test_principal_frame_is_proper_and_the_same_for_any_orientation():
    from octgen.tokenize.molecule import principal_frame

    rng = np.random.default_rng(0)
    pos = rng.normal(size=(12, 3)) * np.array([3.0, 1.5, 0.5])
    R = principal_frame(pos)
    assert np.allclose(R @ R.T, np.eye(3)) and np.isclose(np.linalg.det(R), 1.0)
    x = (pos - pos.mean(0)) @ R.T
    var = x.var(axis=0)
    assert var[0] >= var[1] >= var[2]
    assert np.allclose(np.cov(x.T) - np.diag(np.diag(np.cov(x.T))), 0, atol=1e-9)
    for seed in range(5):
        Q = random_rotation(torch.Generator().manual_seed(seed))
        turned = pos @ Q.T + 1.0
        y = (turned - turned.mean(0)) @ principal_frame(turned).T
        assert np.allclose(x, y, atol=1e-9)


def test_principal_frame_tokens_decode_to_the_same_molecule():
    mol = Molecule(["C", "O", "H", "H", "H", "H"],
                   np.array([[0.0, 0.0, 0.0], [1.43, 0.0, 0.0], [-0.36, 1.03, 0.0], [-0.36, -0.51, 0.89],
                             [-0.36, -0.51, -0.89], [1.75, 0.0, 0.9]]), name="methanol")
    tokens, order = TOK.encode_with_order(mol, rotation="principal")
    # restoring the frame undoes the centring and the principal rotation
    err = np.linalg.norm(TOK.decode(tokens, restore_frame=True).positions - mol.positions[order.numpy()], axis=1)
    assert err.max() <= HALF_BIN * np.sqrt(3) + 1e-9
    spread = TOK.decode(tokens).positions.var(axis=0)
    assert spread[0] >= spread[1] >= spread[2]
    with pytest.raises(InputError, match="'principal'"):
        TOK.encode(mol, rotation="sideways")


def test_principal_offset_frame_moves_the_plane_off_every_split_plane_and_restores():
    # a planar six-atom molecule (every atom at z = 0)
    mol = Molecule(["C", "O", "H", "H", "C", "N"],
                   np.array([[0.0, 0.0, 0.0], [1.21, 0.0, 0.0], [-0.55, 0.94, 0.0], [-0.55, -0.94, 0.0],
                             [0.7, 2.1, 0.0], [1.9, 1.6, 0.0]]), name="flat")
    shift = TOK.frame_shift()
    assert np.allclose(shift, [0, 0, 2 * TOK.settings.half_box / 24])
    flat, _, _ = TOK.molecule_to_box(mol, "principal")
    moved, _, _ = TOK.molecule_to_box(mol, "principal-offset")
    assert np.allclose(moved - flat, shift) and np.allclose(flat[:, 2], 0, atol=1e-9)
    # the moved plane sits at least a third of a cell from the split planes of the levels with
    # cells of an eighth of the box or less, a 24th of the box from coarser ones (z = 0, where
    # the principal frame puts it, is a split plane of every level)
    box = 2 * TOK.settings.half_box
    z = moved[0, 2] + TOK.settings.half_box
    for depth in range(1, TOK.settings.depth + 1):
        cell = box / 2 ** depth
        gap = min(z % cell, cell - z % cell)
        assert gap >= (cell / 3 if depth >= 3 else box / 24) - 1e-9
    tokens, order = TOK.encode_with_order(mol, rotation="principal-offset")
    err = np.linalg.norm(TOK.decode(tokens, restore_frame=True).positions - mol.positions[order.numpy()], axis=1)
    assert err.max() <= HALF_BIN * np.sqrt(3) + 1e-9
    assert np.allclose(TOK.decode(tokens).positions.mean(0), shift, atol=HALF_BIN * 2)


def test_qm9_frame_setting_names_its_shards_and_rejects_unknown_frames(tmp_path, monkeypatch):
    from octgen.modality.base import get_modality
    from octgen.train.config import TrainConfig
    from octgen.train.data import qm9_train_tokens

    monkeypatch.setenv("OCTGEN_CACHE", str(tmp_path))
    mod = get_modality("qm9")(TrainConfig(modality="qm9", data={"frame": "principal"}, seed=5))
    assert mod.shard_dir().name == "qm9-train-r0-principal-s5"
    assert get_modality("qm9")(TrainConfig(modality="qm9", seed=5)).shard_dir().name == "qm9-train-r0-s5"
    offset = get_modality("qm9")(TrainConfig(modality="qm9", data={"frame": "principal-offset"}, seed=5))
    assert offset.shard_dir().name == "qm9-train-r0-principal-offset-s5"
    with pytest.raises(InputError, match="qm9 frame must be"):
        get_modality("qm9")(TrainConfig(modality="qm9", data={"frame": "upright"}))
    with pytest.raises(InputError, match="frame"):
        next(qm9_train_tokens(TOK, 0, 0, frame="upright"))
    with pytest.raises(InputError, match="exclude"):
        next(qm9_train_tokens(TOK, 2, 0, frame="principal"))
