"""All-levels objective (probes), autoregressive payload head, size condition,
confidence rules: training sees exactly what sampling sees."""
import json
import math

import pytest
import torch

from octgen.model import Condition
from octgen.model.sequence import pad_nodes
from octgen.sampling import OctreeSampler, SamplerConfig
from octgen.sampling.scheduler import sample_field
from octgen.train.data import synthetic_tokens
from octgen.train.objective import leaf_counts, level_loss_weights, make_all_levels_batch, masked_token_loss
from helpers import synthetic_seqs, tiny_model

torch.set_num_threads(1)
PAYLOAD = (3, 4, 5)


def tiny(**kw):
    return tiny_model(PAYLOAD, **kw)


def seqs(n=3, points=6, seed=0):
    return synthetic_seqs(PAYLOAD, n, points, seed)


def test_all_levels_batch_layout():
    data = seqs(5, points=9)
    batch = make_all_levels_batch(data, len(PAYLOAD), torch.Generator().manual_seed(0))
    for b, s in enumerate(data):
        n_clean = sum(s.level_sizes[:-1])
        n = int(batch.valid_BT[b].sum())
        assert n == n_clean + sum(s.level_sizes)
        probe = batch.probe_BT[b, :n]
        assert not probe[:n_clean].any() and probe[n_clean:].all()
        assert not batch.masked_BT[b, :n_clean].any()  # clean levels are never targets
        assert torch.equal(batch.level_BT[b, :n_clean], s.level_T[:n_clean])
        assert torch.equal(batch.level_BT[b, n_clean:n], s.level_T)  # one probe copy of every level
        assert torch.equal(batch.token_BT[b, n_clean:n], s.token_T)
        for d in range(s.depth + 1):  # every level has at least one target
            assert batch.masked_BT[b, n_clean:n][s.level_slice(d)].any()
        assert not batch.probe_BT[b, n:].any() and not batch.masked_BT[b, n:].any()  # padding


def test_probe_sees_exactly_what_the_sampler_gives_its_level():
    """A probe of level d gets the hidden states of a sequence holding only the clean
    levels < d and level d with the same masks: the sampler's view of level d."""
    model = tiny()
    data = seqs(2, points=10, seed=4)
    batch = make_all_levels_batch(data, len(PAYLOAD), torch.Generator().manual_seed(1))
    h = model(batch)
    for b, s in enumerate(data):
        n_clean = sum(s.level_sizes[:-1])
        for d in range(s.depth + 1):
            sl = s.level_slice(d)
            keep = torch.arange(sl.stop)
            masked = torch.zeros(sl.stop, dtype=torch.bool)
            masked[sl] = batch.masked_BT[b, n_clean + sl.start:n_clean + sl.stop]
            ref = pad_nodes([(s.level_T[keep], s.token_T[keep], s.payload_TP[keep], s.centre_T3[keep])], len(PAYLOAD))
            ref.masked_BT[0] = masked
            h_ref = model(ref)[0, sl]
            assert torch.allclose(h[b, n_clean + sl.start:n_clean + sl.stop], h_ref, atol=1e-10), d
    # and the clean levels are unaffected by the probes (nobody clean sees a probe)
    s = data[0]
    n_clean = sum(s.level_sizes[:-1])
    clean = pad_nodes([(s.level_T[:n_clean], s.token_T[:n_clean], s.payload_TP[:n_clean], s.centre_T3[:n_clean])],
                      len(PAYLOAD))
    assert torch.allclose(h[0, :n_clean], model(clean)[0], atol=1e-10)


def test_all_levels_loss_covers_every_level_and_starts_uniform():
    model = tiny(payload_head="autoregressive")
    data = seqs(8, points=8)
    batch = make_all_levels_batch(data, len(PAYLOAD), torch.Generator().manual_seed(0))
    loss, stats = masked_token_loss(model, batch)
    assert stats["n_masked"] == int(batch.masked_BT.sum())
    # Near-uniform predictions at initialisation (weights std 0.02): each structure target
    # costs about log 255 and each payload target about log 3 + log 4 + log 5.
    leaf = batch.masked_BT & (batch.level_BT == 3)
    n_s, n_p = int((batch.masked_BT & ~leaf).sum()), int(leaf.sum())
    expected = (n_s * math.log(255) + n_p * math.log(3 * 4 * 5)) / (n_s + n_p)
    assert loss.item() == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("mode,power", [("sqrt", 0.5), ("uniform", 0.0)])
