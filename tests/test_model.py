"""OctGen transformer: 3D RoPE, level-block attention, prefix, save/load, training batches."""
import math

import pytest
import torch

from octgen.model import MODEL_SIZES, Condition, OctGenConfig, OctGenTransformer, config_for_size, count_parameters
from octgen.model.sequence import nodes_to_tokens, pad_nodes, tokens_to_nodes
from octgen.model.transformer import _rope_frequencies, apply_rope, rope_angles
from octgen.train.data import synthetic_tokens
from octgen.train.objective import make_training_batch, masked_token_loss
from helpers import synthetic_seqs, tiny_model

torch.set_num_threads(1)
PAYLOAD = (3, 4)


def tiny(**kw):
    return tiny_model(PAYLOAD, **kw)


def seqs(n=3, points=6, seed=0):
    return synthetic_seqs(PAYLOAD, n, points, seed)


def _score(q, k, pos_q, pos_k, depth=6, head_dim=24):
    freqs = _rope_frequencies(head_dim, 100.0)
    ang = rope_angles(torch.stack([pos_q, pos_k])[None], depth, freqs)  # (1, 2, R)
    cos, sin = ang.cos()[:, None], ang.sin()[:, None]
    x = torch.stack([q, k])[None, None]  # (1, 1, 2, hs)
    r = apply_rope(x, cos, sin)[0, 0]
    return float(r[0] @ r[1])


def test_rope_score_depends_only_on_offset():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(24, generator=g, dtype=torch.float64), torch.randn(24, generator=g, dtype=torch.float64)
    a = torch.tensor([0.1, -0.3, 0.5], dtype=torch.float64)
    b = torch.tensor([-0.2, 0.4, 0.05], dtype=torch.float64)
    ref = _score(q, k, a, b)
    for _ in range(5):
        shift = (torch.rand(3, generator=g, dtype=torch.float64) - 0.5) * 0.8
        assert _score(q, k, a + shift, b + shift) == pytest.approx(ref, abs=1e-9)
    # ... and it does depend on the offset, along every axis.
    for axis in range(3):
        moved = b.clone()
        moved[axis] += 0.25
        assert abs(_score(q, k, a, moved) - ref) > 1e-4


def test_rope_is_a_rotation():
    x = torch.randn(2, 3, 5, 20, dtype=torch.float64)
    ang = torch.rand(2, 1, 5, 9, dtype=torch.float64) * 6
    y = apply_rope(x, ang.cos(), ang.sin())
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1))
    assert torch.equal(y[..., 18:], x[..., 18:])  # channels beyond the rotary pairs pass


def test_level_block_mask():
    model = tiny()
    s = seqs(1)[0]
    batch = pad_nodes([s], len(PAYLOAD))
    h = model(batch)
    for d in range(s.depth + 1):
        sl = s.level_slice(d)
        # Changing a token at level d changes nothing coarser, but its own level.
        changed = pad_nodes([s], len(PAYLOAD))
        if d < s.depth:
            changed.token_BT[0, sl.start] = changed.token_BT[0, sl.start] % 255 + 1
        else:
            changed.payload_BTP[0, sl.start, 0] = (changed.payload_BTP[0, sl.start, 0] + 1) % PAYLOAD[0]
        h2 = model(changed)
        assert torch.allclose(h2[0, :sl.start], h[0, :sl.start], atol=1e-12)
        if sl.stop - sl.start > 1:
            assert not torch.allclose(h2[0, sl.start + 1:sl.stop], h[0, sl.start + 1:sl.stop])
        if d < s.depth:  # and every finer level sees it
            assert not torch.allclose(h2[0, sl.stop:], h[0, sl.stop:])


def test_padding_and_batching_do_not_change_outputs():
    model = tiny()
    a, b = seqs(2)
    h_a = model(pad_nodes([a], len(PAYLOAD)))
    h_ab = model(pad_nodes([a, b], len(PAYLOAD)))
    n = len(a.level_T)
    assert torch.allclose(h_ab[0, :n], h_a[0], atol=1e-12)


def test_condition_prefix_is_seen_by_every_node():
    model = tiny(num_classes=3)
    batch = pad_nodes(seqs(1), len(PAYLOAD))
    h0 = model(batch, Condition(class_labels=torch.tensor([0])))
    h1 = model(batch, Condition(class_labels=torch.tensor([1])))
    hd = model(batch, Condition(class_labels=torch.tensor([1]), drop_B=torch.tensor([True])))
    hn = model(batch, Condition(class_labels=torch.tensor([3])))
    assert (h0 - h1).abs().amax(-1).min() > 0  # every node changes
    assert torch.allclose(hd, hn)  # dropped condition == the null label


