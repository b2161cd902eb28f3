"""``octgen bench molecules``: quality, speed, steps curve and cache of the QM9 generator.

Figures (all without any filtering or ranking of samples):
- quality on ``--num`` samples (default 10,000) at the checkpoint's settings:
  EDM atom / molecule stability, validity, validity x uniqueness, novelty
  (against the QM9 training split), with molecules per second on this machine;
- the quality / speed curve over steps per level on ``--curve-num`` samples
  (default 1,000), from one token per step (``0``) to the default;
- cached versus recomputed coarser levels (in fp32): identical tokens and the speed-up.
"""
from __future__ import annotations

import time

REFERENCE = {  # published QM9 numbers (atom stab., mol stab., validity, V x U), percent
    "EDM": (98.7, 82.0, 91.9, 90.7),
    "GeoLDM": (98.9, 89.4, 93.8, 92.7),
    "Uni-3DAR (best 10% by perplexity)": (99.4, 93.7, 98.0, 94.0),
}


def add_arguments(p) -> None:
    from .._args import int_in_range

    p.add_argument("--checkpoint", default=None, help="pipeline folder (default: the shipped checkpoint)")
    p.add_argument("--num", type=int_in_range(0, 1_000_000), default=10_000,
                   help="samples for the quality figures (default 10000; 0 skips)")
    p.add_argument("--curve-num", type=int_in_range(0, 1_000_000), default=1_000,
                   help="samples per point of the steps curve (default 1000; 0 skips)")
    p.add_argument("--curve-steps", default="0,2,4,8",
                   help="comma-separated steps per level for the curve; 0 = one token per step (default 0,2,4,8)")
    p.add_argument("--cache-num", type=int_in_range(0, 100_000), default=200,
                   help="samples for the cached-vs-recomputed comparison (default 200; 0 skips)")
    p.add_argument("--batch-size", type=int_in_range(1, 100_000), default=500, help="molecules sampled together")
    p.add_argument("--seed", type=int_in_range(0, 2**63 - 1), default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int_in_range(0, 1024), default=0,
                   help="torch threads (default 0: torch's default, all cores)")
    p.add_argument("--plot-dir", default=None,
                   help="also draw the atom-count histogram against QM9's (atom_counts.png) into this folder")


