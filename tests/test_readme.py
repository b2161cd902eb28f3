"""The README's two commands and CI agree, every line of its command-line block
parses with the real ``octgen`` parser, and its Python example runs."""
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from octgen.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def _readme_commands():
    return [line for line in _blocks("bash")[0].splitlines() if line.strip()]


def test_readme_opens_with_two_commands_and_ci_runs_the_second():
    first_block = README.index("```bash")
    assert README[:first_block].strip() == "# octgen"
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert cmds[0].endswith("app.py") and "pytest" in cmds[1]
    ci_lines = [l for l in (ROOT / ".ci/run").read_text().splitlines() if l and not l.startswith(("#", "set ", "cd "))]
    # .ci/run may first install the system browser the browser test drives; then it runs the README's command.
    assert ci_lines[-1] == cmds[1]
    assert all("chromium" in l or l.strip() in ("fi",) or l.startswith("if ") for l in ci_lines[:-1]), ci_lines


def _command_line_examples():
    """argv lists of the block under '## Command line' (comments dropped)."""
    section = README[README.index("## Command line"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [words for words in lines if words]


def test_every_command_line_example_parses():
    examples = _command_line_examples()
    assert len(examples) >= 15 and all(words[0] == "octgen" for words in examples)
    parsed = 0
    for words in examples:
        argv = words[1:]
        parser = build_parser(argv)
        if "--help" in argv:
            with pytest.raises(SystemExit) as info:  # prints the help and exits 0
                parser.parse_args(argv)
            assert info.value.code == 0, words
            continue
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # argparse rejected the line
            pytest.fail(f"README example does not parse ({e.code}): {' '.join(words)}")
        assert callable(args.func), words
        parsed += 1
    assert parsed == len(examples) - 1
    # Every subcommand the parser has is shown at least once.
    shown = {words[1] for words in examples if len(words) > 1 and not words[1].startswith("-")}
    import argparse

    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert shown == set(sub.choices) and {"tokenize", "decode", "eval", "generate", "train", "bench", "ship"} <= shown


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    """The ```python block, run as written in a folder holding the shipped
    checkpoints and a drawing.png; the mug it writes is a non-empty mesh."""
    import trimesh

    from octgen.data.shapes import ShapeDataset
    from octgen.data.sketches import render_sketch

    [code] = _blocks("python")
    (tmp_path / "checkpoints").symlink_to(ROOT / "checkpoints", target_is_directory=True)
    Image.fromarray(render_sketch(ShapeDataset("val", size=1)[0].sdf, size=128)).save(tmp_path / "drawing.png")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md python block", "exec"), namespace)
    assert len(namespace["molecules"]) == 10
    assert len(trimesh.load(tmp_path / "mug.glb", force="mesh").faces) > 0
    timings = namespace["r"].timings
    assert {"encode_condition", "sample_level_0", "decode", "marching_cubes"} <= set(timings)
    assert np.isfinite(list(timings.values())).all()
    assert "marching_cubes" in capsys.readouterr().out  # print(r.timings) ran


def _section(title):
    start = README.index(f"### {title}")
    end = README.find("\n### ", start + 1)
    return README[start:end if end > 0 else None]


def _json(rel):
    import json

    return json.loads((ROOT / rel).read_text())


def _missing(text, figures):
    return [f for f in figures if f not in text]


def test_readme_figures_come_from_the_stored_files():
    """The README's shape figures are the numbers in the JSON files beside them (a
    rerun that changes a file without the README, or the reverse, fails here)."""
    sd = {row["depth"]: row for row in _json("bench/results/shapes-data.json")["rows"]}
    ms = _json("bench/results/mesh-sdf.json")["rows"]
    assert len(ms) == 9 and all(r["reconstruction_watertight"] for r in ms)
    open_mask = [r for r in ms if r["mesh"] == "face.obj"]
    closed = [r for r in ms if r["mesh"] != "face.obj"]
    figures = [f"{sd[d]['shapes_per_s']:.1f} shapes/s" for d in (6, 7)]
    figures += [f"{sd[d]['cpu_ms_per_shape']:.1f} ms CPU per shape" for d in (6, 7)]
    figures += [f"about {sd[d]['minutes_for_20000_on_idle_cores']:.1f} min" for d in (6, 7)]
    figures += [f"{min(r['sign_agreement'] for r in ms):.2f}-{max(r['sign_agreement'] for r in ms):.2f}",
                f"{min(r['chamfer_l1'] for r in closed):.4f}-{max(r['chamfer_l1'] for r in closed):.4f}",
                f"face.obj (an open mask) {open_mask[0]['chamfer_l1']:.4f}",
                f"{min(r['sdf_seconds'] for r in ms):.1f}-{max(r['sdf_seconds'] for r in ms):.1f} s per mesh"]
    assert not _missing(_section("Shape data"), figures)

    tk = _json("tokenizers/shape-vqvae-d6t4k16/metrics.json")
    pt, ceil, real = tk["procedural_test"], tk["procedural_ceiling"], tk["real_meshes"]
    figures = [f"{pt['iou']['mean']:.3f} / {pt['iou']['median']:.3f}", f"**{pt['chamfer_l1']['mean']:.4f}**",
               f"{pt['normal_consistency']['mean']:.3f}",
               f"**{pt['decode_s']['median']:.3f}** / {pt['decode_s']['p95']:.3f} s",
               ", ".join(f"{v:.0f}" for v in pt["tokens_per_level_median"]),
               f"{pt['payload_bits_median']:,.0f} / {pt['payload_bits_p95']:,.0f}",
               f"{pt['total_bits_median']:,.0f} / {pt['total_bits_p95']:,.0f}",
               f"| {real['iou']['mean']:.3f} | {real['chamfer_l1']['mean']:.4f} | {real['normal_consistency']['mean']:.3f} |",
               f"| {ceil['iou']['mean']:.3f} | {ceil['chamfer_l1']['mean']:.4f} |"]
    assert not _missing(_section("Shape tokenizer"), figures)

    o7 = _json("tokenizers/shape-vqvae-d6t4k16-o7/metrics.json")
    pt, real = o7["procedural_test"], o7["real_meshes"]
    figures = [f"**{pt['iou']['mean']:.3f} / {pt['iou']['median']:.3f}**", f"**{pt['chamfer_l1']['mean']:.4f}**",
               f"**{pt['normal_consistency']['mean']:.3f}**",
               f"{pt['decode_s']['median']:.3f} / {pt['decode_s']['p95']:.3f} s",
               f"| {real['iou']['mean']:.3f} | {real['chamfer_l1']['mean']:.4f} | {real['normal_consistency']['mean']:.3f} |"]
    assert not _missing(_section("Shape tokenizer"), figures)

    gen = _json("checkpoints/shapes-xs/metrics.json")
    pf, dist, speed = gen["prompt_fidelity"], gen["distribution"]["mean"], gen["speed"]
    figures = [f"{100 * pf['category_accuracy']:.1f} %", f"{100 * pf['attribute_accuracy']:.1f} %",
               f"({pf['attributes_judged']} measurable", f"| {gen['sketch_fidelity']['iou_mean']:.3f} |",
               f"{100 * dist['nna']:.1f} % / {100 * dist['cov']:.1f} % / {dist['mmd']:.3f}",
               f"**{speed['wall_median_s']:.3f} s**", f"({gen['meshes']['all']['n']} meshes)"]
    assert not _missing(_section("Shape generation"), figures)

    clf = _json("checkpoints/shape-classifier/metrics.json")
    rows = [clf["val"], clf["test_sdf_voxels"], clf["test_marching_cubes_meshes_96"]]
    figures = [f"| {100 * r['category_accuracy']:.1f} % | {100 * r['attribute_accuracy_given_category']:.1f} % |"
               for r in rows]
    assert not _missing(_section("Shape classifier"), figures)


def test_weight_folders_are_not_packages():
    for folder in ("tokenizers", "checkpoints"):
        assert not (ROOT / folder / "__init__.py").exists()
