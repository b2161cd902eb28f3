"""``octgen bench octree --against-ocnn``: one readable line without ocnn, a small run with it."""
import importlib.util
import json

import pytest

from octgen.bench import octree as bench_octree
from octgen.cli.main import main


def test_against_ocnn_without_ocnn_is_one_line(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ocnn" else real(name, *a))
    out = tmp_path / "r.json"
    code = main(["bench", "octree", "--against-ocnn", "--points", "100", "--depths", "3", "--json", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "pip install --no-deps ocnn" in err
    assert not out.exists()


@pytest.mark.skipif(importlib.util.find_spec("ocnn") is None, reason="ocnn is installed for the benchmark only")
def test_against_ocnn_small_run(capsys, tmp_path):
    out = tmp_path / "r.json"
    code = main(["bench", "octree", "--against-ocnn", "--points", "3000", "--depths", "4", "6",
                 "--repeats", "2", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert [(r["set"], r["depth"]) for r in result["rows"]] == [("cube", 4), ("cube", 6), ("surface", 4), ("surface", 6)]
    for r in result["rows"]:
        assert r["same_nodes_per_depth"]  # both libraries built the same octree
        assert len(r["octgen_build_serialise"]["runs_ms"]) == 2 and r["ratio_best"] > 0
        assert isinstance(r["ocnn_build_all_neighbours"], dict)


def test_alternate_runs_every_function_in_both_orders():
    calls = []
    times = bench_octree._alternate({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then a b / b a / a b
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
