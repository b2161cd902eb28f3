"""``octgen ship``: a curve run's best/ becomes the next stage of a checkpoint folder."""
import json
from pathlib import Path

import torch

from octgen.cli.main import main
from octgen.model import OctGenConfig, OctGenTransformer
from octgen.pipeline.pipeline import OctGenPipeline, save_pipeline
from octgen.sampling import SamplerConfig
from octgen.tokenize.molecule import MoleculeTokenizer

torch.set_num_threads(1)

METRICS = {"atom_stability": 0.5, "mol_stability": 0.0, "validity": 0.4, "valid_unique": 0.3, "atom_count_tv": 0.2}


def _pipeline(out: Path, seed: int, sampler: SamplerConfig, extra: dict) -> None:
    tok = MoleculeTokenizer(depth=3, cell_size=1.92, offset_bins=8)
    torch.manual_seed(seed)
    model = OctGenTransformer.from_octgen_config(
        OctGenConfig(depth=3, payload_vocab_sizes=tuple(tok.payload_vocab_sizes), dim=24, n_layers=1, n_heads=2))
    save_pipeline(out, model, tok, sampler, extra, modality="qm9")


def _jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _setup(tmp_path):
    ckpt, run = tmp_path / "ckpt", tmp_path / "run"
    # The checkpoint: two stages, shipped at its curve point step 300 (250 CPU-s in all).
    _pipeline(ckpt, 0, SamplerConfig(steps=3, temperature=0.3), {
        "train_step": 100, "train_cpu_seconds": 150.0, "train_stages": ["a.json: steps 0-200", "b.json: steps 0-100"],
        "train_cpu_seconds_all_stages": 250.0})
    _jsonl(ckpt / "curve.jsonl", [{"step": s, "train_cpu_seconds": c, **METRICS} for s, c in
                                  ((100, 60.0), (200, 100.0), (300, 250.0), (400, 400.0))])
    _jsonl(ckpt / "train_log.jsonl", [{"step": 50, "loss": 3.0, "stage": 1}, {"step": 50, "loss": 2.5, "stage": 2}])
    (ckpt / "metrics.json").write_text("{}")
    (ckpt / "stages.txt").write_text("old")
    (ckpt / "README.md").write_text("kept")
    # The run: its best/ is step 20 (40 CPU-s), measured with another sampler.
    _pipeline(run / "best", 1, SamplerConfig(steps=8), {"train_step": 20, "train_cpu_seconds": 40.0,
                                                         "train_config": {"output_dir": "runs/c"}})
    _jsonl(run / "curve.jsonl", [{"step": 10, "train_cpu_seconds": 20.0, **METRICS},
                                 {"step": 20, "train_cpu_seconds": 40.0, **METRICS},
                                 {"step": 30, "train_cpu_seconds": 60.0, **METRICS}])
    _jsonl(run / "train_log.jsonl", [{"step": 10, "loss": 2.0}])
    info = json.loads((run / "best" / "pipeline.json").read_text())  # as older exports named it
    (run / "best" / "pipeline.json").write_text(json.dumps({**info, "transformer": ["octgen.model.transformer",
                                                                                    "OctGenTransformer"]}))
    return ckpt, run


def test_ship_continues_the_lineage(tmp_path, capsys):
    ckpt, run = _setup(tmp_path)
    assert main(["ship", str(run), str(ckpt), "--label", "3: more", "--config", "configs/c.json"]) == 0
    assert "stage 3 = step 20" in capsys.readouterr().out
    info = json.loads((ckpt / "pipeline.json").read_text())
    assert info["train_stages"][-1] == "configs/c.json: steps 0-20 (best of 30), init from stage 2"
    assert info["train_cpu_seconds_all_stages"] == 290.0 and info["train_step"] == 20
    assert info["sampler"]["steps"] == 3  # the checkpoint's defaults, not the run's
    assert info["transformer"] == ["octgen.model", "OctGenTransformer"]
    curve = _read(ckpt / "curve.jsonl")
    assert [(p["step"], p["train_cpu_seconds"]) for p in curve] == \
        [(100, 60.0), (200, 100.0), (300, 250.0), (310, 270.0), (320, 290.0), (330, 310.0)]
    assert curve[-1]["stage"] == "3: more" and curve[-1]["stage_step"] == 30
    assert [p["step"] for p in _read(ckpt / "curve_stage2_tail.jsonl")] == [400]
    assert [r["stage"] for r in _read(ckpt / "train_log.jsonl")] == [1, 2, 3]
    assert (ckpt / "ab" / "stage2_metrics.json").is_file() and (ckpt / "ab" / "stage2_stages.txt").is_file()
    assert not (ckpt / "metrics.json").exists() and (ckpt / "README.md").read_text() == "kept"
    assert (ckpt / "learning_curve.png").stat().st_size > 1000
    shipped = OctGenPipeline.from_pretrained(ckpt).transformer.state_dict()
    best = OctGenPipeline.from_pretrained(run / "best").transformer.state_dict()
    assert all(torch.equal(shipped[k], best[k]) for k in best)
    assert not list(tmp_path.glob(".ckpt.*"))


def test_ship_bad_input_changes_nothing(tmp_path, capsys):
    ckpt, run = _setup(tmp_path)
    before = {p: p.read_bytes() for p in ckpt.rglob("*") if p.is_file()}
    (run / "curve.jsonl").write_text(json.dumps({"step": 10, "train_cpu_seconds": 20.0, **METRICS}) + "\n")
    assert main(["ship", str(run), str(ckpt), "--label", "3"]) == 2  # best/'s step 20 was never measured
    err = capsys.readouterr().err
    assert "no point at best/'s step 20" in err and len(err.strip().splitlines()) == 1
    assert main(["ship", str(tmp_path / "nope"), str(ckpt), "--label", "3"]) == 2
    assert "no best/ pipeline folder" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in ckpt.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".ckpt.*"))


def test_ship_into_a_new_folder_makes_a_first_stage(tmp_path):
    _, run = _setup(tmp_path)
    assert main(["ship", str(run), str(tmp_path / "fresh"), "--label", "1"]) == 0
    info = json.loads((tmp_path / "fresh" / "pipeline.json").read_text())
    assert info["train_stages"] == ["runs/c: steps 0-20 (best of 30), from scratch"]
    assert info["train_cpu_seconds_all_stages"] == 40.0 and info["sampler"]["steps"] == 8
    assert [p["step"] for p in _read(tmp_path / "fresh" / "curve.jsonl")] == [10, 20, 30]
