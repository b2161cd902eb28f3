"""Ship a training stage: a learning-curve run's ``best/`` becomes a checkpoint folder.

A shipped checkpoint is a lineage of stages, each a run started from the weights
before it (``init_from``) and measured by ``octgen bench molecule-curve`` /
``shape-curve``. Shipping the next stage means more than copying ``best/``: the
checkpoint's ``curve.jsonl`` continues from the point that was shipped, on one step and
CPU-time axis (the previous stage's later points go to ``curve_stage<K>_tail.jsonl``),
``train_log.jsonl`` gets the run's losses under the new stage number, ``pipeline.json``
keeps the checkpoint's sampler defaults and its list of stages and adds this one and its
CPU time, the figures measured on the previous weights (``metrics*.json``,
``stages*.txt|json``) move to ``ab/stage<K>_*`` (they no longer describe the folder) and
the learning curve is drawn again. The new folder is assembled beside the old one and
swapped in at the end, so a failure leaves the checkpoint as it was.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import InputError

# Top-level files of a checkpoint that describe its weights (moved aside when they change).
MEASURED_PATTERNS = ("metrics*.json", "stages*.txt", "stages*.json")
# Folders of a run's best/ that replace the checkpoint's.
WEIGHT_FOLDERS = ("transformer", "tokenizer", "conditioner")


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path}: not a JSON-lines file") from None


def _read_json(path: Path) -> dict:
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path}: unreadable JSON") from None
    if not isinstance(info, dict):
        raise InputError(f"{path}: expected a JSON object")
    return info


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def splice_curve(old: list[dict], base_cpu: float, run: list[dict], label: str) -> tuple[list[dict], list[dict]]:
    """The lineage curve continued by a new stage.

    Args:
        old: the checkpoint's curve points (``step``, ``train_cpu_seconds``, ...).
        base_cpu: all-stage CPU seconds of the shipped weights; the old point measured
            there is where the new stage starts.
        run: the new stage's points, steps and CPU counted from its own start.
        label: the new stage's name, stored in each of its points.
    Returns:
        (the spliced curve, the old points after the base point: the previous stage's
        tail, which the shipped lineage no longer passes through).
    """
    if old:
        base = min(old, key=lambda p: abs(p["train_cpu_seconds"] - base_cpu))
        if abs(base["train_cpu_seconds"] - base_cpu) > 1.0:
            raise InputError(f"no point of the checkpoint's curve.jsonl was measured at its shipped weights "
                             f"({base_cpu:.1f} CPU-s in all stages)")
        head = [p for p in old if p["step"] <= base["step"]]
        tail = [p for p in old if p["step"] > base["step"]]
        step0, cpu0 = base["step"], base["train_cpu_seconds"]
    else:
        head, tail, step0, cpu0 = [], [], 0, 0.0
    new = [{**p, "step": p["step"] + step0, "train_cpu_seconds": round(p["train_cpu_seconds"] + cpu0, 3),
            "stage_step": p["step"], "stage": label} for p in run]
    return head + new, tail


def ship(run_dir: str | Path, checkpoint: str | Path, label: str, config: str = "") -> dict:
    """Make ``run_dir/best`` the weights of ``checkpoint`` (see the module docstring).

    Args:
        run_dir: a learning-curve run folder (``best/``, ``curve.jsonl``, ``train_log.jsonl``).
        checkpoint: the checkpoint folder to continue (created when missing: the run is
            its first stage).
        label: the stage's name in the curve (e.g. ``"5: continued at lr 5e-4"``).
        config: the training config to name in ``train_stages`` (default: the run's
            ``output_dir``).
    Returns:
        ``{"checkpoint", "stage", "step", "train_cpu_seconds", "train_cpu_seconds_all_stages", "moved"}``.
    Raises:
        InputError: a missing or inconsistent run or checkpoint (nothing is changed).
    """
    from .plots import plot_learning_curve, plot_shape_curve
    from ..pipeline.pipeline import PIPELINE_NAME, canonical_entry, component_class, read_pipeline_info

    run, ckpt = Path(run_dir), Path(checkpoint)
    best = run / "best"
    if not (best / PIPELINE_NAME).is_file():
        raise InputError(f"{run}: no best/ pipeline folder (run 'octgen bench molecule-curve' or 'shape-curve' first)")
    if not label.strip():
        raise InputError("the stage label must not be empty")
    new_info = read_pipeline_info(best)
    if "train_step" not in new_info or "train_cpu_seconds" not in new_info:
        raise InputError(f"{best / PIPELINE_NAME}: not a training export (no train_step / train_cpu_seconds)")
    run_points = _read_jsonl(run / "curve.jsonl")
    step = int(new_info["train_step"])
    if not any(p.get("step") == step for p in run_points):
        raise InputError(f"{run / 'curve.jsonl'}: no point at best/'s step {step}")
    if ckpt.exists() and not (ckpt / PIPELINE_NAME).is_file():
        raise InputError(f"{ckpt}: exists but is not a checkpoint folder (no {PIPELINE_NAME})")

    old_info = read_pipeline_info(ckpt) if ckpt.exists() else {}
    stages = list(old_info.get("train_stages") or ([f"stage 1: {old_info.get('train_step')} steps"] if old_info else []))
    k = len(stages)  # stages so far; the new one is k + 1
    old_all = float(old_info.get("train_cpu_seconds_all_stages", old_info.get("train_cpu_seconds", 0.0)))
    curve, tail = splice_curve(_read_jsonl(ckpt / "curve.jsonl"), old_all, run_points, label)
    last = max(p["step"] for p in run_points)
    source = config or new_info.get("train_config", {}).get("output_dir", str(run))
    stage_line = f"{source}: steps 0-{step} (best of {last})" + (f", init from stage {k}" if k else ", from scratch")
    cpu = float(new_info["train_cpu_seconds"])
    info = {**old_info, **new_info, "train_stages": stages + [stage_line],
            "train_cpu_seconds_all_stages": round(old_all + cpu, 1)}
    for slot in WEIGHT_FOLDERS:  # an export by older code may name a defining module
        if info.get(slot):
            info[slot] = canonical_entry(component_class(info[slot], slot, best))
    if old_info.get("sampler"):
        info["sampler"] = old_info["sampler"]  # the checkpoint's chosen defaults, not the run's
    log = _read_jsonl(ckpt / "train_log.jsonl") + [{**r, "stage": k + 1} for r in _read_jsonl(run / "train_log.jsonl")]

    tmp = ckpt.parent / f".{ckpt.name}.ship-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if ckpt.exists():
        shutil.copytree(ckpt, tmp)
    else:
        tmp.mkdir(parents=True)
    moved = []
    try:
        for pattern in MEASURED_PATTERNS:
            for f in sorted(tmp.glob(pattern)):
                dest = tmp / "ab" / f"stage{k}_{f.name}"
                dest.parent.mkdir(exist_ok=True)
                f.rename(dest)
                moved.append(f"{f.name} -> ab/{dest.name}")
        for name in WEIGHT_FOLDERS:
            shutil.rmtree(tmp / name, ignore_errors=True)
            if (best / name).is_dir():
                shutil.copytree(best / name, tmp / name)
        (tmp / PIPELINE_NAME).write_text(json.dumps(info, indent=2, default=str) + "\n")
        _write_jsonl(tmp / "curve.jsonl", curve)
        if tail:
            _write_jsonl(tmp / f"curve_stage{k}_tail.jsonl", tail)
        _write_jsonl(tmp / "train_log.jsonl", log)
        plot = plot_learning_curve if "atom_stability" in curve[-1] else plot_shape_curve
        plot(curve, tmp / "learning_curve.png", f"{ckpt.name}: {len(stages) + 1} stages")
        old = ckpt.parent / f".{ckpt.name}.ship-old"
        shutil.rmtree(old, ignore_errors=True)
        if ckpt.exists():
            ckpt.rename(old)
        tmp.rename(ckpt)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"checkpoint": str(ckpt), "stage": k + 1, "step": step, "train_cpu_seconds": round(cpu, 1),
            "train_cpu_seconds_all_stages": info["train_cpu_seconds_all_stages"], "moved": moved}
