"""The learned pair potential on leaf offsets (octgen/model/pair.py): neighbours,
distances, zero init, gradients, the sampler's use of it, and warm starts."""
import pytest
import torch

from octgen.errors import InputError
from octgen.model import OctGenConfig, OctGenTransformer
from octgen.model.pair import GAIN, leaf_neighbours
from octgen.model.transformer import NodeInputs
from octgen.sampling import OctreeSampler, SamplerConfig
from octgen.train.objective import make_all_levels_batch, masked_token_loss
from octgen.train.trainer import init_transformer_from
from helpers import synthetic_seqs, tiny_model

torch.set_num_threads(1)
PAYLOAD = (3, 8, 8, 8)  # type, x, y, z offset bins
FIELDS = (1, 2, 3)


def with_pair(**kw):
    return tiny_model(PAYLOAD, payload_head="autoregressive", pair_potential_fields=FIELDS, **kw)


def test_config_checks():
    with pytest.raises(ValueError, match="autoregressive"):
        OctGenConfig(depth=3, payload_vocab_sizes=PAYLOAD, dim=24, n_heads=2, pair_potential_fields=FIELDS)
    with pytest.raises(ValueError, match="after field 0"):
        OctGenConfig(depth=3, payload_vocab_sizes=PAYLOAD, dim=24, n_heads=2, payload_head="autoregressive",
                     pair_potential_fields=(0, 1, 2))
    with pytest.raises(ValueError, match="pair_grid"):
        OctGenConfig(depth=3, payload_vocab_sizes=PAYLOAD, dim=24, n_heads=2, payload_head="autoregressive",
                     pair_potential_fields=FIELDS, pair_grid=(2.0, 1.0, 5))
    cfg = OctGenConfig(depth=3, payload_vocab_sizes=PAYLOAD, dim=24, n_heads=2, payload_head="autoregressive",
                       pair_potential_fields=FIELDS)
    assert OctGenConfig.from_dict(cfg.to_dict()) == cfg


def nodes_one_row():
    """Depth-3 leaves of one row: two revealed (types 1, 2), one masked, one structure node."""
    D = 3
    cell = 2.0 / (1 << D)
    centres = torch.tensor([[0.0, 0.0, 0.0], [-1 + 2.5 * cell, -1 + 0.5 * cell, -1 + 0.5 * cell],
                            [-1 + 4.5 * cell, -1 + 0.5 * cell, -1 + 0.5 * cell],
                            [-1 + 0.5 * cell, -1 + 0.5 * cell, -1 + 0.5 * cell]], dtype=torch.float64)
    level = torch.tensor([[2, 3, 3, 3]])
    payload = torch.tensor([[[0, 0, 0, 0], [1, 0, 7, 4], [2, 4, 4, 4], [0, 1, 1, 1]]])
    masked = torch.tensor([[False, False, False, True]])
    return NodeInputs(level, torch.zeros(1, 4, dtype=torch.long), payload, masked, centres[None])


def test_neighbours_are_the_revealed_leaves_at_their_exact_positions():
    n = nodes_one_row()
    target = n.masked_BT.clone()
    nb = leaf_neighbours(n.level_BT, n.masked_BT, n.centre_BT3, n.payload_BTP, target, 3, FIELDS, PAYLOAD)
    assert nb.pos_KL3.shape == (1, 2, 3) and nb.valid_KL.all()
    assert nb.type_KL.tolist() == [[1, 2]]
    # finest-cell units: cell 2 at bins (0, 7, 4) of 8 -> 2 + 1/16, 7/8 + 1/16 ... ; cell 4 at bin centres 4.5/8
    assert torch.allclose(nb.pos_KL3[0, 0], torch.tensor([2 + 0.5 / 8, 7.5 / 8, 4.5 / 8]))
    assert torch.allclose(nb.pos_KL3[0, 1], torch.tensor([4 + 4.5 / 8, 4.5 / 8, 4.5 / 8]))
    assert torch.allclose(nb.centre_K3[0], torch.tensor([0.5, 0.5, 0.5]))