def test_level_loss_weights_give_each_level_its_share(mode, power):
    """Level l's share of the weighted loss is n_l ** power (n_l its targets); weights
    are 0 off the targets; "tokens" is the plain mean."""
    model = tiny(payload_head="autoregressive")
    batch = make_all_levels_batch(seqs(8, points=8), len(PAYLOAD), torch.Generator().manual_seed(0))
    target = batch.masked_BT & batch.valid_BT
    assert level_loss_weights(batch, "tokens") is None
    w = level_loss_weights(batch, mode)
    assert torch.all(w[~target] == 0) and torch.all(w[target] > 0)
    levels = batch.level_BT[target]
    n = torch.bincount(levels).double()
    share = torch.stack([w[target][levels == d].sum() for d in range(len(n))]).double()
    assert torch.allclose(share / share.sum(), n ** power / (n ** power).sum())
    assert share[0] / n[0] > share[-1] / n[-1]  # a coarse target weighs more than a leaf
    # the loss is the weighted mean of the per-token losses; equal weights give the plain mean
    plain, stats = masked_token_loss(model, batch)
    batch.weight_BT = torch.ones_like(w) * 3.0
    assert masked_token_loss(model, batch)[0].item() == pytest.approx(plain.item(), rel=1e-6)
    batch.weight_BT = w
    weighted, stats_w = masked_token_loss(model, batch)
    assert weighted.item() != pytest.approx(plain.item(), rel=1e-4)
    assert stats_w == stats  # the logged per-kind losses stay unweighted
    # the training config's level_sampling reaches the all-levels batches
    from octgen.train.config import TrainConfig
    from octgen.train.trainer import _make_batch
    cfg = TrainConfig(objective="all_levels", level_sampling=mode)
    made = _make_batch(cfg, seqs(8, points=8), len(PAYLOAD), torch.Generator().manual_seed(0))
    assert torch.allclose(made.weight_BT, w)
    assert _make_batch(TrainConfig(objective="all_levels"), seqs(8, points=8), len(PAYLOAD),
                       torch.Generator().manual_seed(0)).weight_BT is None


@pytest.mark.parametrize("mode", ["tokens", "sqrt"])
def test_level_loss_scale_multiplies_one_levels_weights(mode):
    from octgen.train.config import TrainConfig
    from octgen.train.trainer import _make_batch
    s = seqs(8, points=8)
    base = _make_batch(TrainConfig(objective="all_levels", level_sampling=mode), s, len(PAYLOAD),
                       torch.Generator().manual_seed(0))
    cfg = TrainConfig(objective="all_levels", level_sampling=mode, level_loss_scale={"1": 3, "2": 0.5})
    assert cfg.level_loss_scale == {1: 3.0, 2: 0.5}
    made = _make_batch(cfg, s, len(PAYLOAD), torch.Generator().manual_seed(0))
    target = made.masked_BT & made.valid_BT
    assert torch.equal(made.masked_BT, base.masked_BT)  # same batch, only the weights differ
    w0 = torch.ones_like(made.weight_BT) * target if base.weight_BT is None else base.weight_BT
    factor = torch.ones_like(w0)
    factor[made.level_BT == 1] = 3.0
    factor[made.level_BT == 2] = 0.5
    assert torch.allclose(made.weight_BT, w0 * factor)
    assert torch.all(made.weight_BT[~target] == 0)


@pytest.mark.parametrize("bad", [{"x": 2}, {"-1": 2}, {"3": 0}, {"3": -1}, {"3": float("nan")}, {"3": "2"}, [3]])
def test_level_loss_scale_is_checked(bad):
    from octgen.errors import InputError
    from octgen.train.config import TrainConfig
    with pytest.raises(InputError, match="level_loss_scale"):
        TrainConfig(objective="all_levels", level_loss_scale=bad)
    with pytest.raises(InputError, match="level_loss_scale"):
        TrainConfig(objective="one_level", level_loss_scale={"3": 2.0} if isinstance(bad, dict) else bad)


