"""Training: config files, token shards, exact resume, and overfitting a tiny model."""
import json

import pytest
import torch
from safetensors.torch import load_file

from octgen.errors import InputError
from octgen.sampling import OctreeSampler, SamplerConfig
from octgen.train.config import TrainConfig
from octgen.train.data import synthetic_tokens
from octgen.train.shards import ShardDataset, write_shards
from octgen.train.trainer import cosine_with_warmup, train

torch.set_num_threads(1)
SYN = {"num": 4, "points": 5, "depth": 3, "payload_vocab_sizes": [3, 4]}


def cfg(tmp_path, name, **kw) -> TrainConfig:
    base = dict(output_dir=str(tmp_path / name), dataset="synthetic", model_size="tiny", batch_size=8,
                max_steps=4, save_every=2, log_every=1, warmup_steps=1, num_threads=1, synthetic=SYN,
                shard_dir=str(tmp_path / "shards"))
    base.update(kw)
    return TrainConfig(**base)


def test_config_files(tmp_path):
    good = tmp_path / "c.json"
    good.write_text(json.dumps({"dataset": "synthetic", "max_steps": 7}))
    assert TrainConfig.from_file(good).max_steps == 7
    y = tmp_path / "c.yaml"
    y.write_text("dataset: synthetic\nbatch_size: 3\n")
    assert TrainConfig.from_file(y).batch_size == 3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"datset": "qm9"}))
    with pytest.raises(InputError, match="unknown setting 'datset'"):
        TrainConfig.from_file(bad)
    with pytest.raises(InputError, match="no such"):
        TrainConfig.from_file(tmp_path / "missing.json")
    with pytest.raises(InputError, match="batch_size"):
        TrainConfig(batch_size=0)
    for bad_value in (1.5, -0.1, "0.1", True):
        with pytest.raises(InputError, match="node_deletion must be a number in"):
            TrainConfig(objective="all_levels", node_deletion=bad_value)
    with pytest.raises(InputError, match="node_deletion_size must be true or kept"):
        TrainConfig(objective="all_levels", node_deletion=0.1, node_deletion_size="all")
    with pytest.raises(InputError, match="node_deletion needs objective all_levels"):
        TrainConfig(node_deletion=0.1)
    assert TrainConfig(objective="all_levels", node_deletion=0.1).node_deletion == 0.1


def test_cosine_with_warmup():
    f = cosine_with_warmup(10, 110, floor=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1)


def test_shards_round_trip(tmp_path):
    toks = synthetic_tokens(5, 6, 3, [3, 4], seed=1)
    index = write_shards(toks, tmp_path / "s", shard_size=2)
    assert index["files"] == ["shard_00000.npz", "shard_00001.npz", "shard_00002.npz"]
    ds = ShardDataset(tmp_path / "s")
    assert len(ds) == 5
    from octgen.model.sequence import tokens_to_nodes
    for i, t in enumerate(toks):
        a, b = ds[i], tokens_to_nodes(t)
        assert a.level_sizes == b.level_sizes
        for f in ("level_T", "token_T", "payload_TP"):
            assert torch.equal(getattr(a, f), getattr(b, f))
        assert torch.allclose(a.centre_T3, b.centre_T3)
    with pytest.raises(InputError, match="no finished token shards"):
        ShardDataset(tmp_path / "nothing")


def _weights(run_dir, step):
    return load_file(str(run_dir / "checkpoints" / f"step_{step:08d}" / "model.safetensors"))


def test_save_state_resume_is_exact(tmp_path):
    straight = train(cfg(tmp_path, "a"), progress=False)
    train(cfg(tmp_path, "b"), progress=False, stop_at=2)
    with pytest.raises(InputError, match="--resume"):
        train(cfg(tmp_path, "b"), progress=False)
    resumed = train(cfg(tmp_path, "b"), resume=True, progress=False)
    assert straight["step"] == resumed["step"] == 4
    wa, wb = _weights(tmp_path / "a", 4), _weights(tmp_path / "b", 4)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ea, eb = straight["model"].state_dict(), resumed["model"].state_dict()  # EMA weights too
    assert all(torch.equal(ea[k], eb[k]) for k in ea)
    assert (tmp_path / "a" / "logs").is_dir()  # tensorboard
    # Keeps only the newest states.
    assert sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir()) == ["step_00000002", "step_00000004"]


