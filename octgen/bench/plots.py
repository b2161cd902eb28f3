"""PNG plots for benchmark outputs (learning curves, atom-count histograms), drawn
off-screen with matplotlib's Agg backend and written atomically."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the off-screen backend)

from ..export.atomic import atomic_path  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_learning_curve(points: list[dict], path: str | Path, title: str = "") -> Path:
    """Quality against training CPU-hours: EDM metrics (left) and the atom-count
    total-variation distance plus the share of H-C nearest distances inside QM9's
    1-99 % range (right), one marker per measured point."""
    hours = [p["train_cpu_seconds"] / 3600 for p in points]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("atom_stability", "atom stability"), ("mol_stability", "molecule stability"),
                       ("validity", "validity"), ("valid_unique", "valid x unique")):
        a.plot(hours, [100 * p[key] for p in points], "o-", label=label)
    a.set_xlabel("training CPU-hours (process CPU time)")
    a.set_ylabel("% of samples (no filtering)")
    a.set_ylim(0, 100)
    a.grid(alpha=0.3)
    a.legend()
    b.plot(hours, [p["atom_count_tv"] for p in points], "o-", label="atom-count TV to QM9")
    b.plot(hours, [p.get("H-C", {}).get("inside_reference_1_99", float("nan")) for p in points], "o-",
           label="H-C nearest distance inside QM9's 1-99 % range")
    b.set_xlabel("training CPU-hours (process CPU time)")
    b.set_ylim(0, 1)
    b.grid(alpha=0.3)
    b.legend()
    fig.suptitle(title)
    return _save(fig, path)


def plot_shape_curve(points: list[dict], path: str | Path, title: str = "") -> Path:
    """Shape generator quality against training CPU-hours, one marker per point."""
    hours = [p["train_cpu_seconds"] / 3600 for p in points]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("category_accuracy", "category accuracy"), ("attribute_accuracy", "attribute accuracy"),
                       ("sketch_iou_mean", "sketch IoU"), ("whole_objects", "whole objects"),
                       ("nna_mean", "1-NNA (lower is better)")):
        ax.plot(hours, [p.get(key) if p.get(key) is not None else float("nan") for p in points], "o-", label=label)
    ax.set_xlabel("training CPU-hours (process CPU time)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_atom_counts(hist: list[int], reference_hist: list[int], path: str | Path, title: str = "") -> Path:
    """Generated and reference atom-count histograms as fractions of molecules."""
    n, n_ref = max(sum(hist), 1), max(sum(reference_hist), 1)
    xs = range(len(hist))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar([x - 0.2 for x in xs], [h / n for h in hist], width=0.4, label="generated")
    ax.bar([x + 0.2 for x in xs], [h / n_ref for h in reference_hist], width=0.4, label="QM9")
    last = max([i for i, (h, r) in enumerate(zip(hist, reference_hist)) if h or r] or [1])
    ax.set_xlim(-1, last + 1)
    ax.set_xlabel("atoms per molecule (with hydrogens)")
    ax.set_ylabel("fraction of molecules")
    ax.legend()
    ax.set_title(title)
    return _save(fig, path)
