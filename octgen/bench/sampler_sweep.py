"""``octgen bench molecule-sampler``: compare sampler settings of a molecule
checkpoint on a validation seed range (disjoint from the reported benchmark's seed 0).

Each ``--setting`` is a comma-separated list of :class:`~octgen.sampling.SamplerConfig`
overrides (``confidence=random,temperature=0.9``; ``steps=0`` means one token per
step, ``leaf_steps=-1`` one atom per step at the leaf level, ``size_level=-1`` off,
``level_steps=3:16;4:0`` 16 steps at structure level 3 and one token per step at
level 4, ``field_temperatures=1.0;-;-;-`` the element at temperature 1 and the
offsets at the leaf temperature); ``default`` is the checkpoint's own settings. Every setting samples the same
number of molecules from the same seed and is scored without filtering.
"""
from __future__ import annotations


def add_arguments(p) -> None:
    from .._args import int_in_range

    p.add_argument("--checkpoint", default=None, help="pipeline folder (default: the shipped checkpoint)")
    p.add_argument("--setting", action="append", default=None, metavar="K=V[,K=V...]",
                   help="sampler overrides to try (repeatable; 'default' = the checkpoint's settings)")
    p.add_argument("--num", type=int_in_range(1, 1_000_000), default=500, help="samples per setting")
    p.add_argument("--seed", type=int_in_range(0, 2**62), default=1_000_003, help="validation seed")
    p.add_argument("--batch-size", type=int_in_range(1, 100_000), default=500, help="molecules sampled together")
    p.add_argument("--threads", type=int_in_range(0, 1024), default=0, help="torch threads (0: torch's default)")


def _level_steps(text: str) -> dict:
    """``"3:16;4:0"`` -> ``{3: 16, 4: None}`` (0: one token per step)."""
    out = {}
    for item in text.split(";"):
        level, sep, steps = item.partition(":")
        if not sep:
            raise ValueError(item)
        n = int(steps)
        out[int(level)] = None if n == 0 else n
    return out


def _field_temperatures(text: str) -> tuple:
    """``"1.0;-;-;-"`` -> ``(1.0, None, None, None)`` ('-': the field keeps the leaf temperature)."""
    return tuple(None if t.strip() == "-" else float(t) for t in text.split(";"))


def parse_setting(text: str) -> dict:
    """``"confidence=random,top_p=0.9"`` -> overrides with typed values (InputError if malformed)."""
    from ..errors import InputError
    from ..sampling.scheduler import SamplerConfig

    if text.strip() == "default":
        return {}
    types = {"steps": int, "temperature": float, "top_k": int, "top_p": float, "choice_temperature": float,
             "remask": lambda v: v.lower() in ("1", "true", "yes"), "confidence": str, "precision": str,
             "leaf_steps": int, "size_level": int, "leaf_temperature": float, "level_steps": _level_steps,
             "field_temperatures": _field_temperatures}
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in types:
            raise InputError(f"--setting '{text}': expected K=V pairs with K in {', '.join(types)}")
        try:
            out[key] = types[key](value.strip())
        except ValueError:
            raise InputError(f"--setting '{text}': bad value for {key}") from None
    if out.get("steps") == 0:
        out["steps"] = None
    if out.get("leaf_steps") == -1:
        out["leaf_steps"] = None
    if out.get("size_level") == -1:
        out["size_level"] = None
    try:
        SamplerConfig(**out)
    except ValueError as e:
        raise InputError(f"--setting '{text}': {e}") from None
    return out


def run(args) -> dict:
    import torch

    from ..weights import default_checkpoint
    from ..pipeline.pipeline import OctGenPipeline
    from .curve import measure, validation_molecules

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = [(s, parse_setting(s)) for s in (args.setting or ["default"])]
    ckpt = args.checkpoint or str(default_checkpoint())
    pipe = OctGenPipeline.from_pretrained(ckpt)
    reference = validation_molecules()
    rows = []
    for text, overrides in settings:
        q = measure(pipe, args.num, args.seed, args.batch_size, reference, **overrides)
        row = {"setting": text, **{k: q[k] for k in ("atom_stability", "mol_stability", "validity", "valid_unique",
                                                      "atoms_mean", "atom_count_tv", "molecules_per_second")},
               "h_c_inside": q.get("H-C", {}).get("inside_reference_1_99")}
        rows.append(row)
        print(f"{text:40s} atom {100 * row['atom_stability']:5.1f} mol {100 * row['mol_stability']:5.1f} "
              f"valid {100 * row['validity']:5.1f} VxU {100 * row['valid_unique']:5.1f} atoms {row['atoms_mean']:.1f} "
              f"TV {row['atom_count_tv']:.3f} H-C in {row['h_c_inside']:.2f} | {row['molecules_per_second']:.1f} mol/s",
              flush=True)
    return {"checkpoint": ckpt, "num": args.num, "seed": args.seed, "rows": rows}
