"""Where a molecule checkpoint loses its atoms: sample with QM9's true structure given
down to level k (k = 0..D; the sampler's ``given_levels``) and score each, plus the
tokenizer's ceiling (true tokens) and true cells + elements with every offset at its
cell centre.

    OCTGEN_CACHE=... OMP_NUM_THREADS=2 python bench/molecule_stages.py checkpoints/qm9-xs --num 500

(The figures in checkpoints/qm9-xs/README.md's diagnosis came from this, 500 validation
molecules, seed 7.)
"""
from __future__ import annotations

import argparse

import torch

from octgen.bench.curve import validation_molecules
from octgen.metrics.molecules import evaluate_molecules
from octgen.model.transformer import Condition
from octgen.pipeline.pipeline import OctGenPipeline
from octgen.sampling.sampler import OctreeSampler
from octgen.tokenize.tokens import OctreeTokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--num", type=int, default=500, help="validation molecules")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = OctGenPipeline.from_pretrained(args.checkpoint)
    tok = pipe.tokenizer
    true = [tok.encode(m) for m in validation_molecules()[:args.num]]

    def score(name, tokens):
        q = evaluate_molecules([tok.decode_sample(t, {}) for t in tokens])
        print(f"{name:42s} atom stab {100 * q['atom_stability']:5.1f}  mol stab {100 * q['mol_stability']:5.1f}  "
              f"valid {100 * q['validity']:5.1f}", flush=True)

    score("true tokens", true)
    centred = []
    for t in true:
        payload = t.payload.clone()
        payload[:, 1:] = tok.settings.offset_bins // 2
        centred.append(OctreeTokens(t.structure, payload, t.payload_kind, t.meta))
    score("true cells + elements, offsets centred", centred)
    sampler = OctreeSampler(pipe.transformer, pipe.sampler_config)
    cond = Condition(size_B=torch.tensor([len(t.payload) for t in true]))
    for k in range(tok.depth + 1):
        out = sampler.sample(len(true), torch.Generator().manual_seed(args.seed), cond, tok.payload_kind,
                             given=true, given_levels=k)
        score("sampled" if k == 0 else f"true structure levels 0..{k - 1} given", out)


if __name__ == "__main__":
    main()
