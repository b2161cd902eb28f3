"""``octgen bench shape-sheets``: pictures of what a shape checkpoint makes.

- ``contact_sheet.png``: one row per category: the prompt (caption 0 of the
  category's first held-out test shape, which names every attribute), the shapes
  generated from it with seeds 0..``--seeds``-1, and a training shape of that
  category (marching cubes of its exact SDF) for comparison.
- ``sketch_sheet.png``: one row per category: a line drawing of the held-out shape
  from a view no training sketch used, the shape generated from it, and the
  source shape.

Rendered off-screen with pyvista from one fixed camera (:mod:`octgen.export.render`);
nothing is picked or filtered.
"""
from __future__ import annotations

import textwrap
import time
from pathlib import Path


def add_arguments(p) -> None:
    from .._args import int_in_range

    p.add_argument("--checkpoint", default=None, help="shape pipeline folder (default: checkpoints/shapes-xs)")
    p.add_argument("--out-dir", required=True, help="folder for contact_sheet.png and sketch_sheet.png")
    p.add_argument("--categories", default=None, help="comma-separated categories (default: all)")
    p.add_argument("--seeds", type=int_in_range(1, 10), default=3, help="generated shapes per prompt (default 3)")
    p.add_argument("--size", type=int_in_range(64, 1024), default=160, help="pixels per picture (default 160)")
    p.add_argument("--threads", type=int_in_range(0, 1024), default=0)


def _sheet(rows: list[list], titles: list[str], path: Path, col_titles: list[str]) -> Path:
    """Draw a grid: each row a list of images (HxWx3 or HxW) or strings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..export.atomic import atomic_path

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols, 1.9 * n_rows), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.set_xticks([]), ax.set_yticks([])
            cell = row[j] if j < len(row) else None
            if isinstance(cell, str):
                ax.text(0.03, 0.5, textwrap.fill(cell, 24), fontsize=7, va="center", ha="left",
                        transform=ax.transAxes)
                for s in ax.spines.values():
                    s.set_visible(False)
            elif cell is not None:
                ax.imshow(cell, cmap="gray" if cell.ndim == 2 else None, vmin=0, vmax=255)
            if i == 0 and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=8)
        axes[i, 0].set_ylabel(titles[i], fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def run(args) -> dict:
    import torch

    from ..condition.sketch import SKETCH_SIZE
    from ..data.sketches import render_sketch
    from ..export.render import MeshRenderer
    from ..metrics.shapes import largest_part_area_fraction
    from ..pipeline.pipeline import OctGenPipeline
    from .shapes import (SKETCH_SEED_OFFSET, make_items, parse_categories, reference_meshes, resolve_checkpoint,
                         split_sources_references)

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = resolve_checkpoint(args.checkpoint)
    pipe = OctGenPipeline.from_pretrained(ckpt)
    depth = pipe.tokenizer.config.fine_depth
    categories = parse_categories(args.categories)
    ds, picked = split_sources_references(categories, 1, 0, "test")
    train_ds, train_picked = split_sources_references(categories, 1, 0, "train")
    render = MeshRenderer(args.size)
    prompt_rows, sketch_rows, facts = [], [], []
    for c in categories:
        [item] = make_items(ds, picked[c][0], "first", 0)
        gens = [pipe(prompt=item.prompt, generator=torch.Generator().manual_seed(k))[0].mesh
                for k in range(args.seeds)]
        [train_mesh] = reference_meshes(train_ds, train_picked[c][0], depth)
        prompt_rows.append([item.prompt, *[render(m) for m in gens], render(train_mesh)])
        s = item.sample
        drawing = render_sketch(s.sdf, torch.Generator().manual_seed(SKETCH_SEED_OFFSET + s.index), size=SKETCH_SIZE)
        [from_sketch] = pipe(sketch=drawing, generator=torch.Generator().manual_seed(0))
        [source] = reference_meshes(ds, [s.index], depth)
        sketch_rows.append([drawing, render(from_sketch.mesh), render(source)])
        facts.append({"category": c, "prompt": item.prompt, "test_index": s.index,
                      "largest_part_area": [round(largest_part_area_fraction(m), 3) for m in gens],
                      "sketch_largest_part_area": round(largest_part_area_fraction(from_sketch.mesh), 3)})
        print(f"[{c}] '{item.prompt}'", flush=True)
    render.close()
    gen_titles = [f"seed {k}" for k in range(args.seeds)]
    contact = _sheet(prompt_rows, categories, out / "contact_sheet.png", ["prompt", *gen_titles, "a training shape"])
    sketch = _sheet(sketch_rows, categories, out / "sketch_sheet.png",
                    ["sketch (unseen view)", "generated", "source shape"])
    print(f"wrote {contact} and {sketch} ({time.perf_counter() - t0:.0f} s)")
    return {"bench": "shape-sheets", "checkpoint": str(ckpt), "contact_sheet": str(contact),
            "sketch_sheet": str(sketch), "rows": facts}
