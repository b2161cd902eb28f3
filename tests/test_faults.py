"""Faults: a full disk while writing, damaged checkpoint and tokenizer folders, and a
training run killed with SIGKILL, then resumed.

Nothing finished may be lost, nothing half-written may be left, and every damaged
file is named in one line.
"""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from safetensors.torch import load_file

from octgen.errors import InputError
from octgen.export.atomic import atomic_path
from octgen.pipeline.pipeline import load_pipeline
from octgen.tokenize.molecule import MoleculeTokenizer
from octgen.tokenize.shape_vqvae import load_tokenizer
from octgen.weights import check_safetensors
from helpers import run_cli as _run

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- full disk

def _full_disk(written: bytes = b"partial data"):
    """A write that puts some bytes on disk, then fails as a full disk does."""
    def fail(target, *args, **kwargs):
        if hasattr(target, "write"):
            target.write(written)
        else:
            Path(target).write_bytes(written)
        raise OSError(errno.ENOSPC, "No space left on device")
    return fail


def test_atomic_path_on_full_disk_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(OSError) as e:
        with atomic_path(target) as tmp:
            _full_disk()(tmp)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)  # names the target, not the temp
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"old results")
    with pytest.raises(OSError):
        with atomic_path(target) as tmp:
            _full_disk()(tmp)
    assert target.read_bytes() == b"old results" and list(tmp_path.iterdir()) == [target]


@pytest.fixture
def sphere(tmp_path):
    path = tmp_path / "in" / "sphere.obj"
    path.parent.mkdir()
    trimesh.creation.icosphere(2).export(path)
    return path


def test_cli_full_disk_is_one_line_and_leaves_no_file(tmp_path, sphere, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    # octgen tokenize: the token file writer fails mid-file.
    monkeypatch.setattr(np, "savez_compressed", _full_disk())
    code, _, err = _run(capsys, "tokenize", sphere, "--depth", 4, "--out", out / "t.npz")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("octgen: error: ") and "no space left on device" in err and "t.npz" in err
    assert list(out.iterdir()) == []
    monkeypatch.undo()
    # octgen decode: the mesh exporter fails mid-file; an older result there is kept as it was.
    assert _run(capsys, "tokenize", sphere, "--depth", 4, "--out", out / "t.npz")[0] == 0
    (out / "cells.ply").write_bytes(b"older result")
    monkeypatch.setattr(trimesh.Trimesh, "export", lambda self, path, **kw: _full_disk()(path))
    code, _, err = _run(capsys, "decode", out / "t.npz", "--out", out / "cells.ply")
    assert code == 1 and err.count("\n") == 1 and "no space left" in err and "cells.ply" in err
    assert sorted(p.name for p in out.iterdir()) == ["cells.ply", "t.npz"]
    assert (out / "cells.ply").read_bytes() == b"older result"


def test_molecule_writers_on_full_disk(tmp_path, monkeypatch):
    from octgen.data.molecules import Molecule, write_sdf, write_xyz

    mol = Molecule(["C", "O"], [[0, 0, 0], [1.2, 0, 0]], "co")
    monkeypatch.setattr(Path, "write_text", lambda self, text, **kw: _full_disk()(self))
    for writer, name in ((write_sdf, "m.sdf"), (write_xyz, "m.xyz")):
        with pytest.raises(OSError, match="No space left"):
            writer([mol], tmp_path / name)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- damaged model folders

def _damage(src: Path, dst: Path, rel: str, how: str) -> Path:
    shutil.copytree(src, dst)
    f = dst / rel
    if how == "missing":
        f.unlink()
    elif how == "truncated":
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif how == "garbage":
        f.write_bytes(b"\x00\x01garbage{")
    elif how == "not an object":
        f.write_text("[1, 2, 3]")
    elif how == "padded":
        f.write_bytes(f.read_bytes() + b"\x00" * 16)
    return dst


SHAPE_CKPT = ROOT / "checkpoints" / "shapes-xs"
MOL_CKPT = ROOT / "checkpoints" / "qm9-xs"
WEIGHTS = "diffusion_pytorch_model.safetensors"
DAMAGE = [(MOL_CKPT, rel, how) for rel in ("transformer/" + WEIGHTS,) for how in ("missing", "truncated", "garbage")] + \
    [(MOL_CKPT, rel, how) for rel in ("transformer/config.json", "tokenizer/config.json", "pipeline.json")
     for how in ("missing", "garbage", "not an object")] + \
    [(SHAPE_CKPT, rel, how) for rel in ("transformer/" + WEIGHTS, "tokenizer/" + WEIGHTS, "conditioner/model.safetensors")
     for how in ("missing", "truncated", "garbage", "padded")] + \
    [(SHAPE_CKPT, rel, how) for rel in ("transformer/config.json", "tokenizer/config.json", "conditioner/config.json")
     for how in ("garbage", "not an object")]


@pytest.mark.parametrize("src,rel,how", DAMAGE, ids=[f"{s.name}/{r}-{h}" for s, r, h in DAMAGE])
def test_damaged_checkpoint_names_the_file(src, rel, how, tmp_path, capsys):
    ckpt = _damage(src, tmp_path / "ckpt", rel, how)
    named = rel  # the message names the damaged file, relative to the checkpoint folder
    with pytest.raises(InputError) as e:
        load_pipeline(ckpt)
    assert named in str(e.value) and "\n" not in str(e.value), str(e.value)
    out = tmp_path / "out"
    argv = ["generate", "molecule", "--num", "1"] if src == MOL_CKPT else ["generate", "shape"]
    code, _, err = _run(capsys, *argv, "--checkpoint", ckpt, "--out", out, "--steps", 1)
    assert code == 2 and err.count("\n") == 1 and named in err and "Traceback" not in err, err
    assert not out.exists()


def test_damaged_tokenizer_folders(tmp_path):
    src = ROOT / "tokenizers" / "shape-vqvae-d6t4k16"
    for how in ("missing", "truncated", "garbage", "padded"):
        tok = _damage(src, tmp_path / how, WEIGHTS, how)
        with pytest.raises(InputError, match=f"{how}/{WEIGHTS}"):
            load_tokenizer(str(tok))
    tok = _damage(src, tmp_path / "cfg", "config.json", "garbage")
    with pytest.raises(InputError, match="config.json: corrupt config"):
        load_tokenizer(str(tok))
    mol = tmp_path / "mol"
    MoleculeTokenizer().save_pretrained(mol)
    for text, fragment in (("{", "not JSON"), ("[]", "JSON object"), ('{"_class_name": "MoleculeTokenizer", '
                                                                      '"depth": "six"}', "corrupt molecule")):
        (mol / "config.json").write_text(text)
        with pytest.raises(InputError, match=fragment):
            MoleculeTokenizer.from_pretrained(mol)


def test_safetensors_check_accepts_every_shipped_file():
    files = sorted(ROOT.glob("checkpoints/**/*.safetensors")) + sorted(ROOT.glob("tokenizers/**/*.safetensors"))
    assert len(files) >= 5
    for f in files:
        check_safetensors(f)


def test_weights_never_fall_back_to_pickle(tmp_path):
    """A folder with a pickled .bin instead of safetensors is refused, never unpickled."""
    ckpt = _damage(MOL_CKPT, tmp_path / "ckpt", "transformer/" + WEIGHTS, "missing")
    torch.save({"x": torch.zeros(1)}, ckpt / "transformer" / "diffusion_pytorch_model.bin")
    with pytest.raises(InputError, match=f"transformer/{WEIGHTS}: missing"):
        load_pipeline(ckpt)


# --------------------------------------------------------------------------- killed training

def _train_config(tmp_path, name, max_steps):
    cfg = {"output_dir": str(tmp_path / name), "dataset": "synthetic", "model_size": "tiny", "batch_size": 8,
           "max_steps": max_steps, "save_every": 2, "log_every": 1, "warmup_steps": 1, "num_threads": 1,
           "synthetic": {"num": 4, "points": 5, "depth": 3, "payload_vocab_sizes": [3, 4]},
           "shard_dir": str(tmp_path / "shards"), "keep_checkpoints": 2}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(cfg))
    return path


