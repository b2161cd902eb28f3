"""``octgen generate molecule|shape``: per-item manifest facts, ``--resume`` after a
SIGKILL (no duplicate or half-written file, the same outputs as an uninterrupted
run), and ``accelerate launch`` splitting one batch over 2 CPU processes."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from octgen.cli.main import main
from octgen.data.molecules import read_molecules

ROOT = Path(__file__).resolve().parents[1]
QM9 = ROOT / "checkpoints" / "qm9-xs"
MOLECULE_FLAGS = ["--checkpoint", str(QM9), "--steps", "1", "--seed", "3", "--batch-size", "2"]


def _manifest(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _kill_after_units(cmd, out: Path, units: int, timeout: float = 180) -> int:
    """Start ``cmd``, SIGKILL it once ``units`` work units are recorded; -> units seen."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = out / ".octgen-parts"
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if len(list(parts.glob("unit_*.jsonl"))) >= units:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return len(list(parts.glob("unit_*.jsonl")))


def _no_leftovers(out: Path):
    names = [p.name for p in out.rglob("*")]
    assert not [n for n in names if ".part" in n], names
    assert not (out / ".octgen-parts").exists()


def test_molecule_manifest_has_per_item_facts(tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", "molecule", "--num", "5", "--out", str(out), *MOLECULE_FLAGS]) == 0
    rows, mols = _manifest(out), read_molecules(out / "molecules.sdf")
    assert [r["index"] for r in rows] == list(range(5))
    assert [(r["seed"], r["batch"], r["row"]) for r in rows] == [(3, 0, 0), (3, 0, 1), (4, 1, 0), (4, 1, 1), (5, 2, 0)]
    assert [r["formula"] for r in rows] == [m.formula() for m in mols]
    assert all(r["valid"] == (r["smiles"] is not None) and isinstance(r["stable"], bool) for r in rows)
    assert all(r["seconds"] > 0 and r["num_atoms"] == len(m) for r, m in zip(rows, mols))
    # A manifest line's seed and batch size make that batch (and so the molecule) again.
    again = tmp_path / "again"
    main(["generate", "molecule", "--num", "2", "--out", str(again), "--checkpoint", str(QM9), "--steps", "1",
          "--seed", "4", "--batch-size", "2"])
    assert [r["formula"] for r in _manifest(again)] == [rows[2]["formula"], rows[3]["formula"]]
    _no_leftovers(out)


def test_molecule_resume_after_sigkill(tmp_path, capsys):
    clean, out = tmp_path / "clean", tmp_path / "killed"
    flags = ["--num", "40", *MOLECULE_FLAGS]
    seen = _kill_after_units([sys.executable, "-m", "octgen.cli.main", "generate", "molecule", "--out", str(out),
                              *flags], out, units=2)
    assert 2 <= seen < 20 and not (out / "manifest.jsonl").exists()
    # Other settings are refused, not mixed in.
    assert main(["generate", "molecule", "--out", str(out), "--resume", *flags[:-1], "3"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main(["generate", "molecule", "--out", str(out), "--resume", *flags]) == 0
    assert main(["generate", "molecule", "--out", str(clean), *flags]) == 0
    rows = _manifest(out)
    assert [r["index"] for r in rows] == list(range(40))
    assert (out / "molecules.sdf").read_text() == (clean / "molecules.sdf").read_text()
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in _manifest(clean)]
    _no_leftovers(out)


@pytest.fixture(scope="module")
def shape_ckpt(tmp_path_factory):
    from octgen.modality.shapes import make_untrained_shape_pipeline

    return make_untrained_shape_pipeline(tmp_path_factory.mktemp("shape-ckpt"))


def test_shape_resume_after_sigkill(shape_ckpt, tmp_path, capsys):
    clean, out = tmp_path / "clean", tmp_path / "killed"
    flags = ["--num", "5", "--checkpoint", str(shape_ckpt), "--steps", "1", "--format", "ply", "--seed", "7"]
    _kill_after_units([sys.executable, "-m", "octgen.cli.main", "generate", "shape", "--out", str(out), *flags],
                      out, units=1)
    assert main(["generate", "shape", "--out", str(out), "--resume", *flags]) == 0
    assert main(["generate", "shape", "--out", str(clean), *flags]) == 0
    rows = _manifest(out)
    assert [r["index"] for r in rows] == list(range(5)) and [r["seed"] for r in rows] == list(range(7, 12))
    keep = ("index", "seed", "files", "faces", "empty", "watertight")
    assert [{k: r[k] for k in keep} for r in rows] == [{k: r[k] for k in keep} for r in _manifest(clean)]
    for r in rows:
        for f in r["files"]:
            assert (out / f).read_bytes() == (clean / f).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == sorted([f for r in rows for f in r["files"]] + ["manifest.jsonl"])
    _no_leftovers(out)


def test_accelerate_launch_splits_a_batch_over_two_processes(tmp_path, capsys):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    if accelerate is None:
        pytest.skip("accelerate's launcher is not installed next to this Python")
    out, single = tmp_path / "two", tmp_path / "one"
    flags = ["--num", "7", *MOLECULE_FLAGS]
    # --multi_gpu starts the processes with torchrun (also without a GPU); accelerate 1.15's
    # "--cpu --num_processes 2" starts one process unless MPI is installed.
    res = subprocess.run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "octgen.cli.main",
                          "generate", "molecule", "--out", str(out), *flags],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "(2 processes)" in res.stdout
    assert main(["generate", "molecule", "--out", str(single), *flags]) == 0
    assert (out / "molecules.sdf").read_text() == (single / "molecules.sdf").read_text()
    assert [r["index"] for r in _manifest(out)] == list(range(7))
    _no_leftovers(out)