def test_autoregressive_head_conditions_on_earlier_fields_only():
    model = tiny(payload_head="autoregressive")
    h = torch.randn(6, 24, dtype=torch.float64)
    v = torch.stack([torch.randint(0, k, (6,)) for k in PAYLOAD], 1)
    lg = model.payload_logits(h, v)
    v2 = v.clone()
    v2[:, 2] = (v2[:, 2] + 1) % PAYLOAD[2]  # the last field's value changes nothing
    assert all(torch.equal(a, b) for a, b in zip(lg, model.payload_logits(h, v2)))
    v3 = v.clone()
    v3[:, 0] = (v3[:, 0] + 1) % PAYLOAD[0]  # the first field's value moves fields 1 and 2
    lg3 = model.payload_logits(h, v3)
    assert torch.equal(lg[0], lg3[0]) and not torch.allclose(lg[1], lg3[1]) and not torch.allclose(lg[2], lg3[2])
    with pytest.raises(ValueError, match="autoregressive"):
        model.payload_logits(h)


def test_size_condition_changes_the_prefix_and_is_required():
    model = tiny(num_sizes=16)
    s = seqs(2)
    batch = pad_nodes(s, len(PAYLOAD))
    with pytest.raises(ValueError, match="size"):
        model(batch)
    sizes = leaf_counts(s)
    assert sizes.tolist() == [x.level_sizes[-1] for x in s]
    a = model(batch, Condition(size_B=sizes))
    b = model(batch, Condition(size_B=sizes + 1))
    assert not torch.allclose(a, b)
    assert torch.equal(model(batch, Condition(size_B=torch.tensor([99, 99]))),
                       model(batch, Condition(size_B=torch.tensor([15, 15]))))  # clipped to num_sizes - 1


def test_count_condition_changes_the_prefix_and_is_required():
    from octgen.model import OctGenConfig
    from octgen.train.objective import kind_counts

    model = tiny(num_sizes=16, num_counts=6, count_value=1)
    s = seqs(2)
    batch = pad_nodes(s, len(PAYLOAD))
    counts = kind_counts(s, 1)
    assert counts.tolist() == [int((x.payload_TP[x.level_T == x.depth, 0] == 1).sum()) for x in s]
    sizes = leaf_counts(s)
    with pytest.raises(ValueError, match="count"):
        model(batch, Condition(size_B=sizes))
    a = model(batch, Condition(size_B=sizes, count_B=counts))
    assert not torch.allclose(a, model(batch, Condition(size_B=sizes, count_B=counts + 1)))
    assert torch.equal(model(batch, Condition(size_B=sizes, count_B=torch.tensor([40, 40]))),
                       model(batch, Condition(size_B=sizes, count_B=torch.tensor([5, 5]))))  # clipped
    for bad in ({"num_counts": 4}, {"num_sizes": 8, "num_counts": 4, "count_value": 3}, {"num_counts": -1}):
        with pytest.raises(ValueError, match="num_counts|count_value"):
            OctGenConfig(depth=3, payload_vocab_sizes=PAYLOAD, **bad)


@pytest.mark.parametrize("confidence", ["logp", "maxprob", "entropy", "random"])
def test_cached_equals_recomputed_for_every_confidence_and_ar_head(confidence):
    model = tiny(payload_head="autoregressive", num_sizes=16)
    cond = Condition(size_B=torch.tensor([5, 9, 3]))
    out = []
    for use_cache in (True, False):
        sampler = OctreeSampler(model, SamplerConfig(steps=3, confidence=confidence, use_cache=use_cache))
        out.append(sampler.sample(3, generator=torch.Generator().manual_seed(7), cond=cond))
    for x, y in zip(*out):
        assert all(torch.equal(a, b) for a, b in zip(x.structure, y.structure))
        assert torch.equal(x.payload, y.payload)
        assert ((x.payload >= 0) & (x.payload < torch.tensor(PAYLOAD))).all()


def test_confidence_scores_come_from_the_distribution():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]]))
    g = torch.Generator().manual_seed(0)
    _, maxprob = sample_field(logits, SamplerConfig(confidence="maxprob"), g)
    assert torch.allclose(maxprob, torch.log(torch.tensor([0.7, 0.4])))
    _, ent = sample_field(logits, SamplerConfig(confidence="entropy"), g)
    p = logits.exp()
    assert torch.allclose(ent, (p * p.log()).sum(-1))
    # logp scores the drawn value: with a forced draw (greedy) it is the max log-probability.
    v, lp = sample_field(logits, SamplerConfig(confidence="logp", temperature=0), g)
    assert v.tolist() == [0, 0] and torch.allclose(lp, maxprob)


