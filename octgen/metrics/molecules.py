"""The standard EDM evaluation of 3D molecules (Hoogeboom et al., "Equivariant
Diffusion for Molecule Generation in 3D", ICML 2022), as the field reports it on QM9.

Protocol, per molecule with explicit hydrogens:
1. Bond orders from distances (:func:`octgen.data.bonds.bond_orders`, re-exported
   here as ``bond_orders``). For every atom pair, with ``d`` in picometres and the
   reference lengths ``b1, b2, b3`` (single, double, triple) of the pair from the
   tables there: order 1 if ``d < b1 + 10``; 2 if also ``d < b2 + 5``; 3 if also
   ``d < b3 + 3`` (margins 10 / 5 / 3 pm). A bond order only counts where the table
   has that pair; pairs missing from the single-bond table never bond.
2. Atom stability: the atom's summed bond orders equal one of its allowed
   valences (``ALLOWED_VALENCES``; elements without an entry are never stable).
   Molecule stability: every atom stable. Atom stability is pooled over all atoms
   of all molecules (not averaged per molecule).
3. Validity: an RDKit molecule from the atoms and perceived bonds (hydrogens
   explicit, RDKit may add implicit ones) passes ``SanitizeMol``; its SMILES is
   that of the largest fragment.
4. Uniqueness: distinct SMILES among the valid molecules / valid molecules.
   Novelty: unique valid SMILES absent from the training set / unique valid SMILES.

The EDM paper's QM9 data row is in ``PUBLISHED_QM9_DATA``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..data.bonds import bond_orders
from ..data.molecules import molecule_to_rdkit
from ..data.qm9 import CACHE_VERSION, SPLIT_SEED, cache_dir, load_qm9
from ..export.atomic import atomic_path

ALLOWED_VALENCES = {"H": (1,), "C": (4,), "N": (3,), "O": (2,), "F": (1,), "B": (3,), "Al": (3,),
                    "Si": (4,), "P": (3, 5), "S": (4,), "Cl": (1,), "As": (3,), "Br": (1,), "I": (1,),
                    "Hg": (1, 2), "Bi": (3, 5)}

# Hoogeboom et al. 2022, Table 1, row "Data" (QM9 with hydrogens), as fractions.
PUBLISHED_QM9_DATA = {"atom_stability": 0.990, "mol_stability": 0.952, "validity": 0.977, "valid_unique": 0.977}


def atom_stability(molecule, orders: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: each atom's summed bond orders is one of its allowed valences."""
    orders = bond_orders(molecule) if orders is None else orders
    valence = orders.sum(axis=1)
    return np.array([int(v) in ALLOWED_VALENCES.get(e, ()) for e, v in zip(molecule.elements, valence)],
                    dtype=bool)


def molecule_smiles(molecule, orders: np.ndarray | None = None) -> str | None:
    """Canonical SMILES of the largest fragment after RDKit sanitisation, or None
    when sanitisation fails (the EDM validity test)."""
    from rdkit import Chem, RDLogger

    mol = molecule_to_rdkit(molecule, bond_orders(molecule) if orders is None else orders)
    RDLogger.DisableLog("rdApp.*")
    try:
        try:
            Chem.SanitizeMol(mol)
        except ValueError:  # RDKit's MolSanitizeException family
            return None
        frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
        largest = max(frags, default=mol, key=lambda m: m.GetNumAtoms())
        try:
            Chem.SanitizeMol(largest)
        except ValueError:
            return None
        return Chem.MolToSmiles(largest)
    finally:
        RDLogger.EnableLog("rdApp.*")


def evaluate_molecule(molecule) -> dict:
    """Per-molecule EDM facts: ``stable_atoms``, ``n_atoms``, ``stable`` (bool) and
    ``smiles`` (None when invalid)."""
    orders = bond_orders(molecule)
    ok = atom_stability(molecule, orders)
    return {"n_atoms": len(molecule), "stable_atoms": int(ok.sum()), "stable": bool(ok.all()) and len(ok) > 0,
            "smiles": molecule_smiles(molecule, orders) if len(molecule) else None}


def evaluate_molecules(molecules, training_smiles=None, progress: bool = False) -> dict:
    """EDM metrics of a set of molecules (fractions in [0, 1]).

    Args:
        molecules: list of :class:`~octgen.data.molecules.Molecule`.
        training_smiles: optional iterable of canonical SMILES of the training set
            (as made by :func:`molecule_smiles`); adds ``novelty``.
        progress: print a progress line to stderr every 10,000 molecules.
    Returns:
        dict with ``n_molecules``, ``n_atoms``, ``atom_stability`` (pooled over
        atoms), ``mol_stability``, ``validity``, ``uniqueness`` (unique / valid),
        ``valid_unique`` (unique / all), ``novelty`` (novel / unique, or None) and
        ``n_valid``, ``n_unique``, ``n_novel``.
    """
    n_mol = n_atoms = n_stable_atoms = n_stable_mols = 0
    valid: list[str] = []
    for k, m in enumerate(molecules, start=1):
        r = evaluate_molecule(m)
        n_mol += 1
        n_atoms += r["n_atoms"]
        n_stable_atoms += r["stable_atoms"]
        n_stable_mols += int(r["stable"])
        if r["smiles"] is not None:
            valid.append(r["smiles"])
        if progress and k % 10_000 == 0:
            print(f"evaluated {k} molecules", file=sys.stderr)
    unique = set(valid)
    novel = None if training_smiles is None else unique - set(training_smiles)
    return {
        "n_molecules": n_mol, "n_atoms": n_atoms,
        "atom_stability": n_stable_atoms / n_atoms if n_atoms else 0.0,
        "mol_stability": n_stable_mols / n_mol if n_mol else 0.0,
        "validity": len(valid) / n_mol if n_mol else 0.0,
        "uniqueness": len(unique) / len(valid) if valid else 0.0,
        "valid_unique": len(unique) / n_mol if n_mol else 0.0,
        "novelty": (len(novel) / len(unique) if unique else 0.0) if novel is not None else None,
        "n_valid": len(valid), "n_unique": len(unique), "n_novel": len(novel) if novel is not None else None,
    }