def test_potential_prefers_the_bin_at_its_favourite_distance():
    model = with_pair(pair_grid=(1.0, 3.0, 41))
    pp = model.pair_potential
    n = nodes_one_row()
    nb = leaf_neighbours(n.level_BT, n.masked_BT, n.centre_BT3, n.payload_BTP, n.masked_BT, 3, FIELDS, PAYLOAD)
    nb.valid_KL[0, 1] = False  # score against the type-1 leaf only
    r = 20  # favourite distance: knot 20 sits at 1.0 + 20 * 0.05 = 2.0 cells, for target type 0 next to type 1, axis x
    with torch.no_grad():
        pp.weight[0, 0 * 3 + 1, r] = 1.0
    prev = torch.tensor([[0, 0, 0, 0]])
    lg = pp.logits(1, prev, nb)[0]
    cand = (torch.arange(8) + 0.5) / 8 - 0.5
    dist = ((0.5 + cand - nb.pos_KL3[0, 0, 0]) ** 2 + (0.5 - nb.pos_KL3[0, 0, 1]) ** 2
            + (0.5 - nb.pos_KL3[0, 0, 2]) ** 2).sqrt()
    assert int(lg.argmax()) == int((dist - 2.0).abs().argmin())
    expected = GAIN * (1 - (dist - 2.0).abs() / pp.spacing).clamp(min=0)  # the hat of knot 20
    assert torch.allclose(lg.float(), expected.float(), atol=1e-5)
    # on the last knot exactly (and just past it: 0)
    last = torch.zeros(1, 2, 3)
    last[0, 0] = nb.centre_K3[0] + torch.tensor([0.5 / 8 - 0.5 + 3.0, 0.0, 0.0])  # 3.0 cells from bin 0
    with torch.no_grad():
        pp.weight[0, 1, 40] = 3.0
    far = type(nb)(nb.centre_K3, last, nb.type_KL, nb.valid_KL)
    lg_far = pp.logits(1, torch.tensor([[0, 0, 0, 0]]), far)[0].detach()
    assert torch.isfinite(lg_far).all() and abs(float(lg_far[0]) - 3.0 * GAIN) < 1e-6 and float(lg_far[1]) == 0.0
    with torch.no_grad():
        pp.weight[0, 1, 40] = 0.0
    # another target type or the invalid neighbour: no effect
    assert pp.logits(1, torch.tensor([[2, 0, 0, 0]]), nb).abs().max() == 0
    # the y axis uses the x offset already drawn: moving x changes the y logits
    with torch.no_grad():
        pp.weight[1, 1, r] = 1.0
    a, b = pp.logits(2, torch.tensor([[0, 0, 0, 0]]), nb), pp.logits(2, torch.tensor([[0, 7, 0, 0]]), nb)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("build,new", [
    (lambda: with_pair(), ["pair_potential.weight"]),
    (lambda: with_both(), ["pair_potential.weight", "structure_potential.weight"]),
])
def test_zero_init_changes_nothing_and_training_reaches_the_weights(build, new):
    """A model gaining potentials keeps its outputs (losses, samples) until they train,
    and the loss's gradient reaches every new knot table."""
    plain = tiny_model(PAYLOAD, payload_head="autoregressive")
    model = build()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == new and not unexpected
    data = synthetic_seqs(PAYLOAD, 4, 20, seed=2)
    batch = make_all_levels_batch(data, len(PAYLOAD), torch.Generator().manual_seed(0))
    l0, _ = masked_token_loss(plain, batch)
    model.train()
    l1, _ = masked_token_loss(model, batch)
    assert torch.allclose(l0, l1)
    l1.backward()
    params = dict(model.named_parameters())
    assert all(params[name].grad.abs().sum() > 0 for name in new)
    cfg = SamplerConfig(steps=3, temperature=1.0)
    a = OctreeSampler(plain, cfg).sample(3, torch.Generator().manual_seed(5))
    b = OctreeSampler(model.eval(), cfg).sample(3, torch.Generator().manual_seed(5))
    assert all(torch.equal(x.payload, y.payload) and all(torch.equal(s, t) for s, t in zip(x.structure, y.structure))
               for x, y in zip(a, b))


