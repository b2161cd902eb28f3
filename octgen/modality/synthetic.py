"""Random octrees with random payloads: a stand-in modality for tests and smoke runs."""
from __future__ import annotations

from pathlib import Path

from ..train.data import synthetic_tokens
from ..train.shards import ShardDataset, read_index, write_shards
from .base import Modality, register_modality


@register_modality("synthetic")
class SyntheticModality(Modality):
    """``num`` random octrees of ``points`` uniform points at ``depth`` with payload
    columns of ``payload_vocab_sizes`` classes (settings in the config's
    ``synthetic`` or ``data``); shards in ``<output_dir>/shards``. It has no
    tokenizer, so training exports no pipeline."""

    defaults = {"num": 64, "points": 12, "depth": 4, "payload_vocab_sizes": [3, 4]}
    legacy_settings_field = "synthetic"

    def tokenizer(self):
        return None

    def payload_vocab_sizes(self, tokenizer) -> list[int]:
        return [int(v) for v in self.settings["payload_vocab_sizes"]]

    def prepare_data(self, tokenizer) -> ShardDataset:
        s = self.settings
        shard_dir = Path(self.cfg.shard_dir or Path(self.cfg.output_dir) / "shards")
        if read_index(shard_dir) is None:
            tokens = synthetic_tokens(int(s["num"]), int(s["points"]), int(s["depth"]),
                                      list(s["payload_vocab_sizes"]), self.cfg.seed)
            write_shards(tokens, shard_dir, extra_index={"source": "synthetic", **s})
        return ShardDataset(shard_dir)
