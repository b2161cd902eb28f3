"""Time from "Generate" to the first coarse preview and to the final mesh in the app's
shape tab, on this machine's CPU, with the shipped ``checkpoints/shapes-xs``.

Calls the tab's handler (``app.generate_shape``, the generator the button runs) the
way Gradio does, so the figures are server-side: they leave out the browser's upload,
download and drawing. The first call also loads the pipeline and the text encoder
(reported apart as ``cold``); the next ``--runs`` calls are warm.

Run: ``python bench/app_preview.py [--runs 5] [--out bench/results/app_preview.json]``
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import app  # noqa: E402  (the app module sits at the repository root)


def time_one(prompt: str, seed: int) -> dict:
    """-> seconds to the first yield (a coarse preview) and to the last (the mesh)."""
    t0 = time.perf_counter()
    first = last = None
    previews = 0
    for out in app.generate_shape("Prompt", prompt, None, seed, False):
        now = time.perf_counter() - t0
        if first is None:
            first = now
        last = now
        previews += out[3] is None  # timings appear only with the mesh
    return {"prompt": prompt, "seed": seed, "first_preview_s": round(first, 4), "final_mesh_s": round(last, 4),
            "previews": previews, "faces": out[2].split(" faces")[0] if out[0] else "no surface"}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "app_preview.json"))
    args = parser.parse_args()
    os.environ.setdefault(app.APP_TMP_ENV, tempfile.mkdtemp(prefix="octgen-bench-"))
    os.environ.pop(app.SHAPE_CHECKPOINT_ENV, None)
    prompts = app.SHAPE_EXAMPLE_PROMPTS
    load_before = os.getloadavg()
    cold = time_one(prompts[0], 0)
    warm = [time_one(prompts[i % len(prompts)], i) for i in range(args.runs)]
    report = {
        "checkpoint": "checkpoints/shapes-xs",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "load_average_before": load_before,
                    "load_average_after": os.getloadavg()},
        "what": "server-side seconds from the Generate handler's call to its first yield (voxel preview of "
                "depth 1) and to its last (the mesh GLB written); browser transfer and drawing not included",
        "cold": cold,
        "warm": warm,
        "warm_median": {k: round(statistics.median(r[k] for r in warm), 4)
                        for k in ("first_preview_s", "final_mesh_s")},
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["warm_median"]), "cold:", cold["first_preview_s"], cold["final_mesh_s"])


if __name__ == "__main__":
    main()