def test_random_order_reveals_in_a_seeded_random_order():
    from octgen.sampling import LevelScheduler

    valid = torch.ones(1, 12, dtype=torch.bool)
    orders = []
    for seed in (0, 0, 1):
        sched = LevelScheduler(SamplerConfig(steps=12, confidence="random"))
        sched.set_level(valid)
        masked, tokens, order = valid.clone(), torch.zeros(1, 12, 1, dtype=torch.long), []
        g = torch.Generator().manual_seed(seed)
        for i in range(12):
            k = int(masked.sum())
            tokens, new = sched.step_values(i, torch.zeros(k, 1, dtype=torch.long), torch.zeros(k), tokens, masked, g)
            order.append(int((masked & ~new).nonzero()[0, 1]))
            masked = new
        orders.append(order)
    assert orders[0] == orders[1] and orders[0] != orders[2]
    assert sorted(orders[0]) == list(range(12)) and orders[0] != list(range(12))


@pytest.mark.parametrize("node_deletion", [0.0, 0.3])
def test_new_recipe_overfits_four_sequences_and_regenerates_them(tmp_path, node_deletion):
    """With coarse-node deletion on, the coarse probes still target the true trees,
    so the model still regenerates its training trees whole (no learned dropping)."""
    from octgen.train.config import TrainConfig
    from octgen.train.trainer import train

    syn = {"num": 4, "points": 5, "depth": 3, "payload_vocab_sizes": [3, 4]}
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), dataset="synthetic", model_size="tiny", batch_size=8,
                      max_steps=300, save_every=300, log_every=100, warmup_steps=20, num_threads=1, synthetic=syn,
                      shard_dir=str(tmp_path / "shards"), objective="all_levels", lr=3e-3, ema_decay=0.0,
                      node_deletion=node_deletion,
                      weight_decay=0.0, model={"dim": 64, "n_layers": 2, "n_heads": 4,
                                                "payload_head": "autoregressive", "num_sizes": 8})
    result = train(cfg, progress=False)
    # Every level is a target in every row, so the loss is a per-token mean over all levels.
    assert result["loss"] < 0.5
    data = synthetic_tokens(4, 5, 3, [3, 4], seed=0)
    key = lambda t: (tuple(tuple(s.tolist()) for s in t.structure), tuple(map(tuple, t.payload.tolist())))
    train_set = {key(t): t.payload.shape[0] for t in data}
    sizes = torch.tensor([t.payload.shape[0] for t in data] * 3)
    out = OctreeSampler(result["model"], SamplerConfig(steps=None, top_p=0.9, confidence="maxprob")).sample(
        12, generator=torch.Generator().manual_seed(0), cond=Condition(size_B=sizes))
    got = [key(t) for t in out]
    assert sum(g in train_set for g in got) >= 11
    assert sum(t.payload.shape[0] == int(s) for t, s in zip(out, sizes)) >= 11  # the size asked for
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [100, 200, 300]
    assert 0 < log[0]["cpu_seconds"] < log[1]["cpu_seconds"] < log[2]["cpu_seconds"]
    assert result["cpu_seconds"] >= log[2]["cpu_seconds"]  # measured at the final save, after the last log line


def test_revealed_leaves_are_rotated_at_their_exact_position():
    model = tiny(payload_offset_fields=(0, 1, 2), rope_max_freq=4.0)
    s = seqs(1, points=6)[0]
    batch = pad_nodes([s], len(PAYLOAD))
    leaf = batch.level_BT == 3
    batch.masked_BT[0, leaf[0].nonzero()[0, 0]] = True  # one masked leaf keeps its cell centre
    pos = model.rope_centres(batch)
    cell = 2.0 / 8
    frac = (batch.payload_BTP.float() + 0.5) / torch.tensor(PAYLOAD) - 0.5
    revealed = leaf & ~batch.masked_BT
    assert torch.allclose(pos[revealed], batch.centre_BT3[revealed] + frac[revealed] * cell)
    assert torch.equal(pos[~revealed], batch.centre_BT3[~revealed])
    assert (pos[revealed] - batch.centre_BT3[revealed]).abs().max() < cell / 2  # stays inside its cell
    out = [OctreeSampler(model, SamplerConfig(steps=3, use_cache=c)).sample(2, generator=torch.Generator().manual_seed(3))
           for c in (True, False)]
    for x, y in zip(*out):
        assert torch.equal(x.payload, y.payload)