def qm9_reference_smiles(split: str = "train", seed: int | None = None, progress: bool = True) -> list[str]:
    """Valid SMILES (by :func:`molecule_smiles`) of a QM9 split, for novelty; computed
    once (a minute or two for the training split) and cached next to the QM9 cache."""
    seed = SPLIT_SEED if seed is None else seed
    path = cache_dir() / "qm9" / f"smiles_{split}_seed{seed}_v{CACHE_VERSION}.txt"
    if path.is_file():
        return path.read_text().split("\n")[:-1]
    data = load_qm9(progress=progress)
    if progress:
        print(f"computing SMILES of the QM9 {split} split once into {path} ...", file=sys.stderr)
    smiles = []
    for i in data.split_indices(split, seed):
        s = molecule_smiles(data.molecule(int(i)))
        if s is not None:
            smiles.append(s)
    with atomic_path(Path(path)) as tmp:
        tmp.write_text("".join(s + "\n" for s in smiles))
    return smiles


# Element pairs whose nearest-neighbour distance is tracked on learning curves:
# for each atom of the first element, the distance to the nearest atom of the second.
NEAREST_PAIRS = (("H", "C"), ("C", "C"), ("N", "C"), ("O", "C"))


def atom_count_histogram(molecules, max_atoms: int = 64) -> np.ndarray:
    """(max_atoms + 1,) molecules per atom count (the last bin holds larger ones)."""
    counts = np.minimum([len(m) for m in molecules], max_atoms)
    return np.bincount(counts, minlength=max_atoms + 1).astype(np.int64)


def total_variation(hist_a: np.ndarray, hist_b: np.ndarray) -> float:
    """Total-variation distance ``0.5 sum |p - q|`` of two histograms (normalised here)."""
    p, q = hist_a / max(hist_a.sum(), 1), hist_b / max(hist_b.sum(), 1)
    return float(0.5 * np.abs(p - q).sum())


def nearest_distances(molecules, pair: tuple[str, str]) -> np.ndarray:
    """Distances (Angstrom) from every atom of element ``pair[0]`` to the nearest atom
    of element ``pair[1]`` (another atom when the elements are equal), pooled over
    ``molecules``; molecules without both elements contribute nothing."""
    out = []
    for m in molecules:
        el = np.asarray(m.elements)
        a, b = np.nonzero(el == pair[0])[0], np.nonzero(el == pair[1])[0]
        if not len(a) or not len(b):
            continue
        d = np.linalg.norm(m.positions[a][:, None] - m.positions[b][None], axis=-1)
        if pair[0] == pair[1]:
            if len(a) < 2:
                continue
            np.fill_diagonal(d, np.inf)
        out.append(d.min(axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def distribution_report(molecules, reference, max_atoms: int = 64) -> dict:
    """How close a sample's sizes and local geometry are to a reference set.

    Args:
        molecules: generated molecules.
        reference: reference molecules (for example a QM9 split).
    Returns:
        ``atoms_mean`` / ``reference_atoms_mean``, ``atom_count_tv`` (total-variation
        distance of the atom-count histograms), ``atom_count_histogram`` and
        ``reference_atom_count_histogram`` (lists), and per pair in
        :data:`NEAREST_PAIRS` (key ``"H-C"`` ...) the 10 / 50 / 90 % quantiles of
        the nearest-neighbour distance, ours and the reference's, and the fraction
        of our distances inside the reference's 1-99 % range.
    """
    h, h_ref = atom_count_histogram(molecules, max_atoms), atom_count_histogram(reference, max_atoms)
    report = {"atoms_mean": float(np.mean([len(m) for m in molecules])) if len(molecules) else 0.0,
              "reference_atoms_mean": float(np.mean([len(m) for m in reference])),
              "atom_count_tv": total_variation(h, h_ref),
              "atom_count_histogram": h.tolist(), "reference_atom_count_histogram": h_ref.tolist()}
    for pair in NEAREST_PAIRS:
        d, d_ref = nearest_distances(molecules, pair), nearest_distances(reference, pair)
        if not len(d_ref):
            continue
        lo, hi = np.quantile(d_ref, [0.01, 0.99])
        report["-".join(pair)] = {
            "quantiles_10_50_90": np.quantile(d, [0.1, 0.5, 0.9]).round(4).tolist() if len(d) else None,
            "reference_quantiles_10_50_90": np.quantile(d_ref, [0.1, 0.5, 0.9]).round(4).tolist(),
            "inside_reference_1_99": float(np.mean((d >= lo) & (d <= hi))) if len(d) else 0.0}
    return report
