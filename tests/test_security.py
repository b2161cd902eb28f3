"""Security: no code runs when octgen loads a file, and prompts never make file names.

The source scan walks the syntax tree of every module of ``octgen/`` and ``app.py``
(comments and strings cannot fool it) for the ways a loaded file can run code:
pickle and its relatives, ``torch.load`` without ``weights_only=True``,
``np.load(allow_pickle=True)``, ``yaml.load``, ``eval`` / ``exec``, a shell, remote
model code, and model loading that could fall back from safetensors to pickle.
"""
import ast
import json
from pathlib import Path

import pytest
import torch

from octgen.cli.main import main

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "octgen").rglob("*.py")) + [ROOT / "app.py"]
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}
# from_pretrained of these reads only JSON (our pipelines and tokenizers check and load
# safetensors themselves) or tokenizer files, never weights.
JSON_ONLY_LOADERS = {"OctGenPipeline", "MoleculeTokenizer", "ShapeConditioner", "AutoTokenizer"}


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else "<expr>"
    return None


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def unsafe_calls(source: str) -> list[str]:
    """One line per unsafe construct in ``source`` (a module's text)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [f"line {line}: import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"line {line}: from {node.module} import")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name.endswith("torch.load") and _kw(node, "weights_only") is not True:
                found.append(f"line {line}: {name} without weights_only=True")
            elif name.split(".")[-1] == "load" and name.split(".")[0] in ("np", "numpy") \
                    and _kw(node, "allow_pickle") not in (None, False):
                found.append(f"line {line}: {name}(allow_pickle=...)")
            elif name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
                found.append(f"line {line}: {name}")
            elif name in ("eval", "exec", "os.system", "os.popen"):
                found.append(f"line {line}: {name}()")
            elif _kw(node, "shell") not in (None, False):
                found.append(f"line {line}: {name}(shell=...)")
            elif _kw(node, "trust_remote_code") not in (None, False):
                found.append(f"line {line}: {name}(trust_remote_code=...)")
            elif name.endswith(".from_pretrained") and name.split(".")[0] not in JSON_ONLY_LOADERS \
                    and _kw(node, "use_safetensors") is not True:
                found.append(f"line {line}: {name} without use_safetensors=True")
    return found


def test_scanner_catches_what_it_looks_for():
    bad = ("import pickle\nfrom dill import loads\nimport torch, numpy as np, yaml\ntorch.load(f)\n"
           "torch.load(f, weights_only=False)\nnp.load(f, allow_pickle=True)\nyaml.load(s)\neval('1')\n"
           "subprocess.run(c, shell=True)\nAutoModel.from_pretrained(p, trust_remote_code=True)\n"
           "OctGenTransformer.from_pretrained(p)\n")
    flagged = {int(f.split()[1].rstrip(":")) for f in unsafe_calls(bad)}
    assert flagged == {1, 2, *range(4, 12)}  # every line but the plain import
    good = ("import torch, numpy as np, yaml\ntorch.load(f, weights_only=True)\nnp.load(f)\n"
            "np.load(f, allow_pickle=False)\nyaml.safe_load(s)\nmodel.eval()\n# eval(x) pickle\n"
            "s = 'torch.load(f)'\nOctGenPipeline.from_pretrained(p)\nAutoModel.from_pretrained(p, use_safetensors=True)\n")
    assert unsafe_calls(good) == []


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_no_unsafe_loading_in_source(path):
    assert unsafe_calls(path.read_text()) == []


def test_shipped_weights_are_safetensors_only():
    """No pickled weight files ship in checkpoints/ or tokenizers/."""
    for folder in ("checkpoints", "tokenizers"):
        for f in (ROOT / folder).rglob("*"):
            assert f.suffix not in (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"), f


# --------------------------------------------------------------------------- file names

NASTY_PROMPTS = ["../../../etc/passwd", "a/b\\c:*?\"<>|", "CON", ".hidden", "-rf --out /tmp", "椅子",
                 "🪑 a chair", "x" * 400]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from octgen.modality.shapes import make_untrained_shape_pipeline

    return make_untrained_shape_pipeline(tmp_path_factory.mktemp("ckpt") / "shapes")


def test_prompts_never_become_file_names(ckpt, tmp_path, capsys):
    """Files are named by item index only; the prompt goes into the manifest as a JSON string."""
    work = tmp_path / "work"
    work.mkdir()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(NASTY_PROMPTS) + "\n", encoding="utf-8")
    out = work / "out"
    code = main(["generate", "shape", "--prompts", str(prompts), "--checkpoint", str(ckpt), "--out", str(out),
                 "--steps", "1", "--format", "obj"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert [p.name for p in work.iterdir()] == ["out"]  # nothing written beside or above --out
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["prompt"] for r in rows] == NASTY_PROMPTS
    names = sorted(p.name for p in out.iterdir())
    expected = sorted(["manifest.jsonl"] + [f for r in rows for f in r["files"]])
    assert names == expected
    assert all(n == "manifest.jsonl" or (n.startswith("shape_") and n[6:10].isdigit() and n.endswith(".obj"))
               for n in names)
    assert not (tmp_path / "etc").exists()