def _sample(pipe, num: int, seed: int, batch_size: int, **overrides):
    """Token sequences and molecules of ``num`` samples, and the wall-clock seconds
    of sampling plus decoding (what ``octgen generate`` does before writing files)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    tokens = pipe.sample_tokens(num, generator=g, batch_size=batch_size, **overrides)
    mols = [pipe.tokenizer.decode(t) for t in tokens]
    return tokens, mols, time.perf_counter() - t0


def _quality(mols, training_smiles) -> dict:
    from ..metrics.molecules import evaluate_molecules

    return evaluate_molecules(mols, training_smiles)


def _distribution(mols, plot_dir) -> dict:
    """Atom counts and nearest-neighbour distances against the QM9 training split."""
    from ..data.qm9 import load_qm9
    from ..metrics.molecules import distribution_report

    qm9 = load_qm9(progress=False)
    report = distribution_report(mols, qm9.molecules(qm9.split_indices("train")))
    if plot_dir:
        from pathlib import Path

        from .plots import plot_atom_counts

        plot_atom_counts(report["atom_count_histogram"], report["reference_atom_count_histogram"],
                         Path(plot_dir) / "atom_counts.png",
                         f"{len(mols)} samples, no filtering: TV distance {report['atom_count_tv']:.3f}")
    return report


def _pct(x):
    return None if x is None else round(100 * float(x), 2)


def _row(q: dict) -> str:
    return (f"atom stab {_pct(q['atom_stability'])} | mol stab {_pct(q['mol_stability'])} | "
            f"valid {_pct(q['validity'])} | V x U {_pct(q['valid_unique'])} | novelty {_pct(q.get('novelty'))}")


def run(args) -> dict:
    import torch

    from ..weights import default_checkpoint
    from ..metrics.molecules import qm9_reference_smiles
    from ..pipeline.pipeline import OctGenPipeline
    from .timing import machine_summary

    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = args.checkpoint or str(default_checkpoint())
    pipe = OctGenPipeline.from_pretrained(ckpt)
    default_steps = pipe.sampler_config.steps
    result = {"checkpoint": ckpt, "machine": machine_summary(), "sampler": vars(pipe.sampler_config).copy(),
              "train_step": pipe.info.get("train_step")}
    print(f"checkpoint {ckpt}; {result['machine']}; default steps per level {default_steps}")
    training_smiles = set(qm9_reference_smiles("train")) if (args.num or args.curve_num) else None

    if args.num:
        _, mols, sec = _sample(pipe, args.num, args.seed, args.batch_size)
        q = _quality(mols, training_smiles)
        q.update(seconds=round(sec, 2), molecules_per_second=round(args.num / sec, 2))
        result["quality"] = q
        print(f"quality on {args.num} samples (no filtering): {_row(q)}")
        print(f"speed: {q['molecules_per_second']} molecules/s ({sec:.1f} s)")
        result["distribution"] = _distribution(mols, args.plot_dir)
        d = result["distribution"]
        print(f"atoms per molecule {d['atoms_mean']:.2f} (QM9 train {d['reference_atoms_mean']:.2f}), "
              f"atom-count TV {d['atom_count_tv']:.4f}; nearest-neighbour distances (10/50/90 %, ours vs QM9): " +
              "; ".join(f"{k} {v['quantiles_10_50_90']} vs {v['reference_quantiles_10_50_90']}"
                        for k, v in d.items() if isinstance(v, dict)))
        for name, ref in REFERENCE.items():
            ours = (_pct(q["atom_stability"]), _pct(q["mol_stability"]), _pct(q["validity"]), _pct(q["valid_unique"]))
            print(f"  vs {name} {ref}: ours {ours}")

    if args.curve_num:
        curve = []
        for text in args.curve_steps.split(","):
            k = int(text)
            steps = None if k == 0 else k
            _, mols, sec = _sample(pipe, args.curve_num, args.seed, args.batch_size, steps=steps)
            q = _quality(mols, training_smiles)
            row = {"steps_per_level": "one token per step" if steps is None else steps, "seconds": round(sec, 2),
                   "molecules_per_second": round(args.curve_num / sec, 2),
                   **{k2: q[k2] for k2 in ("atom_stability", "mol_stability", "validity", "valid_unique", "novelty")}}
            curve.append(row)
            print(f"steps {row['steps_per_level']}: {row['molecules_per_second']} mol/s | {_row(q)}")
        base = next((r for r in curve if r["steps_per_level"] == "one token per step"), None)
        if base is not None:
            for r in curve:
                r["speedup_vs_one_token_per_step"] = round(base["seconds"] / r["seconds"], 2)
                r["mol_stability_drop_points"] = round(100 * (base["mol_stability"] - r["mol_stability"]), 2)
        result["curve"] = curve

    if args.cache_num:
        # fp32: under bf16 autocast the two paths round differently and may draw different tokens.
        cached, _, t_c = _sample(pipe, args.cache_num, args.seed, args.batch_size, use_cache=True, precision="fp32")
        plain, _, t_p = _sample(pipe, args.cache_num, args.seed, args.batch_size, use_cache=False, precision="fp32")
        same = sum(all(torch.equal(a, b) for a, b in zip(x.structure, y.structure)) and torch.equal(x.payload, y.payload)
                   for x, y in zip(cached, plain))
        result["cache"] = {"samples": args.cache_num, "identical": same, "seconds_cached": round(t_c, 2),
                           "seconds_recomputed": round(t_p, 2), "speedup": round(t_p / t_c, 2)}
        print(f"cache: {same}/{args.cache_num} identical token sequences; cached {t_c:.1f} s vs recomputed "
              f"{t_p:.1f} s (x{t_p / t_c:.2f})")
    return result
