"""``octgen eval``: the standard evaluations of generated samples.

``octgen eval molecules PATH`` runs the EDM protocol (:mod:`octgen.metrics.molecules`)
on an SDF/MOL/XYZ file or a folder of them; ``--qm9-split test`` evaluates a QM9
split itself, the reference the published "data" row describes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import InputError

_ROWS = (("atom_stability", "atom stability"), ("mol_stability", "molecule stability"),
         ("validity", "validity"), ("uniqueness", "uniqueness (of valid)"),
         ("valid_unique", "valid and unique"), ("novelty", "novelty (of unique)"))


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate generated samples with the standard metrics",
                       description="Evaluate generated samples with the metrics the field reports.")
    esub = p.add_subparsers(dest="eval_kind", metavar="KIND", required=True, parser_class=type(p))
    m = esub.add_parser(
        "molecules", help="EDM metrics: atom / molecule stability, validity, uniqueness, novelty",
        description="EDM evaluation of 3D molecules with explicit hydrogens: bond orders from "
                    "interatomic distances (EDM bond-length tables, margins 10/5/3 pm), atom and "
                    "molecule stability against allowed valences, validity by RDKit sanitisation of the "
                    "largest fragment, uniqueness among valid SMILES and novelty against the QM9 training "
                    "split. Bad entries of a multi-molecule file are reported on stderr, one line each, "
                    "and left out (--strict stops instead).")
    m.add_argument("path", nargs="?", metavar="PATH", help="an .sdf, .mol or .xyz file, or a folder of them")
    m.add_argument("--qm9-split", choices=("train", "val", "test", "all"),
                   help="evaluate a split of QM9 itself instead of PATH (split seed 0)")
    m.add_argument("--novelty", choices=("qm9-train", "none"), default="qm9-train",
                   help="novelty reference: the QM9 training split (default; its SMILES are computed once "
                        "and cached) or none")
    m.add_argument("--strict", action="store_true", help="stop at the first bad entry instead of skipping it")
    m.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")
    m.set_defaults(func=run_molecules)


def run_molecules(args) -> int:
    from ..data.molecules import read_molecule_folder
    from ..metrics.molecules import PUBLISHED_QM9_DATA, evaluate_molecules, qm9_reference_smiles

    if (args.path is None) == (args.qm9_split is None):
        raise InputError("give either PATH or --qm9-split")
    if args.qm9_split:
        from ..data.qm9 import load_qm9

        data = load_qm9()
        molecules = data.molecules(data.split_indices(args.qm9_split))
        source = f"QM9 {args.qm9_split} split"
    else:
        molecules = read_molecule_folder(Path(args.path), strict=args.strict)
        source = args.path
    reference = qm9_reference_smiles("train") if args.novelty == "qm9-train" else None
    result = evaluate_molecules(molecules, training_smiles=reference)
    result["source"] = str(source)
    result["published_qm9_data"] = PUBLISHED_QM9_DATA
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(f"{source}: {result['n_molecules']} molecules, {result['n_atoms']} atoms")
    print(f"{'metric':<24} {'value %':>8} {'EDM QM9 data %':>15}")
    for key, label in _ROWS:
        value = result[key]
        ref = PUBLISHED_QM9_DATA.get(key)
        print(f"{label:<24} {'-' if value is None else f'{100 * value:.2f}':>8} "
              f"{'-' if ref is None else f'{100 * ref:.1f}':>15}")
    return 0