def test_sampler_sweep_settings_parse_or_fail_in_one_line():
    from octgen.bench.sampler_sweep import parse_setting
    from octgen.errors import InputError

    assert parse_setting("default") == {}
    assert parse_setting("confidence=random, temperature=0.9,steps=0") == \
        {"confidence": "random", "temperature": 0.9, "steps": None}
    assert parse_setting("level_steps=3:16;4:0,remask=true") == {"level_steps": {3: 16, 4: None}, "remask": True}
    assert parse_setting("field_temperatures=1.0;-;-;0.2") == {"field_temperatures": (1.0, None, None, 0.2)}
    for bad in ("confidence=loud", "temprature=1", "steps=x", "top_p=2", "level_steps=3", "level_steps=3:-2",
                "level_steps=x:4", "field_temperatures=1;x", "field_temperatures=-1"):
        with pytest.raises(InputError, match="--setting"):
            parse_setting(bad)


def test_bf16_sampling_is_seeded_and_valid():
    model = tiny(payload_head="autoregressive").float()
    runs = [OctreeSampler(model, SamplerConfig(steps=3, precision="bf16")).sample(
        3, generator=torch.Generator().manual_seed(2)) for _ in range(2)]
    for x, y in zip(*runs):
        assert torch.equal(x.payload, y.payload) and all(torch.equal(a, b) for a, b in zip(x.structure, y.structure))
        assert ((x.payload >= 0) & (x.payload < torch.tensor(PAYLOAD))).all()
    with pytest.raises(ValueError, match="precision"):
        SamplerConfig(precision="fp8")


def test_auto_precision_follows_the_device(monkeypatch):
    from octgen.sampling import resolve_precision
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    for native, want in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
        assert resolve_precision("auto", cpu) == want
    # "auto" samples exactly what the precision it resolves to samples.
    model = tiny(payload_head="autoregressive").float()
    runs = [OctreeSampler(model, SamplerConfig(steps=3, precision=p)).sample(
        2, generator=torch.Generator().manual_seed(4)) for p in ("auto", "fp32")]
    for x, y in zip(*runs):
        assert torch.equal(x.payload, y.payload) and all(torch.equal(a, b) for a, b in zip(x.structure, y.structure))


def _leaf_cells(seq, level):
    """{level-``level`` cell centre of each leaf: leaf payload row} of a node sequence."""
    D = seq.depth
    h = 2.0 / 2 ** level
    leaves = seq.centre_T3[seq.level_slice(D)]
    cells = torch.floor((leaves + 1) / h)
    return cells, seq.payload_TP[seq.level_slice(D)]


@pytest.mark.parametrize("level", [1, 2, 3])
def test_node_deletion_drops_whole_subtrees_and_leaves_a_valid_tree(level):
    from octgen.model.sequence import nodes_to_tokens, tokens_to_nodes
    from octgen.octree import build_octree
    from octgen.tokenize.tokens import OctreeTokens
    from octgen.train.objective import delete_nodes, random_node_deletion

    g = torch.Generator().manual_seed(level)
    for s in seqs(6, points=14, seed=level):
        hit = random_node_deletion(s, 0.5, g, min_level=level)
        if hit is None:
            continue
        cut, L = hit
        assert L >= level and cut.level_sizes[L] < s.level_sizes[L]
        assert cut.level_sizes[:L - 1] == s.level_sizes[:L - 1]
        # The kept leaves are exactly the leaves outside the deleted level-L cells...
        h = 2.0 / 2 ** L
        kept = {tuple(c) for c in torch.floor((cut.centre_T3[cut.level_slice(L)] + 1) / h).long().tolist()}
        cells, payload = _leaf_cells(s, L)
        inside = torch.tensor([tuple(c) in kept for c in cells.long().tolist()])
        leaves = s.centre_T3[s.level_slice(s.depth)][inside]
        assert 0 < int(inside.sum()) < len(inside)
        # ...and the corrupted sequence is the octree of those leaves, masks included.
        rebuilt = tokens_to_nodes(OctreeTokens.from_octree(build_octree(leaves, s.depth), payload[inside], "atoms"))
        assert cut.level_sizes == rebuilt.level_sizes
        for f in ("level_T", "token_T", "payload_TP"):
            assert torch.equal(getattr(cut, f), getattr(rebuilt, f)), f
        assert torch.allclose(cut.centre_T3, rebuilt.centre_T3)
        nodes_to_tokens(cut, "atoms").octree()  # every mask non-zero, lengths consistent
    with pytest.raises(ValueError, match="lose all its children"):
        s = seqs(1, points=1)[0]  # a chain: every parent has one child
        delete_nodes(s, 2, torch.ones(1, dtype=torch.bool))