def _octgen(*args) -> list[str]:
    return [sys.executable, "-c", "import sys; from octgen.cli.main import main; sys.exit(main())", *map(str, args)]


def test_training_killed_mid_way_resumes_at_the_same_step(tmp_path):
    """SIGKILL an ``octgen train`` process after its first saved state; ``--resume``
    continues from the last complete state and ends with the same weights as a run
    that was never interrupted."""
    steps = 24
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = subprocess.run(_octgen("train", _train_config(tmp_path, "straight", steps)), env=env,
                              capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]

    killed_cfg = _train_config(tmp_path, "killed", steps)
    ckpts = tmp_path / "killed" / "checkpoints"
    proc = subprocess.Popen(_octgen("train", killed_cfg), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (ckpts / "step_00000002").is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved = sorted(p.name for p in ckpts.iterdir())
    complete = [s for s in saved if s[5:].isdigit()]
    assert complete and complete[-1] < f"step_{steps:08d}", saved  # killed mid-way, after a state was saved
    # Every complete state is whole: its weights file passes the safetensors check.
    for s in complete:
        check_safetensors(ckpts / s / "model.safetensors")

    resumed = subprocess.run(_octgen("train", killed_cfg, "--resume"), env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from {ckpts / complete[-1]} at step {int(complete[-1][5:])}" in resumed.stdout + resumed.stderr
    a = load_file(str(tmp_path / "straight" / "checkpoints" / f"step_{steps:08d}" / "model.safetensors"))
    b = load_file(str(ckpts / f"step_{steps:08d}" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not [p for p in ckpts.iterdir() if not p.name[5:].isdigit()]  # no .partial left behind


def test_resume_ignores_a_state_cut_short_while_saving(tmp_path):
    """A ``step_N.partial`` folder (a kill during save_state) is never resumed from."""
    from octgen.train.config import TrainConfig
    from octgen.train.trainer import train

    cfg = TrainConfig.from_file(_train_config(tmp_path, "run", 4))
    train(cfg, progress=False, stop_at=2)
    ckpts = tmp_path / "run" / "checkpoints"
    shutil.copytree(ckpts / "step_00000002", ckpts / "step_00000004.partial")
    (ckpts / "step_00000004.partial" / "model.safetensors").write_bytes(b"cut")
    result = train(cfg, resume=True, progress=False)
    assert result["step"] == 4
    assert sorted(p.name for p in ckpts.iterdir()) == ["step_00000002", "step_00000004"]
