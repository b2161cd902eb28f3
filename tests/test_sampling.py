"""Sampler: unmasking schedule, filtering, cache == recompute, determinism, CFG."""
import pytest
import torch

from octgen.model import Condition, OctGenConfig, OctGenTransformer
from octgen.octree import tokens_to_octree
from octgen.sampling import LevelScheduler, OctreeSampler, SamplerConfig
from octgen.sampling.sampler import children_of_level
from octgen.sampling.scheduler import filter_logits, masked_counts

torch.set_num_threads(1)
PAYLOAD = (3, 4)


def tiny(**kw):
    torch.manual_seed(0)
    return OctGenTransformer.from_octgen_config(
        OctGenConfig(depth=3, payload_vocab_sizes=PAYLOAD, dim=24, n_layers=2, n_heads=2, **kw)).double()


def same_tokens(xs, ys) -> bool:
    return len(xs) == len(ys) and all(
        len(x.structure) == len(y.structure) and all(torch.equal(a, b) for a, b in zip(x.structure, y.structure))
        and torch.equal(x.payload, y.payload) for x, y in zip(xs, ys))


def test_masked_counts_schedule():
    n = torch.tensor([1, 5, 12, 40])
    for S in (1, 3, 8, 40):
        m = masked_counts(n, S)
        assert m.shape == (S, 4)
        assert (m[-1] == 0).all()
        prev = n
        for i in range(S):
            assert ((m[i] < prev) | (prev == 0)).all()  # at least one token per step while any is masked
            assert (m[i] >= 0).all()
            prev = m[i]
    # S = n is exactly one token per step.
    assert masked_counts(torch.tensor([6]), 6)[:, 0].tolist() == [5, 4, 3, 2, 1, 0]


def test_filter_logits_top_k_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.1)).tolist() == [[False, True, True, True]]


def test_scheduler_reveals_most_confident_and_respects_padding():
    cfg = SamplerConfig(steps=2, temperature=0.0)
    sched = LevelScheduler(cfg)
    valid = torch.tensor([[True, True, True, True], [True, True, False, False]])
    assert sched.set_level(valid) == 2
    logits = torch.full((2, 4, 3), -10.0)
    logits[..., 0] = torch.tensor([[0.0, 5.0, 1.0, 9.0], [3.0, 0.0, 7.0, 7.0]])  # confidence of value 0
    tokens = torch.zeros(2, 4, 1, dtype=torch.long)
    tokens, masked = sched.step(0, [logits], tokens, valid.clone())
    # Row 0: floor(4 cos(pi/4)) = 2 stay masked, the two most confident (3 and 1) are revealed.
    # Row 1 (2 real tokens): 1 stays masked, the less peaked one (1); padding is never masked.
    assert masked.tolist() == [[True, False, True, False], [False, True, False, False]]
    tokens, masked = sched.step(1, [logits], tokens, masked)
    assert not masked.any()


def test_children_of_level_matches_octree():
    masks = [torch.tensor([0b10010110], dtype=torch.uint8), torch.tensor([3, 128, 17, 255], dtype=torch.uint8)]
    octree = tokens_to_octree(masks + [torch.ones(2 + 1 + 2 + 8, dtype=torch.uint8)])
    keys = torch.zeros(1, 1, dtype=torch.long)
    valid = torch.ones(1, 1, dtype=torch.bool)
    for d, m in enumerate(masks):
        keys, valid = children_of_level(keys, m.long()[None], valid)
        assert torch.equal(keys[0][valid[0]], octree.keys[d + 1])


@pytest.mark.parametrize("steps", [2, None])
def test_cached_and_recomputed_sampling_give_identical_tokens(steps):
    model = tiny()
    out = {}
    for use_cache in (True, False):
        sampler = OctreeSampler(model, SamplerConfig(steps=steps, use_cache=use_cache))
        out[use_cache], stats = sampler.sample(4, generator=torch.Generator().manual_seed(3), return_stats=True)
    assert same_tokens(out[True], out[False])
    for t in out[True]:
        t.octree()  # structurally valid
        assert t.payload.shape == (t.tokens_per_level()[-1], len(PAYLOAD))
        assert (t.payload < torch.tensor(PAYLOAD)).all()


def test_one_seed_one_output():
    model = tiny()
    sampler = OctreeSampler(model, SamplerConfig(steps=3, top_k=50, top_p=0.95, choice_temperature=1.0))
    a = sampler.sample(3, generator=torch.Generator().manual_seed(7))
    b = sampler.sample(3, generator=torch.Generator().manual_seed(7))
    c = sampler.sample(3, generator=torch.Generator().manual_seed(8))
    assert same_tokens(a, b)
    assert not same_tokens(a, c)


