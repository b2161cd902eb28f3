"""bench/device_qm9.py, the prepared GPU run, dry-run on the CPU: the probe, the
re-timed schedule inside the budget, and what comes back fits the device tool's
limits (at most 8 files of 16 MB, at most 2 folders down)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from octgen.pipeline.pipeline import OctGenPipeline
from octgen.train.shards import write_shards

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def _script():
    spec = importlib.util.spec_from_file_location("device_qm9", ROOT / "bench" / "device_qm9.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _molecule_shards(folder):
    """Token shards of 8 small carbon chains (CH2 units), as the QM9 shards are built."""
    from octgen.data.molecules import Molecule
    from octgen.tokenize.molecule import MoleculeTokenizer

    rng = np.random.default_rng(0)
    tok, tokens = MoleculeTokenizer(), []
    for i in range(8):
        n_c = 1 + i % 3
        carbons = np.arange(n_c)[:, None] * np.array([[1.54, 0.0, 0.0]])
        hydrogens = np.concatenate([c + np.array([[0.0, 1.09, 0.0], [0.0, -1.09, 0.0]]) + rng.normal(size=(2, 3)) * 0.05
                                    for c in carbons])
        tokens.append(tok.encode(Molecule(["C"] * n_c + ["H"] * len(hydrogens),
                                          np.concatenate([carbons, hydrogens]))))
    write_shards(tokens, folder)


def test_device_run_trains_to_its_budget_and_returns_a_small_export(tmp_path, capsys):
    """The shipped GPU config (at size tiny) through the script: probe, re-timed run,
    an export that fits what the device tool sends back."""
    _molecule_shards(tmp_path / "shards")
    out = tmp_path / "out"
    code = _script().main([str(ROOT / "configs" / "qm9-s-gpu.json"), "--budget-s", "20", "--probe-steps", "3",
                           "--out", str(out), "--shards", str(tmp_path / "shards"), "--run-dir",
                           str(tmp_path / "run"), "--size", "tiny", "--batch-size", "4", "--threads", "1"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_size"] == "tiny" and summary["steps"] > 3
    assert summary["wall_seconds"] < 20 + 15  # the budget, give or take one export
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(p.stat().st_size < 16 << 20 for p in files)
    assert all(len(p.relative_to(out).parts) <= 3 for p in files)
    pipe = OctGenPipeline.from_pretrained(out / "pipeline")
    assert pipe.info["train_step"] == summary["steps"]
    assert len(pipe(2, generator=torch.Generator().manual_seed(0))) == 2
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == summary["steps"]


def test_device_run_without_shards_is_one_line(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"output_dir": "x", "dataset": "synthetic", "model_size": "tiny"}))
    code = _script().main([str(config), "--out", str(tmp_path / "o"), "--shards", str(tmp_path / "none"),
                           "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "no token shards" in err and len(err.strip().splitlines()) == 1