def test_tiny_model_overfits_four_sequences_and_regenerates_them(tmp_path):
    result = train(cfg(tmp_path, "overfit", batch_size=16, max_steps=300, save_every=300, log_every=50,
                       lr=3e-3, warmup_steps=20, ema_decay=0.0, weight_decay=0.0,
                       model={"dim": 64, "n_layers": 2, "n_heads": 4}), progress=False)
    assert result["loss"] < 0.5  # mean of the last 50 steps; level 0 alone costs log 4 when it is the target
    train_set = {(tuple(tuple(s.tolist()) for s in t.structure), tuple(map(tuple, t.payload.tolist())))
                 for t in synthetic_tokens(**{k: SYN[k] for k in ("num", "points", "depth")},
                                           payload_vocab_sizes=SYN["payload_vocab_sizes"], seed=0)}
    sampler = OctreeSampler(result["model"], SamplerConfig(steps=None, top_p=0.9))
    out = sampler.sample(12, generator=torch.Generator().manual_seed(0))
    got = [(tuple(tuple(s.tolist()) for s in t.structure), tuple(map(tuple, t.payload.tolist()))) for t in out]
    assert sum(g in train_set for g in got) >= 11
    assert len(set(got)) >= 2  # not one memorised sample over and over


def _config_model_inputs(c: TrainConfig):
    """(modality, tokenizer, sequence depth, data-fixed model settings) that ``train``
    would use for ``c``, without building its data (the text width comes from the
    text encoder's config instead of the cached text states)."""
    from octgen.modality import get_modality

    modality = get_modality(c.modality)(c)
    tok = modality.tokenizer()
    if c.modality != "shapes":
        return modality, tok, tok.depth, {}
    from transformers import AutoConfig

    from octgen.condition.text import DEFAULT_TEXT_ENCODER, default_text_encoder_path

    assert modality.settings["text_encoder"] == DEFAULT_TEXT_ENCODER
    hidden = AutoConfig.from_pretrained(str(default_text_encoder_path()), local_files_only=True).hidden_size
    return modality, tok, tok.depth, {"cond_dim": int(hidden)}


def _numel(folder):
    return sum(t.numel() for f in sorted(folder.glob("*.safetensors")) for t in load_file(str(f)).values())


def test_shipped_configs_build_the_shipped_models():
    """Each config, built with its own tokenizer (as ``train`` builds it), has the
    architecture and parameter count of the checkpoint trained from it, or of its
    named size in MODEL_SIZES where no checkpoint is shipped."""
    from pathlib import Path

    from dataclasses import replace

    from octgen.model import MODEL_SIZES, OctGenConfig
    from octgen.train.trainer import build_model

    root = Path(__file__).resolve().parents[1]
    paths = sorted((root / "configs").glob("*.json"))
    assert {"qm9-xs", "shapes-xs"} <= {p.stem for p in paths}  # the configs of the shipped checkpoints
    for path in paths:
        c = TrainConfig.from_file(path)
        if c.job != "generator":  # the tokenizer and classifier configs: tests/test_shape_vqvae.py and below
            continue
        modality, tok, depth, settings = _config_model_inputs(c)
        with torch.device("meta"):  # no memory for the 170 M-parameter qm9-l
            model = build_model(c, modality, tok, depth, settings)
        n = sum(p.numel() for p in model.parameters())
        shipped = root / "checkpoints" / path.stem
        if not shipped.exists():  # a named size as it is: the table's count; else it builds (above)
            if not c.model:
                assert c.dataset == "qm9" and n == MODEL_SIZES[c.model_size]["params_qm9"], path.name
            continue
        transformer = modality.transformer_of(model)
        config = OctGenConfig.from_dict(json.loads((shipped / "transformer" / "config.json").read_text()))
        # Same architecture; fields added in later config versions take their defaults.
        assert replace(config, version=0) == replace(transformer.octgen_config, version=0), path.name
        parts = ["transformer", "conditioner"] if c.dataset == "shapes" else ["transformer"]
        assert n == sum(_numel(shipped / part) for part in parts), path.name
        # The checkpoint's README quotes the same count.
        assert f"{n:,} parameters" in (shipped / "README.md").read_text(), path.name


def test_length_bucketed_batches_cover_every_sequence_and_pad_little():
    from octgen.train.trainer import draw_batch

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(100, 2000, (1000,))
    order = torch.argsort(lengths, stable=True)
    counts = torch.zeros(1000)
    spread = []
    for _ in range(3000):
        idx = draw_batch(order, 16, g, 64)
        counts[idx] += 1
        spread.append(int(lengths[idx].max() - lengths[idx].min()))
    assert counts.min() > 0.3 * counts.mean() and counts.max() < 3 * counts.mean()
    assert sum(spread) / len(spread) < 0.15 * 1900  # uniform batches of 16 would span about 1700
    assert draw_batch(order, 4, torch.Generator().manual_seed(1), 0) == \
        torch.randint(1000, (4,), generator=torch.Generator().manual_seed(1)).tolist()