def test_one_token_per_step_uses_level_size_steps():
    model = tiny()
    tokens, stats = OctreeSampler(model, SamplerConfig(steps=None)).sample(
        1, generator=torch.Generator().manual_seed(0), return_stats=True)
    assert stats["steps"] == tokens[0].tokens_per_level()


@pytest.mark.parametrize("leaf_steps", [None, 2])
def test_leaf_steps_apply_to_the_leaf_level_only(leaf_steps):
    model = tiny()
    tokens, stats = OctreeSampler(model, SamplerConfig(steps=3, leaf_steps=leaf_steps)).sample(
        1, generator=torch.Generator().manual_seed(0), return_stats=True)
    sizes = tokens[0].tokens_per_level()
    assert stats["steps"][:-1] == [min(3, n) for n in sizes[:-1]]
    assert stats["steps"][-1] == (sizes[-1] if leaf_steps is None else min(2, sizes[-1]))
    with pytest.raises(ValueError, match="leaf_steps"):
        SamplerConfig(leaf_steps=-1)


def test_level_steps_apply_to_their_structure_levels_only():
    model = tiny()
    cfg = SamplerConfig(steps=2, leaf_steps=3, level_steps={"1": None, 2: 1})
    assert cfg.level_steps == {1: None, 2: 1}  # JSON keys (pipeline.json) become levels
    tokens, stats = OctreeSampler(model, cfg).sample(1, generator=torch.Generator().manual_seed(0), return_stats=True)
    sizes = tokens[0].tokens_per_level()
    want = [min(2, n) for n in sizes]
    want[1], want[2], want[-1] = sizes[1], 1, min(3, sizes[-1])
    assert stats["steps"] == want
    for bad in ({"x": 2}, {-1: 2}, {1: 0}, {1: 2.5}, [1, 2]):
        with pytest.raises(ValueError, match="level_steps"):
            SamplerConfig(level_steps=bad)


def test_level_steps_survive_a_pipeline_round_trip():
    from dataclasses import asdict
    import json

    cfg = SamplerConfig(steps=8, level_steps={3: 16, 4: None})
    back = SamplerConfig(**json.loads(json.dumps(asdict(cfg))))
    assert back == cfg


def _run_level(remask: bool):
    """Three greedy steps on a 4-token level (one field, 2 values) where a token
    revealed at step 0 is less confident than two tokens sampled at step 1."""
    sched = LevelScheduler(SamplerConfig(steps=3, temperature=0.0, remask=remask))
    assert sched.set_level(torch.ones(1, 4, dtype=torch.bool)) == 3  # still masked after each step: 3, 2, 0
    logits = [[[0.5, 0], [0.1, 0], [0.1, 0], [0.1, 0]],   # step 0: position 0 is the most confident
              [[0, 0], [10, 0], [10, 0], [0.1, 0]],       # step 1: positions 1, 2 beat position 0's record
              [[0, 10], [0, 10], [0, 10], [0, 10]]]       # step 2: every masked position samples value 1
    tokens, masked = torch.zeros(1, 4, 1, dtype=torch.long), torch.ones(1, 4, dtype=torch.bool)
    history = []
    for i, lg in enumerate(logits):
        tokens, masked = sched.step(i, [torch.tensor([lg])], tokens, masked)
        history.append(masked[0].tolist())
    return history, tokens[0, :, 0].tolist()


def test_remask_masks_a_less_confident_earlier_token_again():
    history, values = _run_level(remask=True)
    assert history[0] == [False, True, True, True]
    # Position 0 (log-prob -0.47) loses to the new positions 1, 2 (about 0) and is masked
    # again with position 3 (-0.64); at the last step it is sampled afresh.
    assert history[1] == [True, False, False, True] and history[2] == [False] * 4
    assert values == [1, 0, 0, 1]
    # Without remask a revealed token is final: position 0 keeps its step-0 value.
    history, values = _run_level(remask=False)
    assert history[1] == [False, True, False, True] and values == [0, 1, 0, 1]


def test_remask_sampling_is_deterministic_and_complete():
    model = tiny()
    sampler = OctreeSampler(model, SamplerConfig(steps=3, remask=True, choice_temperature=2.0))
    a = sampler.sample(2, generator=torch.Generator().manual_seed(1))
    b = sampler.sample(2, generator=torch.Generator().manual_seed(1))
    assert same_tokens(a, b)
    for t in a:  # every structure token is a non-empty child mask and the octree decodes
        assert all(bool(((s >= 1) & (s <= 255)).all()) for s in t.structure)
        tokens_to_octree(t.structure)


