"""The README's two commands and CI agree, and its CLI examples parse."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_two_commands_and_ci_runs_the_second():
    text = (ROOT / "README.md").read_text()
    first_block = text.index("```bash")
    assert text[:first_block].strip() == "# octgen"
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert cmds[0].endswith("app.py") and "pytest" in cmds[1]
    ci_lines = [l for l in (ROOT / ".ci/run").read_text().splitlines() if l and not l.startswith(("#", "set ", "cd "))]
    assert ci_lines == [cmds[1]]


def test_weight_folders_are_not_packages():
    for folder in ("tokenizers", "checkpoints"):
        assert not (ROOT / folder / "__init__.py").exists()
