"""The pieces of ``octgen bench shape-stages``: cell keys, the fully masked level
view, nearest-code substitution and the training-data baselines."""
import torch

from octgen.bench import shape_stages as st
from octgen.model.sequence import tokens_to_nodes
from octgen.train.data import synthetic_tokens

torch.set_num_threads(1)


def _seqs(n=3, seed=0):
    return synthetic_tokens(n, 6, 3, [2, 2, 2], seed)


def test_cell_keys_are_the_integer_cells_of_each_level():
    toks = _seqs(1)[0]
    seq = tokens_to_nodes(toks)
    octree = toks.octree()
    for d in range(seq.depth + 1):
        keys = st.cell_keys(seq, d)
        assert len(keys) == seq.level_sizes[d] == len(set(keys))
        assert all(0 <= c < (1 << d) for k in keys for c in k)
        # the children of a level-d cell are the cells whose halved coordinates equal it
        if d:
            parents = set(st.cell_keys(seq, d - 1))
            assert {tuple(c // 2 for c in k) for k in keys} == parents
    assert octree.nodes_per_depth() == seq.level_sizes


def test_level_batch_masks_exactly_that_level():
    seq = tokens_to_nodes(_seqs(1)[0])
    for d in range(seq.depth + 1):
        batch, sl = st.level_batch(seq, d)
        assert batch.level_BT.shape[1] == sl.stop
        assert batch.masked_BT[0].nonzero()[:, 0].tolist() == list(range(sl.start, sl.stop))


def test_nearest_codes_copy_the_true_code_of_the_same_or_nearest_cell():
    a, b = _seqs(2, seed=3)
    seq_a = tokens_to_nodes(a)
    same = st.nearest_codes(a, seq_a)
    assert torch.equal(same.payload, a.payload)  # every cell is its own nearest
    other = st.nearest_codes(b, seq_a)
    assert other.structure is b.structure and other.payload.shape == b.payload.shape
    rows = {tuple(r) for r in a.payload.tolist()}
    assert all(tuple(r) in rows for r in other.payload.tolist())


def test_baselines_count_only_needed_cells_and_find_the_nearest_caption():
    toks = _seqs(3, seed=5)
    seqs = [tokens_to_nodes(t) for t in toks]
    H = 4
    states = torch.zeros(3, 1, 2, H)
    for i in range(3):
        states[i, 0, :, i] = 1.0  # shape i's caption points along axis i
    class Data:  # the parts of ShapeTrainingData the baselines read
        category = torch.tensor([0, 0, 1])
        text_states, text_mask = states, torch.ones(3, 1, 2, dtype=torch.bool)

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return seqs[i]

    data = Data()
    root = st.cell_keys(seqs[0], 0)[0]
    needed = {(0, 0, root)}
    base = st.Baselines(data, 3, needed)
    assert set(base.frequent) == needed
    assert sum(base.frequent[(0, 0, root)].values()) == 2  # the two category-0 shapes
    assert base.frequent_value(0, 0, root) in {int(seqs[0].token_T[0]), int(seqs[1].token_T[0])}
    assert base.frequent_value(1, 0, root) is None  # not needed, not counted
    assert base.nearest_shape(torch.tensor([0.0, 0.0, 1.0, 0.0])) == 2


def test_shape_stages_end_to_end_on_an_untrained_pipeline(tmp_path, monkeypatch):
    import json

    from octgen.cli.main import main
    from octgen.modality.shapes import make_untrained_shape_pipeline

    monkeypatch.setenv("OCTGEN_CACHE", str(tmp_path / "cache"))  # the 6 training shapes' tokens and captions
    ckpt = make_untrained_shape_pipeline(tmp_path / "pipe")
    out = tmp_path / "stages.json"
    assert main(["bench", "shape-stages", "--checkpoint", str(ckpt), "--categories", "mug", "--per-category", "1",
                 "--train-num", "6", "--iou-res", "16", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["sources"] == 1 and [row["level"] for row in r["teacher_forced"]] == [0, 1, 2, 3, 4]
    for row in r["teacher_forced"]:
        assert row["nodes"] > 0 and all(0 <= row[f"{k}_accuracy"] <= 1 for k in ("model", "frequent", "nearest"))
    assert 0 <= r["teacher_forced"][-1]["model_bit_accuracy"] <= 1
    iou = r["decoded_iou_mean"]
    assert set(iou) == set(st.VARIANTS) and all(0 <= v <= 1 for v in iou.values())
    assert iou["a_true_tokens"] > 0.3  # the shipped tokenizer's own round trip of a mug