def test_classifier_free_guidance_batched():
    model = tiny(num_classes=2)
    cond = Condition(class_labels=torch.tensor([0, 1]))
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    plain = OctreeSampler(model, SamplerConfig(steps=2)).sample(2, generator=g(), cond=cond)
    w1 = OctreeSampler(model, SamplerConfig(steps=2, guidance_scale=1.0)).sample(2, generator=g(), cond=cond)
    assert same_tokens(plain, w1)  # w = 1 is plain conditional sampling
    w3, stats = OctreeSampler(model, SamplerConfig(steps=2, guidance_scale=3.0)).sample(
        2, generator=g(), cond=cond, return_stats=True)
    w3b = OctreeSampler(model, SamplerConfig(steps=2, guidance_scale=3.0, use_cache=False)).sample(
        2, generator=g(), cond=cond)
    assert same_tokens(w3, w3b)
    assert not same_tokens(w3, plain)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_given_levels_are_kept_and_the_rest_sampled(k):
    model = tiny()
    src = OctreeSampler(model, SamplerConfig(steps=2)).sample(3, generator=torch.Generator().manual_seed(11))
    out = {}
    for use_cache in (True, False):
        sampler = OctreeSampler(model, SamplerConfig(steps=2, use_cache=use_cache))
        out[use_cache], stats = sampler.sample(3, generator=torch.Generator().manual_seed(5), return_stats=True,
                                               given=src, given_levels=k)
        assert stats["steps"][:k] == [0] * k  # nothing drawn for the given levels
    assert same_tokens(out[True], out[False])
    for s, t in zip(src, out[True]):
        t.octree()
        assert all(torch.equal(a, b) for a, b in zip(s.structure[:k], t.structure[:k]))
    if k == 3:  # whole structure given: only the leaves' payload differs
        assert any(not torch.equal(s.payload, t.payload) for s, t in zip(src, out[True]))


def test_given_levels_must_fit():
    model = tiny()
    sampler = OctreeSampler(model, SamplerConfig(steps=2))
    src = sampler.sample(2, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="given_levels"):
        sampler.sample(3, given=src, given_levels=2)
    with pytest.raises(ValueError, match="given_levels"):
        sampler.sample(2, given=src, given_levels=4)
    short = type(src[0])([src[0].structure[0], src[0].structure[1][:-1], *src[0].structure[2:]], src[0].payload)
    with pytest.raises(ValueError, match="level 1 has"):  # fewer nodes than the root's mask implies
        sampler.sample(2, given=[short, src[1]], given_levels=2)


def _brute_force_pairs(logits, total, temperature=1.0):
    """Exact conditional distribution of two independent masks given their children add up to total."""
    from octgen.sampling.scheduler import _POPCOUNT

    lp = (logits.double() / temperature).log_softmax(-1)
    joint = lp[0][:, None] + lp[1][None, :]
    ok = (_POPCOUNT[:, None] + _POPCOUNT[None, :]) == total
    joint = torch.where(ok, joint, torch.full_like(joint, float("-inf")))
    return joint


@pytest.mark.parametrize("K,total", [(1, 3), (3, 5), (4, 4), (5, 17), (2, 16)])
def test_masks_with_total_add_up(K, total):
    from octgen.sampling.scheduler import _POPCOUNT, sample_masks_with_total

    g = torch.Generator().manual_seed(K * 100 + total)
    logits = torch.randn(K, 255, generator=g) * 3
    for temperature in (1.0, 0.3, 0.0):
        cfg = SamplerConfig(temperature=temperature)
        classes = sample_masks_with_total(logits, total, cfg, g)
        assert classes.shape == (K,) and int(_POPCOUNT[classes].sum()) == total
    # out of reach: the nearest reachable total
    assert int(_POPCOUNT[sample_masks_with_total(logits, 0, SamplerConfig(), g)].sum()) == K
    assert int(_POPCOUNT[sample_masks_with_total(logits, 99, SamplerConfig(), g)].sum()) == 8 * K


