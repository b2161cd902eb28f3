"""A third modality added from outside the library: coloured point clouds.

Everything modality-specific lives in this file: a tokenizer class (points ->
octree, an RGB payload per leaf), a Modality subclass (shard building, outputs
as files) and a config. The generic trainer, pipeline and CLI train it, export
it, reload it, sample it and write its outputs without any change to their code.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.configuration_utils import register_to_config

from octgen.cli.main import main
from octgen.errors import InputError
from octgen.export.atomic import atomic_path
from octgen.modality import Modality, register_modality
from octgen.octree import build_octree
from octgen.pipeline.pipeline import load_pipeline, read_pipeline_info
from octgen.tokenize.base import OctreeTokenizer
from octgen.tokenize.tokens import OctreeTokens
from octgen.train.shards import ShardDataset, read_index, write_shards

torch.set_num_threads(1)


class ColourPointTokenizer(OctreeTokenizer):
    """Points in [-1, 1]^3 with RGB colours in [0, 1]: one leaf per occupied cell at
    ``depth``, its payload the colour of its first point in ``levels`` steps per channel."""

    payload_kind = "toy_rgb"

    @register_to_config
    def __init__(self, depth: int = 3, levels: int = 4):
        super().__init__()

    @property
    def depth(self) -> int:
        return self.config.depth

    @property
    def payload_vocab_sizes(self) -> list[int]:
        return [self.config.levels] * 3

    def encode(self, points_N3: torch.Tensor, colours_N3: torch.Tensor) -> OctreeTokens:
        octree = build_octree(points_N3, self.depth)
        # Colour of each leaf: the first point that falls in it (z-order of the leaves).
        cells = ((points_N3 + 1) / 2 * (1 << self.depth)).floor().long().clamp(0, (1 << self.depth) - 1)
        xyz = octree.xyz(self.depth)
        index = {tuple(c): i for i, c in enumerate(xyz.tolist())}
        payload = torch.zeros(len(xyz), 3, dtype=torch.long)
        seen = set()
        for p, c in enumerate(cells.tolist()):
            leaf = index[tuple(c)]
            if leaf not in seen:
                seen.add(leaf)
                payload[leaf] = (colours_N3[p] * (self.config.levels - 1)).round().long()
        return OctreeTokens.from_octree(octree, payload, self.payload_kind)

    def decode(self, tokens: OctreeTokens):
        """(cell centres (N, 3), colours (N, 3) in [0, 1])."""
        xyz = tokens.octree().xyz(self.depth).float()
        h = 2.0 / (1 << self.depth)
        return xyz * h + h / 2 - 1, tokens.payload.float() / (self.config.levels - 1)

    def save_pretrained(self, directory, **_):
        self.save_config(str(directory))

    @classmethod
    def load(cls, directory):
        return cls.from_config(cls.load_config(str(directory)))


@register_modality("toy_colour")
class ToyColourModality(Modality):
    """Clusters of points whose colour follows their position (learnable)."""

    defaults = {"num": 16, "points": 10}

    def tokenizer(self):
        return ColourPointTokenizer()

    def prepare_data(self, tokenizer):
        shard_dir = Path(self.cfg.output_dir) / "shards"
        if read_index(shard_dir) is None:
            g = torch.Generator().manual_seed(self.cfg.seed)
            clouds = []
            for _ in range(int(self.settings["num"])):
                centre = torch.rand(1, 3, generator=g) * 1.2 - 0.6
                pts = (centre + 0.3 * torch.randn(int(self.settings["points"]), 3, generator=g)).clamp(-0.99, 0.99)
                clouds.append(tokenizer.encode(pts, (pts + 1) / 2))
            write_shards(clouds, shard_dir, extra_index={"source": "toy"})
        return ShardDataset(shard_dir)

    @classmethod
    def evaluate(cls, outputs):
        return {"num": len(outputs), "mean_points": float(np.mean([len(p) for p, _ in outputs]))}

    @classmethod
    def write_outputs(cls, outputs, out_dir):
        names = []
        for i, (pts, rgb) in enumerate(outputs):
            names.append(f"cloud_{i:04d}.npz")
            with atomic_path(Path(out_dir) / names[-1]) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, points=pts.numpy(), colours=rgb.numpy())
        return names


def _same(a, b):
    return all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))


def test_toy_modality_trains_samples_saves_and_reloads_through_the_generic_code(tmp_path, capsys):
    config = tmp_path / "toy.json"
    config.write_text(json.dumps({
        "modality": "toy_colour", "output_dir": str(tmp_path / "run"), "model_size": "tiny", "batch_size": 4,
        "max_steps": 6, "save_every": 3, "log_every": 3, "warmup_steps": 1, "ema_decay": 0.9, "num_threads": 1,
        "data": {"num": 12}, "sampler": {"steps": 2}}))
    assert main(["train", str(config), "--prepare-only"]) == 0
    assert "12 sequences of depth 3" in capsys.readouterr().out
    assert main(["train", str(config), "--stop-at", "3"]) == 0
    assert main(["train", str(config), "--resume"]) == 0  # the generic resume path, too
    assert "trained to step 6" in capsys.readouterr().out

    folder = tmp_path / "run" / "pipeline"
    info = read_pipeline_info(folder)
    assert info["tokenizer"] == [__name__, "ColourPointTokenizer"] and info["modality"] == "toy_colour"
    assert info["conditioner"] is None and info["payload_kind"] == "toy_rgb" and info["train_step"] == 6
    pipe = load_pipeline(folder)
    assert isinstance(pipe.tokenizer, ColourPointTokenizer) and pipe.sampler_config.steps == 2
    assert list(pipe.transformer.cfg.payload_vocab_sizes) == [4, 4, 4]
    outs = pipe(3, generator=torch.Generator().manual_seed(0))
    assert len(outs) == 3
    for pts, rgb in outs:
        assert pts.shape == rgb.shape and pts.shape[0] >= 1 and pts.abs().max() < 1
        assert ((rgb * 3) == (rgb * 3).round()).all() and rgb.min() >= 0 and rgb.max() <= 1
    assert _same(outs, pipe(3, generator=torch.Generator().manual_seed(0)))

    pipe.save_pretrained(tmp_path / "copy")
    again = load_pipeline(tmp_path / "copy")
    assert _same(outs, again(3, generator=torch.Generator().manual_seed(0)))

    assert main(["generate", "sample", "--checkpoint", str(folder), "--num", "2", "--out", str(tmp_path / "gen")]) == 0
    report = json.loads((tmp_path / "gen" / "metrics.json").read_text())
    assert report["modality"] == "toy_colour" and report["files"] == ["cloud_0000.npz", "cloud_0001.npz"]
    with np.load(tmp_path / "gen" / "cloud_0001.npz") as z:
        assert z["points"].shape == z["colours"].shape
    assert report["metrics"]["num"] == 2


def test_pipeline_refuses_a_component_module_that_is_not_imported(tmp_path):
    import shutil

    import pytest

    from octgen.errors import InputError
    from octgen.modality.shapes import make_untrained_shape_pipeline

    folder = make_untrained_shape_pipeline(tmp_path / "p")
    info = json.loads((folder / "pipeline.json").read_text())
    for entry, match in ((["antigravity", "X"], "neither part of octgen nor imported"),
                         (["octgen.model", "Condition"], "is not a tokenizer class"),
                         (["octgen.tokenize.molecule", "Nope"], "no tokenizer class")):
        (folder / "pipeline.json").write_text(json.dumps({**info, "tokenizer": entry}))
        with pytest.raises(InputError, match=match):
            load_pipeline(folder)
    shutil.rmtree(folder)


def test_count_condition_exports_its_histogram_and_draws_counts_given_the_size(tmp_path):
    """A count-conditioned run (leaves whose red channel is 0) exports the joint
    histogram of (size, count) of its training trees; the pipeline draws each
    sample's count from the row of its size (a size never seen borrows the nearest)."""
    from octgen.train.objective import kind_counts, leaf_counts

    config = tmp_path / "toy.json"
    config.write_text(json.dumps({
        "modality": "toy_colour", "output_dir": str(tmp_path / "run"), "model_size": "tiny", "batch_size": 4,
        "max_steps": 2, "save_every": 2, "log_every": 1, "warmup_steps": 1, "num_threads": 1,
        "data": {"num": 12}, "sampler": {"steps": 2},
        "model": {"num_sizes": 12, "num_counts": 6, "count_value": 0}}))
    assert main(["train", str(config)]) == 0
    data = ShardDataset(tmp_path / "run" / "shards")
    seqs = [data[i] for i in range(len(data))]
    want = torch.zeros(12, 6, dtype=torch.long)
    for n, c in zip(leaf_counts(seqs).tolist(), kind_counts(seqs, 0).tolist()):
        want[min(n, 11), min(c, 5)] += 1
    pipe = load_pipeline(tmp_path / "run" / "pipeline")
    assert torch.equal(torch.tensor(pipe.info["count_histogram"]), want) and want[:, 1:].sum() > 0
    seen = want.sum(1).nonzero()[:, 0]
    sizes = seen.repeat(30)
    counts = pipe.draw_counts(sizes, torch.Generator().manual_seed(0))
    assert all(want[s, c] > 0 for s, c in zip(sizes.tolist(), counts.tolist()))
    assert want[seen[0], pipe.draw_counts(torch.tensor([0]), None).item()] > 0  # size 0: the nearest seen row
    assert len(pipe(2, generator=torch.Generator().manual_seed(1))) == 2
    assert len(pipe(2, generator=torch.Generator().manual_seed(1), num_leaves=5, num_counted=2)) == 2
    for bad in (6, -1):
        with pytest.raises(InputError, match="num_counted must be in 0..5"):
            pipe(1, num_counted=bad)
