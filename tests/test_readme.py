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
    assert ci_lines == [cmds[1]]


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
    assert shown == {"tokenize", "decode", "eval", "generate", "train", "bench"}


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


def test_weight_folders_are_not_packages():
    for folder in ("tokenizers", "checkpoints"):
        assert not (ROOT / folder / "__init__.py").exists()
