"""``octgen bench train-step``: it times the steps ``octgen train`` takes (same
batches, same weights, same losses) and refuses bad flags in one line."""
import json

import pytest
import torch

from octgen.train.config import TrainConfig
from octgen.train.trainer import train

from helpers import run_cli

SYN = {"num": 4, "points": 5, "depth": 3, "payload_vocab_sizes": [3, 4]}


def _config(tmp_path, **kw):
    data = dict(output_dir=str(tmp_path / "run"), dataset="synthetic", model_size="tiny", batch_size=4,
                max_steps=6, save_every=100, log_every=1, warmup_steps=1, num_threads=1, synthetic=SYN,
                shard_dir=str(tmp_path / "shards"), ema_decay=0.9, **kw)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    return path


def test_fp32_arm_takes_the_training_steps(tmp_path, capsys):
    path = _config(tmp_path)
    out = tmp_path / "ts.json"
    code, stdout, err = run_cli(capsys, "bench", "train-step", path, "--precision", "no,bf16", "--steps", "4",
                                "--warmup", "2", "--block", "3", "--threads", "1", "--json", out)
    assert code == 0, err
    res = json.loads(out.read_text())
    rows = res["precisions"]
    assert set(rows) == {"no", "bf16"}
    for row in rows.values():
        assert row["wall_s_per_step"] > 0 and row["cpu_s_per_step"] > 0
    # bf16's loss on the same weights and batch is close to fp32's, not equal to it.
    assert abs(res["bf16_first_loss_diff"]) < 0.05 * rows["no"]["first_loss"]
    assert "bf16 autocast:" in stdout
    # The fp32 arm is octgen train: same initial weights, batches and optimiser, so the
    # mean loss of its timed steps (2..5) is the mean of the losses train logs there.
    train(TrainConfig.from_file(path), progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    logged = {r["step"]: r["loss"] for r in log}  # step k logs the loss of optimiser step k-1
    expect = sum(logged[s + 1] for s in range(2, 6)) / 4
    assert rows["no"]["mean_loss"] == pytest.approx(expect, rel=1e-5)


@pytest.mark.parametrize("flags, says", [
    (["--precision", "fp16"], "--precision"),
    (["--steps", "0"], "--steps"),
    (["--warmup", "-1"], "--warmup"),
])
def test_bad_flags_one_line(tmp_path, capsys, flags, says):
    code, _, err = run_cli(capsys, "bench", "train-step", _config(tmp_path), *flags)
    assert code == 2
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