def test_sampler_draws_offsets_from_the_potential():
    """A sharp potential pulls a leaf's offset next to an already revealed leaf: with the
    potential, sampled leaves keep its favourite distance to their revealed neighbours
    more often than without."""
    model = with_pair(pair_grid=(0.5, 4.0, 36))
    with torch.no_grad():
        model.pair_potential.weight[:] = -1.0  # every distance costs, except ~1.5 cells
        model.pair_potential.weight[:, :, 10] = 2.0
    cfg = SamplerConfig(steps=12, temperature=1.0, confidence="random")
    toks = OctreeSampler(model, cfg).sample(8, torch.Generator().manual_seed(0))
    plain = tiny_model(PAYLOAD, payload_head="autoregressive")
    base = OctreeSampler(plain, cfg).sample(8, torch.Generator().manual_seed(0))

    def near_fraction(tokens):
        hits = total = 0
        for t in tokens:
            xyz = t.octree().xyz(3).double() + (t.payload[:, 1:].double() + 0.5) / 8
            d = torch.cdist(xyz, xyz) + torch.eye(len(xyz)) * 99
            nearest = d.min(1).values
            hits += int(((nearest - 1.5).abs() < 0.15).sum())
            total += len(xyz)
        return hits / max(total, 1)

    assert near_fraction(toks) > near_fraction(base) + 0.1


def test_init_from_a_saved_transformer(tmp_path):
    plain = tiny_model(PAYLOAD, payload_head="autoregressive")
    plain.float().save_pretrained(tmp_path / "transformer", safe_serialization=True)
    model = with_pair().float()
    fresh = init_transformer_from(model, tmp_path)
    assert fresh == ["pair_potential.weight"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in plain.float().state_dict().items())
    wider = tiny_model((3, 8, 8, 9), payload_head="autoregressive").float()
    with pytest.raises(InputError, match="shape|is \\("):
        init_transformer_from(wider, tmp_path)
    with pytest.raises(InputError, match="no transformer weights"):
        init_transformer_from(model, tmp_path / "nowhere")
    weights = tmp_path / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(InputError, match="truncated"):
        init_transformer_from(model, tmp_path)


def test_init_from_a_shallower_transformer_grows_it_without_changing_what_it_computes(tmp_path):
    shallow = with_pair()
    shallow.float().save_pretrained(tmp_path / "transformer", safe_serialization=True)
    torch.manual_seed(1)
    deep = OctGenTransformer.from_octgen_config(OctGenConfig(
        depth=3, payload_vocab_sizes=PAYLOAD, dim=24, n_layers=4, n_heads=2, payload_head="autoregressive",
        pair_potential_fields=FIELDS)).float()
    fresh = init_transformer_from(deep, tmp_path)
    assert fresh and all(n.startswith(("blocks.1.", "blocks.3.")) for n in fresh)
    shallow, deep = shallow.double(), deep.double()
    sd = shallow.state_dict()
    assert torch.equal(deep.state_dict()["blocks.2.qkv.weight"], sd["blocks.1.qkv.weight"])
    assert deep.blocks[1].proj.weight.abs().sum() == 0 and deep.blocks[3].mlp[-1].weight.abs().sum() == 0
    batch = make_all_levels_batch(synthetic_seqs(PAYLOAD, 4, 20, seed=2), len(PAYLOAD),
                                  torch.Generator().manual_seed(0))
    l0, _ = masked_token_loss(shallow.eval(), batch)
    deep.train()
    l1, _ = masked_token_loss(deep, batch)
    assert torch.allclose(l0, l1)
    l1.backward()
    assert deep.blocks[1].proj.weight.grad.abs().sum() > 0  # the new blocks learn
    with pytest.raises(InputError, match="grow deeper"):
        deep.float().save_pretrained(tmp_path / "deep" / "transformer", safe_serialization=True)
        init_transformer_from(shallow.float(), tmp_path / "deep")


def with_both(**kw):
    return tiny_model(PAYLOAD, payload_head="autoregressive", pair_potential_fields=FIELDS,
                      structure_potential_levels=2, **kw)


