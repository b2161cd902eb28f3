"""The shapes training cache builds in pieces and resumes after an interruption."""
import json

import pytest
import torch

from octgen.condition.text import DEFAULT_TEXT_ENCODER
from octgen.tokenize.shape_vqvae import load_tokenizer
from octgen.train.shape_data import build_conditions, encode_training_shapes
from octgen.train.shards import ShardDataset


class Stop(Exception):
    pass


def _stop_after(n):
    calls = []

    def log(msg):
        calls.append(msg)
        if len(calls) == n:
            raise Stop(msg)

    return log, calls


def test_conditions_resume_after_an_interruption_and_match_a_one_piece_build(tmp_path):
    whole = tmp_path / "whole.pt"
    build_conditions(7, 1, 0, DEFAULT_TEXT_ENCODER, whole, chunk=100, log=lambda m: None)

    pieces = tmp_path / "pieces.pt"
    log, _ = _stop_after(2)  # interrupted right after its second piece (of 3) was written
    with pytest.raises(Stop):
        build_conditions(7, 1, 0, DEFAULT_TEXT_ENCODER, pieces, chunk=3, log=log)
    parts = tmp_path / "pieces.pt.parts"
    assert not pieces.exists() and sorted(p.name for p in parts.iterdir()) == ["part_000000-000003-v1.pt",
                                                                              "part_000003-000006-v1.pt"]

    log, calls = _stop_after(0)
    build_conditions(7, 1, 0, DEFAULT_TEXT_ENCODER, pieces, chunk=3, log=log)
    assert [m.split(" (")[0] for m in calls] == ["conditions: 7/7 shapes", f"conditions: wrote {pieces}"]
    assert not parts.exists()

    a, b = torch.load(whole, weights_only=True), torch.load(pieces, weights_only=True)
    assert a["captions"] == b["captions"] and len(b["captions"]) == 7
    for key in ("category", "sketches", "text_mask"):
        assert torch.equal(a[key], b[key]), key
    assert a["text_states"].shape == b["text_states"].shape
    # the same up to float rounding (the encoder batches differ)
    assert torch.allclose(a["text_states"].float(), b["text_states"].float(), atol=2e-3)


def test_tokens_resume_only_the_missing_shards(tmp_path):
    tok = load_tokenizer("shape-vqvae-d6t4k16")
    whole = encode_training_shapes(tok, 5, 0, tmp_path / "whole", chunk=5, log=lambda m: None)
    index = encode_training_shapes(tok, 5, 0, tmp_path / "pieces", chunk=2, log=lambda m: None)
    assert index["files"] == ["shard_00000.npz", "shard_00001.npz", "shard_00002.npz"]
    assert {k: index[k] for k in ("num_sequences", "num_nodes", "depth", "payload_width", "code_hash")} == \
        {k: whole[k] for k in ("num_sequences", "num_nodes", "depth", "payload_width", "code_hash")}

    # as if interrupted while the second shard was being encoded
    d = tmp_path / "pieces"
    (d / "shards.json").unlink(), (d / "shard_00001.npz").unlink(), (d / "shard_00001.json").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in d.iterdir()}
    calls = []
    again = encode_training_shapes(tok, 5, 0, d, chunk=2, log=calls.append)
    assert [m.split(" (")[0] for m in calls] == ["tokens: 4/5 shapes"]
    assert all((d / name).stat().st_mtime_ns == t for name, t in kept.items())
    assert again == index and json.loads((d / "shards.json").read_text()) == index

    x, y = ShardDataset(tmp_path / "whole"), ShardDataset(d)
    assert len(x) == len(y) == 5
    for i in range(5):
        for f in ("level_T", "token_T", "payload_TP", "centre_T3"):
            assert torch.equal(getattr(x[i], f), getattr(y[i], f)), (i, f)
