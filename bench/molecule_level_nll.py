"""Per-level masked-token NLL of a molecule checkpoint: 1,024 validation molecules in
``"all_levels"`` training batches (seed 0), the mean NLL of each level's masked tokens,
its share of the (unweighted) loss, and the leaf payload's NLL per field.

    OMP_NUM_THREADS=2 python bench/molecule_level_nll.py checkpoints/qm9-xs

(The table in checkpoints/qm9-xs/README.md's "level-3 loss weight" section came from this.)
"""
import sys, torch, torch.nn.functional as F
from octgen.bench.curve import validation_molecules
from octgen.model.sequence import tokens_to_nodes
from octgen.model.transformer import Condition
from octgen.pipeline.pipeline import OctGenPipeline
from octgen.train.objective import make_all_levels_batch, leaf_counts
torch.set_num_threads(2)
pipe = OctGenPipeline.from_pretrained(sys.argv[1]); model = pipe.transformer.eval().float()
tok = pipe.tokenizer
seqs = [tokens_to_nodes(tok.encode(m)) for m in validation_molecules()[:1024]]
g = torch.Generator().manual_seed(0)
D = model.depth
tot = torch.zeros(D + 1); cnt = torch.zeros(D + 1); fields = torch.zeros(4); nleaf = 0
with torch.no_grad():
    for i in range(0, len(seqs), 64):
        b = seqs[i:i + 64]
        batch = make_all_levels_batch(b, b[0].payload_TP.shape[1], g)
        cond = Condition(size_B=leaf_counts(b))
        h = model(batch, cond)
        target = batch.masked_BT & batch.valid_BT
        leaf = batch.level_BT == D
        s_idx, p_idx = target & ~leaf, target & leaf
        lg = model.structure_logits(h[s_idx], model.structure_neighbours(batch, s_idx)).float()
        ce = F.cross_entropy(lg, batch.token_BT[s_idx] - 1, reduction="none")
        lv = batch.level_BT[s_idx]
        tot.index_add_(0, lv, ce); cnt.index_add_(0, lv, torch.ones_like(ce))
        pay = batch.payload_BTP[p_idx]
        per = [F.cross_entropy(l.float(), pay[:, f], reduction="none") for f, l in enumerate(model.payload_logits(h[p_idx], pay, model.leaf_neighbours(batch, p_idx)))]
        for f, p in enumerate(per): fields[f] += p.sum()
        tot[D] += sum(per).sum(); cnt[D] += len(per[0])
for d in range(D + 1):
    print(f"level {d}: masked tokens {int(cnt[d])}, mean NLL {float(tot[d] / cnt[d]):.3f}, share of loss {float(tot[d] / tot.sum()):.3f}")
print("leaf fields NLL (element, x, y, z):", [round(float(f / cnt[D]), 3) for f in fields])