def test_node_deletion_batch_targets_the_true_coarse_levels():
    """Rows with deletions: clean levels and the probes of levels >= L come from the
    corrupted tree, the probes of levels < L from the true one (so the model never
    learns to drop children); without deletion the batch is unchanged."""
    data = seqs(8, points=12, seed=3)
    plain = make_all_levels_batch(data, len(PAYLOAD), torch.Generator().manual_seed(5))
    off = make_all_levels_batch(data, len(PAYLOAD), torch.Generator().manual_seed(5), node_deletion=0.0)
    for f in ("level_BT", "token_BT", "payload_BTP", "masked_BT", "probe_BT"):
        assert torch.equal(getattr(plain, f), getattr(off, f))
    batch = make_all_levels_batch(data, len(PAYLOAD), torch.Generator().manual_seed(5),
                                  node_deletion=0.3, node_deletion_rows=1.0)
    changed = 0
    for b, s in enumerate(data):
        n = int(batch.valid_BT[b].sum())
        probe, level, token = batch.probe_BT[b, :n], batch.level_BT[b, :n], batch.token_BT[b, :n]
        clean_sizes = [int(((level == d) & ~probe).sum()) for d in range(s.depth)]
        probe_sizes = [int(((level == d) & probe).sum()) for d in range(s.depth + 1)]
        if probe_sizes == s.level_sizes:
            continue  # nothing could be deleted in this tree
        changed += 1
        L = next(d for d in range(s.depth + 1) if probe_sizes[d] != s.level_sizes[d])
        assert probe_sizes[:L] == s.level_sizes[:L]  # coarse probes: the true tree
        assert clean_sizes[L:] == probe_sizes[L:s.depth]  # finer probes: the corrupted one
        true_parent = s.token_T[s.level_slice(L - 1)]
        clean_parent = token[~probe & (level == L - 1)]
        assert torch.equal(token[probe & (level == L - 1)], true_parent)  # the probe targets the true masks
        assert bool(((clean_parent & ~true_parent) == 0).all()) and not torch.equal(clean_parent, true_parent)
        for d in range(s.depth + 1):
            assert batch.masked_BT[b, :n][probe & (level == d)].any()
    assert changed >= 4


def test_node_deletion_with_the_kept_size_conditions_rows_on_their_corrupted_trees():
    data = seqs(8, points=12, seed=3)
    batch = make_all_levels_batch(data, len(PAYLOAD), torch.Generator().manual_seed(5), node_deletion=0.3,
                                  node_deletion_rows=1.0, node_deletion_size="kept")
    assert batch.leaves_B is not None and batch.to("cpu").leaves_B is not None
    changed = 0
    for b, s in enumerate(data):
        n = int(batch.valid_BT[b].sum())
        probe, level, masked = batch.probe_BT[b, :n], batch.level_BT[b, :n], batch.masked_BT[b, :n]
        leaves = int((probe & (level == s.depth)).sum())
        assert int(batch.leaves_B[b]) == leaves  # the size condition is the row's own leaf count
        clean_sizes = [int(((level == d) & ~probe).sum()) for d in range(s.depth)]
        if clean_sizes == s.level_sizes[:-1] and leaves == s.level_sizes[-1]:
            assert all(masked[probe & (level == d)].any() for d in range(s.depth + 1))
            continue
        changed += 1
        L = next(d for d in range(1, s.depth + 1)
                 if int(((level == d) & probe).sum()) != s.level_sizes[d])
        assert not masked[probe & (level < L)].any()  # coarse probes disagree with the size: untargeted
        assert all(masked[probe & (level == d)].any() for d in range(L, s.depth + 1))
    assert changed >= 4
    with pytest.raises(ValueError, match="node_deletion_size"):
        make_all_levels_batch(data, len(PAYLOAD), node_deletion_size="all")
