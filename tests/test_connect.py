"""Whole objects from the sampler: connect_children (structure) and the leaf redraws."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from octgen.model import OctGenConfig, OctGenTransformer
from octgen.octree import key_to_xyz, tokens_to_octree, xyz_to_key
from octgen.sampling import OctreeSampler, SamplerConfig
from octgen.sampling.connect import CONNECT_ROUNDS, connect_children

torch.set_num_threads(1)


def children(keys, masks):
    return sorted(tuple(key_to_xyz(torch.tensor([(int(k) << 3) | s]))[0].tolist())
                  for k, m in zip(keys, masks) for s in range(8) if (int(m) >> s) & 1)


def masks_for(parents, cells):
    """Child masks of ``parents`` (level-d xyz) holding the level-(d+1) ``cells``."""
    keys = xyz_to_key(torch.tensor(parents))
    masks = torch.zeros(len(parents), dtype=torch.long)
    for c in cells:
        k = int(xyz_to_key(torch.tensor([c]))[0])
        masks[(keys == (k >> 3)).nonzero()[0, 0]] |= 1 << (k & 7)
    return keys, masks


def parts(cells, n):
    occ = np.zeros((n,) * 3, bool)
    occ[tuple(np.array(cells).T)] = True
    return ndimage.label(occ, ndimage.generate_binary_structure(3, 1))[1]


def test_connect_children_bridges_a_gap_with_the_fewest_cells_inside_the_parents():
    keys, masks = masks_for([[0, 0, 0], [1, 0, 0]], [(0, 0, 0), (3, 0, 0)])
    valid = torch.ones(1, 2, dtype=torch.bool)
    same, added = connect_children(keys[None], masks[None], valid, 1)  # the gap needs 2 cells
    assert torch.equal(same[0], masks) and added == [0]
    out, added = connect_children(keys[None], masks[None], valid, 2)
    assert added == [2]
    assert children(keys, out[0]) == [(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0)]
    assert (out[0] & masks == masks).all()  # only ever adds


def test_connect_children_joins_every_part_it_can_and_leaves_padding_alone():
    # three parts in an L of parents; padding row entries must stay as they were
    parents = [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    cells = [(0, 0, 0), (3, 0, 0), (3, 3, 0), (3, 3, 1)]
    keys, masks = masks_for(parents, cells)
    keys_BL = torch.stack([torch.cat([keys, torch.tensor([99])]), torch.cat([keys, torch.tensor([7])])])
    masks_BL = torch.stack([torch.cat([masks, torch.tensor([5])]), torch.cat([masks, torch.tensor([3])])])
    valid = torch.tensor([[True, True, True, False], [True, True, False, False]])
    assert parts(cells, 4) == 3
    out, added = connect_children(keys_BL, masks_BL, valid, 4)
    assert parts(children(keys, out[0, :3]), 4) == 1 and added[0] == 4
    assert out[0, 3] == 5 and out[1, 2] == masks[2] and out[1, 3] == 3
    # row 1 sees only the first two parents: (0,0,0) and (3,0,0) joined, the rest untouched
    assert children(keys[:2], out[1, :2]) == [(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0)]
    with pytest.raises(ValueError, match="max_bridge"):
        connect_children(keys_BL, masks_BL, valid, 0)


def tiny(depth=3):
    torch.manual_seed(0)
    return OctGenTransformer.from_octgen_config(
        OctGenConfig(depth=depth, payload_vocab_sizes=(5,), dim=24, n_layers=2, n_heads=2)).double().eval()


def test_sampler_connect_makes_every_level_one_part_and_zero_changes_nothing():
    model = tiny()
    base = OctreeSampler(model, SamplerConfig(steps=3)).sample(6, generator=torch.Generator().manual_seed(1))
    off = OctreeSampler(model, SamplerConfig(steps=3, connect=0)).sample(6, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a.payload, b.payload) and all(torch.equal(x, y) for x, y in zip(a.structure, b.structure))
               for a, b in zip(base, off))
    split = 0
    for d in range(1, 4):
        split += sum(parts(tokens_to_octree(t.structure).xyz(d).tolist(), 2 ** d) > 1 for t in base)
    assert split > 0  # the untrained model leaves parts apart ...
    on, stats = OctreeSampler(model, SamplerConfig(steps=3, connect=64)).sample(
        6, generator=torch.Generator().manual_seed(1), return_stats=True)
    for t in on:  # ... which connect joins at every level
        t.octree()
        for d in range(1, 4):
            assert parts(tokens_to_octree(t.structure).xyz(d).tolist(), 2 ** d) == 1
    assert sum(map(sum, stats["connect_added"])) > 0


def test_leaf_redraws_keep_each_rows_wholest_draw():
    """A stand-in tokenizer calls a row whole when its first leaf's payload is 0:
    rows are redrawn (that leaf only) at most CONNECT_ROUNDS times, and every row
    ends with the best share any of its draws had."""
    model = tiny()
    seen: dict = {}

    def share_of(tokens):
        return 1.0 if int(tokens.payload[0, 0]) == 0 else 0.5 - 0.01 * int(tokens.payload[0, 0])

    def key(tokens):
        return tuple(torch.cat([s.long() for s in tokens.structure]).tolist())

    def connect_leaves(tokens):
        seen.setdefault(key(tokens), []).append(share_of(tokens))
        return share_of(tokens), torch.tensor([0])

    cfg = SamplerConfig(steps=3, connect=1)
    out, stats = OctreeSampler(model, cfg).sample(8, generator=torch.Generator().manual_seed(2), return_stats=True,
                                                  connect_leaves=connect_leaves)
    plain = OctreeSampler(model, cfg).sample(8, generator=torch.Generator().manual_seed(2))
    assert len({key(t) for t in plain}) == 8  # rows told apart by their structure
    assert any(len(v) > 1 for v in seen.values()) and any(v[0] == 1.0 for v in seen.values())
    for t, p, redrawn in zip(out, plain, stats["connect_redrawn"]):
        draws = seen[key(t)]
        assert len(draws) <= CONNECT_ROUNDS + 1 and redrawn == len(draws) - 1
        assert share_of(t) == max(draws)
        assert key(t) == key(p)  # redraws touch leaf payloads only
        if draws[0] == 1.0:  # whole at once: the first draw, the same as without redraws
            assert torch.equal(t.payload, p.payload)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_connect_must_be_a_whole_number_of_cells(bad):
    with pytest.raises(ValueError, match="connect must be a whole number"):
        SamplerConfig(connect=bad)