def test_structure_neighbours_are_the_children_drawn_in_the_same_probe_level():
    """Children centres agree with the octree's own child keys, and only unmasked
    probe nodes of the target's level count (clean copies and other levels do not)."""
    from octgen.model.pair import structure_neighbours
    from octgen.octree import key_to_xyz, xyz_to_centres

    D = 3
    # level-2 nodes at keys 5 and 9 (masks 0b00010001, 0b10000000), a level-1 node, the same
    # level-2 node twice more: once as a clean copy, once masked (the target)
    keys = torch.tensor([1, 5, 9, 5, 5])
    lv = torch.tensor([[1, 2, 2, 2, 2]])
    tok = torch.tensor([[3, 0b00010001, 0b10000000, 0b00000010, 0]])
    masked = torch.tensor([[False, False, False, False, True]])
    probe = torch.tensor([[True, True, True, False, True]])
    centre = torch.stack([xyz_to_centres(key_to_xyz(keys[i:i + 1]), int(lv[0, i]))[0] for i in range(5)])[None]
    target = masked.clone()
    nb = structure_neighbours(lv, masked, centre, tok, probe, target, D, first_level=1)
    got = {tuple(p.tolist()) for p, ok in zip(nb.pos_KM3[0], nb.valid_KM[0]) if ok}
    want = set()
    for key, mask in ((5, 0b00010001), (9, 0b10000000)):
        for k in range(8):
            if mask >> k & 1:
                cells = (xyz_to_centres(key_to_xyz(torch.tensor([key << 3 | k])), 3)[0] + 1) * 4
                want.add(tuple(cells.float().tolist()))
    assert got == want
    own = {tuple(((xyz_to_centres(key_to_xyz(torch.tensor([5 << 3 | k])), 3)[0] + 1) * 4).float().tolist())
           for k in range(8)}
    assert {tuple(c.tolist()) for c in nb.children_K83[0]} == own
    assert nb.active_K.tolist() == [True]


def test_structure_potential_scores_masks_by_their_children():
    model = with_both(structure_grid=(0.0, 4.0, 17))
    sp = model.structure_potential
    from octgen.model.pair import StructureNeighbours

    children = torch.tensor([[[float(k >> 2 & 1), float(k >> 1 & 1), float(k & 1)] for k in range(8)]]) + 0.5
    pos = torch.tensor([[[3.5, 0.5, 0.5]]])  # one placed child, 2 cells from slot 4 (x = 1.5)
    nb = StructureNeighbours(torch.tensor([2]), children.double(), pos.double(), torch.tensor([[True]]),
                             torch.tensor([True]))
    with torch.no_grad():
        sp.weight[1, 8] = 1.0  # level 2 (the finest structure level): likes 2.0 cells (knot 8)
    lg = sp.logits(nb)[0]
    assert lg.shape == (255,)
    # slot 4 at 2.0 cells: 1; slots 5, 6 at sqrt(5): 1 - 0.236 / 0.25; slot 7 at sqrt(6) and slots 0-3: 0
    assert int(lg.argmax()) + 1 == 0b01110000
    assert torch.isclose(lg[0b01110000 - 1], torch.tensor(GAIN * (1 + 2 * (1 - (5 ** 0.5 - 2) / 0.25)), dtype=lg.dtype))
    assert torch.isclose(lg[0b00010000 - 1], torch.tensor(GAIN, dtype=lg.dtype))   # slot 4 alone: 2.0 cells
    assert lg[0b00000001 - 1] == 0  # slot 0 is 3 cells away
    inactive = StructureNeighbours(nb.level_K, nb.children_K83, nb.pos_KM3, nb.valid_KM, torch.tensor([False]))
    assert sp.logits(inactive).abs().max() == 0


def potential_model(**kw):
    """Both potentials, with random non-zero knots (fp64)."""
    model = with_both(**kw)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        model.pair_potential.weight.copy_(torch.randn(model.pair_potential.weight.shape, generator=g).double())
        model.structure_potential.weight.copy_(
            torch.randn(model.structure_potential.weight.shape, generator=g).double())
    return model


@pytest.mark.parametrize("steps", [3, None])
def test_potentials_cached_and_recomputed_sampling_agree(steps):
    model = potential_model()
    out = {}
    for use_cache in (True, False):
        cfg = SamplerConfig(steps=steps, use_cache=use_cache, temperature=1.0)
        out[use_cache] = OctreeSampler(model, cfg).sample(4, torch.Generator().manual_seed(3))
    for x, y in zip(out[True], out[False]):
        assert all(torch.equal(a, b) for a, b in zip(x.structure, y.structure)) and torch.equal(x.payload, y.payload)
        x.octree()


def test_potentials_with_classifier_free_guidance():
    """Guided sampling (conditional and unconditional rows in one batch) with both
    potentials gives valid octrees with full payloads, deterministically."""
    from octgen.model import Condition

    model = potential_model(num_classes=2)
    cond = Condition(class_labels=torch.tensor([0, 1]))
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    sampler = OctreeSampler(model, SamplerConfig(steps=3, guidance_scale=3.0))
    guided, again = sampler.sample(2, g(), cond), sampler.sample(2, g(), cond)
    for t, u in zip(guided, again):
        t.octree()
        assert t.payload.shape == (t.tokens_per_level()[-1], len(PAYLOAD))
        assert torch.equal(t.payload, u.payload)