def test_masks_with_total_sample_the_exact_conditional():
    """Two nodes: the greedy answer is the most likely admissible pair, and sampled
    pairs follow the brute-force conditional distribution (child count of node 0)."""
    from octgen.sampling.scheduler import _POPCOUNT, sample_masks_with_total

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 255, generator=g) * 2
    total = 6
    joint = _brute_force_pairs(logits, total)
    best = int(joint.flatten().argmax())
    greedy = sample_masks_with_total(logits, total, SamplerConfig(temperature=0.0), g)
    assert greedy.tolist() == [best // 255, best % 255]
    probs = joint.flatten().softmax(0).view(255, 255)
    want = torch.zeros(8, dtype=torch.float64)
    for c in range(1, 9):
        want[c - 1] = probs[_POPCOUNT == c].sum()
    n = 3000
    got = torch.zeros(8, dtype=torch.float64)
    for _ in range(n):
        got[int(_POPCOUNT[sample_masks_with_total(logits, total, SamplerConfig(), g)[0]]) - 1] += 1
    assert (got / n - want).abs().max() < 0.03, (got / n, want)


def test_size_level_makes_the_level_hold_the_asked_children():
    """With ``size_level`` the children of that level add up to each row's size
    whenever the last nodes revealed can reach it (one step: all of the level)."""
    torch.manual_seed(0)
    model = OctGenTransformer.from_octgen_config(OctGenConfig(
        depth=3, payload_vocab_sizes=PAYLOAD, dim=24, n_layers=2, n_heads=2, num_sizes=40)).double()
    sizes = torch.tensor([3, 9, 14, 20, 30, 6])
    cond = Condition(size_B=sizes)
    hits = 0
    for size_level in (None, 2):
        toks = OctreeSampler(model, SamplerConfig(steps=1, size_level=size_level)).sample(
            6, torch.Generator().manual_seed(4), cond)
        for t, n in zip(toks, sizes.tolist()):
            nodes = len(t.structure[2])
            children = int(sum(bin(int(m)).count("1") for m in t.structure[2]))
            assert children == len(t.payload)  # level 2's children are the leaves (depth 3)
            if size_level is not None:
                assert children == min(max(n, nodes), 8 * nodes)
                hits += children == n
    assert hits >= 3


def test_leaf_temperature_applies_to_the_payload_only():
    """Greedy payload (leaf_temperature 0) under a hot structure: the structure is the
    one temperature 5 draws, the payload what a greedy sampler puts on that structure."""
    model = tiny()
    hot = OctreeSampler(model, SamplerConfig(steps=2, temperature=5.0)).sample(3, torch.Generator().manual_seed(2))
    mixed = OctreeSampler(model, SamplerConfig(steps=2, temperature=5.0, leaf_temperature=0.0)).sample(
        3, torch.Generator().manual_seed(2))
    for a, b in zip(hot, mixed):
        assert all(torch.equal(x, y) for x, y in zip(a.structure, b.structure))
    greedy = OctreeSampler(model, SamplerConfig(steps=2, temperature=0.0)).sample(
        3, torch.Generator().manual_seed(9), given=mixed, given_levels=model.depth)
    assert all(torch.equal(a.payload, b.payload) for a, b in zip(mixed, greedy))
    assert not all(torch.equal(a.payload, b.payload) for a, b in zip(hot, mixed))
    with pytest.raises(ValueError, match="leaf_temperature"):
        SamplerConfig(leaf_temperature=-1.0)


@pytest.mark.parametrize("head", ["factorised", "autoregressive"])
def test_field_temperatures_set_each_payload_fields_temperature(head):
    """One step at the leaves on a given structure: the first field at temperature 0
    is what a greedy sampler draws there (for either head, nothing comes before it),
    while the hot second field differs from greedy's; all fields at 0 through
    ``field_temperatures`` is exactly the greedy payload."""
    model = tiny(payload_head=head)
    base = OctreeSampler(model, SamplerConfig(steps=2, temperature=1.0)).sample(4, torch.Generator().manual_seed(3))

    def payload(**kw):
        return OctreeSampler(model, SamplerConfig(steps=1, **kw)).sample(
            4, torch.Generator().manual_seed(5), given=base, given_levels=model.depth)

    greedy = payload(temperature=0.0)
    cold_first = payload(temperature=5.0, field_temperatures=[0.0, None])
    all_cold = payload(temperature=5.0, field_temperatures=(0.0, 0.0))
    assert all(torch.equal(a.payload, b.payload) for a, b in zip(greedy, all_cold))
    assert all(torch.equal(a.payload[:, 0], b.payload[:, 0]) for a, b in zip(greedy, cold_first))
    assert not all(torch.equal(a.payload[:, 1], b.payload[:, 1]) for a, b in zip(greedy, cold_first))
    with pytest.raises(ValueError, match="2 fields"):
        payload(field_temperatures=[0.5])
    for bad in ([-1.0, None], "0.5", [float("nan")], [True]):
        with pytest.raises(ValueError, match="field_temperatures"):
            SamplerConfig(field_temperatures=bad)