def test_level_sampling_weights():
    from octgen.train.objective import level_weights

    sizes = [1, 8, 20, 100, 600]
    assert level_weights(sizes, "tokens").tolist() == [1.0, 8.0, 20.0, 100.0, 600.0]
    w = level_weights(sizes, "sqrt")
    assert torch.allclose(w, torch.tensor(sizes, dtype=torch.float).sqrt())
    assert level_weights([1, 0, 3], "uniform").tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError):
        level_weights(sizes, "log")
    # Drawn targets follow the weights: the root is a target far more often with sqrt.
    from octgen.model.sequence import NodeSequence
    seq = NodeSequence(torch.cat([torch.full((n,), d) for d, n in enumerate(sizes)]),
                       torch.ones(sum(sizes), dtype=torch.long), torch.zeros(sum(sizes), 1, dtype=torch.long),
                       torch.zeros(sum(sizes), 3), sizes)
    from octgen.train.objective import make_training_batch
    g = torch.Generator().manual_seed(0)
    roots = {m: sum(int(make_training_batch([seq], 1, g, m).masked_BT[0, 0]) for _ in range(400))
             for m in ("tokens", "sqrt")}
    assert roots["tokens"] < 5 and roots["sqrt"] > 5


def test_curve_loop_trains_in_chunks_keeps_the_best_and_resumes(tmp_path):
    from octgen.bench.curve import curve_loop

    c = cfg(tmp_path, "curve", max_steps=6, save_every=2)
    scores, measured, plotted = iter([0.5, 0.2, 0.9]), [], []

    def measure_fn(pipeline_dir):  # stands in for sampling the exported pipeline
        step = len(measured) * 2 + 2
        pipeline_dir.mkdir(parents=True, exist_ok=True)
        (pipeline_dir / "step.txt").write_text(str(step))
        measured.append(step)
        return {"q": next(scores)}

    def plot_fn(points, path):
        plotted.append(len(points))

    points = curve_loop(c, 2, None, measure_fn, lambda p: p["q"], str, plot_fn)
    assert [p["step"] for p in points] == measured == [2, 4, 6]
    cpu = [p["train_cpu_seconds"] for p in points]
    assert cpu == sorted(cpu) and cpu[-1] > 0  # carried over the resumes
    out = tmp_path / "curve"
    assert (out / "best" / "step.txt").read_text() == "6"  # 0.9 beat 0.5; 0.2 never copied
    assert len((out / "curve.jsonl").read_text().splitlines()) == 3 and plotted == [3]
    # Rerunning finds the run finished: no training, no new point.
    assert [p["step"] for p in curve_loop(c, 2, None, measure_fn, lambda p: p["q"], str, plot_fn)] == [2, 4, 6]
    assert measured == [2, 4, 6]


def test_init_from_a_shapes_pipeline_warm_starts_the_conditioner_too(tmp_path):
    from octgen.condition.shape import ShapeConditioner
    from octgen.model import OctGenTransformer, config_for_size
    from octgen.modality.shapes import ShapesModality, make_untrained_shape_pipeline
    from octgen.train import TrainConfig
    from octgen.train.objective import ConditionedModel
    from octgen.pipeline import OctGenPipeline
    from octgen.train.trainer import init_components_from

    folder = make_untrained_shape_pipeline(tmp_path / "p", seed=1)
    saved = OctGenPipeline.from_pretrained(folder)
    torch.manual_seed(2)
    module = ConditionedModel(OctGenTransformer.from_octgen_config(saved.transformer.cfg), ShapeConditioner(384))
    modality = ShapesModality(TrainConfig(output_dir=str(tmp_path / "run"), modality="shapes"))
    assert not all(torch.equal(v.float(), module.conditioner.state_dict()[k])
                   for k, v in saved.conditioner.state_dict().items())
    assert init_components_from(modality.components(module), folder) == []
    for name, part in (("transformer", saved.transformer), ("conditioner", saved.conditioner)):
        mine = getattr(module, name).state_dict()
        assert all(torch.equal(v.float(), mine[k]) for k, v in part.state_dict().items()), name
    # a folder with the transformer only: the conditioner keeps its init, and says so
    (folder / "conditioner" / "model.safetensors").unlink()
    fresh = init_components_from(modality.components(module), folder)
    assert fresh and all(k.startswith("conditioner.") for k in fresh)