def test_cache_forward_matches_full_forward():
    model = tiny()
    s = seqs(1)[0]
    full = pad_nodes([s], len(PAYLOAD))
    h_full = model(full)
    cache = model.start_cache(1)
    for d in range(s.depth + 1):
        sl = s.level_slice(d)
        part = pad_nodes([(s.level_T[sl], s.token_T[sl], s.payload_TP[sl], s.centre_T3[sl])], len(PAYLOAD))
        h, kv = model(part, past=cache, return_kv=True)
        assert torch.allclose(h[0], h_full[0, sl], atol=1e-12)
        cache.append(kv, part.level_BT)


def test_save_and_load_round_trip(tmp_path):
    model = tiny().float()
    model.save_pretrained(tmp_path / "m", safe_serialization=True)
    again = OctGenTransformer.from_pretrained(tmp_path / "m")
    assert again.octgen_config == model.octgen_config
    batch = pad_nodes(seqs(1), len(PAYLOAD))
    assert torch.equal(again(batch), model(batch))


def test_named_sizes_and_parameter_counts():
    # The counts documented in MODEL_SIZES (QM9 atom payload: 5 elements, 3 x 24 bins, depth 6).
    for name, spec in MODEL_SIZES.items():
        if name in ("m", "l"):
            continue  # big to build in a unit test; same formula
        cfg = config_for_size(name, depth=6, payload_vocab_sizes=(5, 24, 24, 24))
        assert count_parameters(cfg) == spec["params_qm9"], name
    with pytest.raises(KeyError):
        config_for_size("huge")
    with pytest.raises(ValueError):
        OctGenConfig(dim=30, n_heads=4)


def test_sequence_round_trip():
    toks = synthetic_tokens(2, 7, 3, PAYLOAD, seed=3)
    for t in toks:
        s = tokens_to_nodes(t)
        assert s.level_sizes == t.tokens_per_level()
        back = nodes_to_tokens(s, t.payload_kind)
        assert all(torch.equal(a, b) for a, b in zip(back.structure, t.structure))
        assert torch.equal(back.payload, t.payload)


def test_training_batch_masks_one_level_and_cuts_finer_ones():
    g = torch.Generator().manual_seed(0)
    data = seqs(16, points=8)
    batch = make_training_batch(data, len(PAYLOAD), g)
    for b, s in enumerate(data):
        masked_levels = batch.level_BT[b][batch.masked_BT[b]].unique()
        assert len(masked_levels) == 1
        t = int(masked_levels)
        n = int(batch.valid_BT[b].sum())
        assert n == s.level_slice(t).stop  # levels 0..t kept, nothing finer
        assert int(batch.level_BT[b, :n].max()) == t
        assert torch.equal(batch.token_BT[b, :n], s.token_T[:n])
    model = tiny().float()
    loss, stats = masked_token_loss(model, batch)
    assert math.isfinite(loss.item()) and stats["n_masked"] == int(batch.masked_BT.sum())
    # At initialisation (weights ~ N(0, 0.02)) every prediction is nearly uniform: a
    # structure token costs ln 255, a payload token ln 3 + ln 4, and the loss is
    # their mean over the masked tokens (measured: within 0.01 of it).
    target = batch.masked_BT & batch.valid_BT
    n_leaf = int((target & (batch.level_BT == model.depth)).sum())
    n_struct = int(target.sum()) - n_leaf
    assert n_struct > 0 and n_leaf > 0
    assert stats["structure_loss"] == pytest.approx(math.log(255), abs=0.03)
    assert stats["payload_loss"] == pytest.approx(math.log(3) + math.log(4), abs=0.03)
    uniform = (n_struct * math.log(255) + n_leaf * math.log(12)) / (n_struct + n_leaf)
    assert loss.item() == pytest.approx(uniform, abs=0.03)


def test_complex_rope_matches_pairwise_rope():
    from octgen.model.transformer import apply_rope_complex, rope_rotation

    x = torch.randn(2, 3, 5, 32, dtype=torch.float64)
    ang = torch.rand(2, 5, 15, dtype=torch.float64) * 6  # 15 rotary pairs, the 16th passes
    ref = apply_rope(x, ang.cos()[:, None], ang.sin()[:, None])
    assert torch.allclose(apply_rope_complex(x, rope_rotation(ang, 32, torch.float64)), ref, atol=1e-12)
