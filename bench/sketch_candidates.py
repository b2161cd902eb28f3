"""Would drawing several shapes per sketch and keeping the one whose silhouette best
matches the drawing raise the sketch IoU? And does re-normalising a generated mesh
(bounding box centred, longest side 1.8, as the training shapes are built) help?

For each validation source shape (``--per-category`` per category, caption 0, the
sketch view of ``octgen bench shapes``), ``--candidates`` shapes are drawn from the
sketch (seeds ``index + 7919 j``) and scored two ways: the bench's 3D IoU against the
source (64^3), and a silhouette score that sees only the drawing: the filled outline
of the strokes against each candidate's filled orthographic silhouette, both cropped
and scaled like ``preprocess_sketch`` does, best over 28 views of the sketch-view
range (azimuth 15-75, elevation 10-35 degrees). Prints the mean IoU of the first
candidate, of the silhouette-picked one and of the best one (an oracle), and the
first candidate's IoU raw, centred and re-fitted.

    OMP_NUM_THREADS=2 python bench/sketch_candidates.py checkpoints/shapes-xs --per-category 4 --candidates 4

(The figures in checkpoints/shapes-xs/README.md came from this, validation split.)
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy import ndimage

from octgen.bench.shapes import SKETCH_SEED_OFFSET, make_items, parse_categories, split_sources_references
from octgen.condition.sketch import SKETCH_SIZE, square_crop
from octgen.data.sketches import SketchView, _camera, render_sketch
from octgen.metrics.shapes import mesh_occupancy_grid, sdf_occupancy_grid, volumetric_iou
from octgen.pipeline.pipeline import OctGenPipeline

VIEWS = [SketchView(float(a), float(e)) for a in np.linspace(15, 75, 7) for e in np.linspace(10, 35, 4)]


def normalised(mask: np.ndarray, n: int = 64, margin: float = 0.08) -> np.ndarray:
    """A 2D mask cropped to its content and scaled into an n x n square (aspect kept)."""
    if not mask.any():
        return np.zeros((n, n), bool)
    t = torch.from_numpy(square_crop(mask, mask, margin))[None, None]
    return (torch.nn.functional.interpolate(t, size=(n, n), mode="area")[0, 0] > 0.5).numpy()


def silhouettes(occ: np.ndarray, size: int = 160, extent: float = 1.35) -> list[np.ndarray]:
    """Filled orthographic silhouettes of a [-1, 1]^3 occupancy grid from every view in VIEWS."""
    h = 2.0 / occ.shape[0]
    p = -1 + (np.argwhere(occ) + 0.5) * h
    px = 2 * extent / (size - 1)
    out = []
    for view in VIEWS:
        _, right, up = (x.numpy() for x in _camera(view))
        u, v = p @ right, p @ up
        img = np.zeros((size, size), bool)
        for du in (-0.5, 0.0, 0.5):  # splat each voxel's footprint
            for dv in (-0.5, 0.0, 0.5):
                c = np.round((u + du * h + extent) / px).astype(int)
                r = np.round((extent - (v + dv * h)) / px).astype(int)
                ok = (c >= 0) & (c < size) & (r >= 0) & (r < size)
                img[r[ok], c[ok]] = True
        out.append(normalised(ndimage.binary_fill_holes(ndimage.binary_closing(img))))
    return out


def refit(mesh, extent: float | None = 0.9):
    m = mesh.copy()
    lo, hi = m.bounds
    m.apply_translation(-(lo + hi) / 2)
    if extent is not None:
        m.apply_scale(2 * extent / (hi - lo).max())
    return m


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--per-category", type=int, default=4)
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--split", default="val")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default="")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = OctGenPipeline.from_pretrained(args.checkpoint)
    categories = parse_categories(None)
    ds, picked = split_sources_references(categories, args.per_category, 0, args.split)
    items = [it for c in categories for it in make_items(ds, picked[c][0], "first", 0)]
    rows, t0 = [], time.time()
    for n, item in enumerate(items):
        s = item.sample
        ref = sdf_occupancy_grid(s.sdf, 64)
        drawing = render_sketch(s.sdf, torch.Generator().manual_seed(SKETCH_SEED_OFFSET + s.index), size=SKETCH_SIZE)
        outline = normalised(ndimage.binary_fill_holes(drawing < 128))
        cands = []
        for j in range(args.candidates):
            [res] = pipe(generator=torch.Generator().manual_seed(s.index + 7919 * j), sketch=drawing)
            occ = mesh_occupancy_grid(res.mesh, 64)
            score = max(volumetric_iou(outline, sil) for sil in silhouettes(occ))
            row = {"iou": volumetric_iou(ref, occ), "silhouette": score}
            if j == 0:
                row["iou_centred"] = volumetric_iou(ref, mesh_occupancy_grid(refit(res.mesh, None), 64))
                row["iou_refitted"] = volumetric_iou(ref, mesh_occupancy_grid(refit(res.mesh), 64))
            cands.append(row)
        rows.append({"category": s.category, "index": s.index, "candidates": cands})
        print(f"[{n + 1}/{len(items)}] {s.category}-{s.index}: IoU / silhouette "
              + " ".join(f"{c['iou']:.2f}/{c['silhouette']:.2f}" for c in cands) + f"  {time.time() - t0:.0f} s", flush=True)
    first = np.mean([r["candidates"][0]["iou"] for r in rows])
    every = np.mean([c["iou"] for r in rows for c in r["candidates"]])
    chosen = np.mean([max(r["candidates"], key=lambda c: c["silhouette"])["iou"] for r in rows])
    oracle = np.mean([max(c["iou"] for c in r["candidates"]) for r in rows])
    spread = np.mean([np.ptp([c["iou"] for c in r["candidates"]]) for r in rows])
    centred = np.mean([r["candidates"][0]["iou_centred"] for r in rows])
    refitted = np.mean([r["candidates"][0]["iou_refitted"] for r in rows])
    summary = {"sources": len(rows), "candidates": args.candidates, "first": first, "every": every,
               "silhouette_pick": chosen, "oracle": oracle, "iou_range_per_sketch": spread,
               "first_centred": centred, "first_refitted": refitted}
    print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "rows": rows, "options": vars(args)}, f, indent=1)


if __name__ == "__main__":
    main()
