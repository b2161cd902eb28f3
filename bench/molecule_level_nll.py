"""Per-level masked-token NLL of a molecule checkpoint: 1,024 validation molecules in
``"all_levels"`` training batches (seed 0), the mean NLL of each level's masked tokens,
its share of the (unweighted) loss, and the leaf payload's NLL per field. (The split is in
QM9's order, so its first 1,024 molecules are small: 15.4 atoms on average against 18.0.)

    OMP_NUM_THREADS=2 python bench/molecule_level_nll.py checkpoints/qm9-xs [--frame principal|principal-offset]

(``--frame principal`` or ``principal-offset`` for a model trained with that ``"data":
{"frame": ...}``: the molecules are tokenized in that frame, as its training data was.)

(The table in checkpoints/qm9-xs/README.md's "level-3 loss weight" section came from this.)
"""
from __future__ import annotations

import argparse

import torch

from octgen.bench.curve import validation_molecules
from octgen.model.sequence import tokens_to_nodes
from octgen.model.transformer import Condition
from octgen.pipeline.pipeline import OctGenPipeline
from octgen.tokenize.molecule import FRAMES
from octgen.train.objective import leaf_counts, make_all_levels_batch, masked_token_nll


def main() -> None:
    ap = argparse.ArgumentParser(description="per-level masked-token NLL of a molecule checkpoint")
    ap.add_argument("checkpoint")
    ap.add_argument("--frame", choices=list(FRAMES), default="native")
    args = ap.parse_args()
    torch.set_num_threads(2)
    pipe = OctGenPipeline.from_pretrained(args.checkpoint)
    rotation = None if args.frame == "native" else args.frame
    model = pipe.transformer.eval().float()
    seqs = [tokens_to_nodes(pipe.tokenizer.encode(m, rotation=rotation)) for m in validation_molecules()[:1024]]
    g = torch.Generator().manual_seed(0)
    D = model.depth
    total, count, fields = torch.zeros(D + 1), torch.zeros(D + 1), None
    with torch.no_grad():
        for i in range(0, len(seqs), 64):
            b = seqs[i:i + 64]
            batch = make_all_levels_batch(b, b[0].payload_TP.shape[1], g)
            h = model(batch, Condition(size_B=leaf_counts(b)))
            s_idx, s_tok, _, p_fields = masked_token_nll(model, h, batch)
            levels = batch.level_BT[s_idx]
            total.index_add_(0, levels, s_tok)
            count.index_add_(0, levels, torch.ones_like(s_tok))
            sums = torch.stack([f.sum() for f in p_fields])
            fields = sums if fields is None else fields + sums
            total[D] += sums.sum()
            count[D] += len(p_fields[0])
    for d in range(D + 1):
        print(f"level {d}: masked tokens {int(count[d])}, mean NLL {float(total[d] / count[d]):.3f}, "
              f"share of loss {float(total[d] / total.sum()):.3f}")
    print(f"mean NLL per masked token: {float(total.sum() / count.sum()):.4f}")
    print("leaf fields NLL (element, x, y, z):", [round(float(f / count[D]), 3) for f in fields])


if __name__ == "__main__":
    main()
