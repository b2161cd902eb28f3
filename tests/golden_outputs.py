"""Reference outputs of the shipped checkpoints for fixed seeds.

``tests/test_golden_outputs.py`` recomputes these and compares them with
``tests/golden_outputs.json``; a refactor must leave them unchanged. When a
checkpoint is retrained on purpose, rewrite the file (and say so in the commit):

    OMP_NUM_THREADS=2 python tests/golden_outputs.py --write
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden_outputs.json")
PROMPTS = ["a round table with four legs", "a tall bottle"]


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def tokens_sha(tokens) -> str:
    h = hashlib.sha256()
    for s in tokens.structure:
        h.update(s.to(torch.uint8).numpy().tobytes())
        h.update(b"|")
    h.update(tokens.payload.to(torch.int64).numpy().tobytes())
    return h.hexdigest()[:16]


def molecule_outputs() -> dict:
    """Sampled in float64, not the checkpoint's default precision: bf16 autocast (what
    "auto" picks on AVX-512 CPUs) gives different tokens on CPUs of other kinds, and
    float64 keeps a sampled token from flipping on a kernel's rounding."""
    from octgen.pipeline import OctGenPipeline

    ckpt = ROOT / "checkpoints" / "qm9-xs"
    pipe = OctGenPipeline.from_pretrained(ckpt)
    pipe.transformer.to(torch.float64)
    toks = pipe.sample_tokens(6, generator=torch.Generator().manual_seed(0), precision="fp32")
    mols = [pipe.tokenizer.decode(t) for t in toks]
    return {"weights": file_sha(ckpt / "transformer" / "diffusion_pytorch_model.safetensors"),
            "tokens": [tokens_sha(t) for t in toks],
            "elements": [list(map(str, m.elements)) for m in mols],
            "positions": [np.round(np.asarray(m.positions, dtype=np.float64), 4).tolist() for m in mols]}


def shape_outputs() -> dict:
    from octgen.pipeline import OctGenPipeline

    ckpt = ROOT / "checkpoints" / "shapes-xs"
    pipe = OctGenPipeline.from_pretrained(ckpt)
    out = {"weights": file_sha(ckpt / "transformer" / "diffusion_pytorch_model.safetensors"), "items": []}
    for i, prompt in enumerate(PROMPTS + [None]):
        [r] = pipe(prompt=prompt, generator=torch.Generator().manual_seed(i))
        v = np.asarray(r.mesh.vertices, dtype=np.float64)
        out["items"].append({"prompt": prompt, "tokens": tokens_sha(r.tokens),
                             "vertices": int(len(v)), "faces": int(len(r.mesh.faces)),
                             "vertex_sum": np.round(v.sum(axis=0), 3).tolist() if len(v) else [0, 0, 0],
                             "area": round(float(r.mesh.area), 4)})
    return out


def compute() -> dict:
    return {"qm9-xs": molecule_outputs(), "shapes-xs": shape_outputs()}


if __name__ == "__main__":
    if "--write" in sys.argv:
        GOLDEN.write_text(json.dumps(compute(), indent=1) + "\n")
        print(f"wrote {GOLDEN}")
    else:
        print(json.dumps(compute(), indent=1))
