"""Run the reliability tests and write their figures to ``tests/reliability.json``.

    .venv/bin/python tests/reliability_report.py

Runs ``pytest`` on the four reliability test files (bad-input corpus, property-based
readers and tokenizers, faults, security), and records per file the test cases
passed / failed / skipped and the wall time, with the sizes of the input corpora the
tests draw from. The README's "Reliability" section quotes this file.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

FILES = ["test_bad_inputs.py", "test_fuzz_readers.py", "test_faults.py", "test_security.py"]


def main() -> int:
    import corpus
    import test_faults
    import test_fuzz_readers

    with tempfile.TemporaryDirectory() as d:
        xml = Path(d) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
               *[str(HERE / f) for f in FILES]]
        code = subprocess.run(cmd, cwd=HERE.parent, env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode
        root = ET.parse(xml).getroot()
    per_file: dict[str, dict] = {f: {"passed": 0, "failed": 0, "skipped": 0, "seconds": 0.0} for f in FILES}
    for case in root.iter("testcase"):
        name = case.get("classname", "").split(".")[-1] + ".py"
        row = per_file.setdefault(name, {"passed": 0, "failed": 0, "skipped": 0, "seconds": 0.0})
        row["seconds"] = round(row["seconds"] + float(case.get("time", 0)), 2)
        if case.find("failure") is not None or case.find("error") is not None:
            row["failed"] += 1
        elif case.find("skipped") is not None:
            row["skipped"] += 1
        else:
            row["passed"] += 1
    n = test_fuzz_readers.EXAMPLES
    report = {
        "command": "python tests/reliability_report.py",
        "pytest": " ".join(["pytest", "-q", *(f"tests/{f}" for f in FILES)]),
        "exit_code": code,
        "tests": per_file,
        "corpus": {
            "malformed_mesh_files": len(corpus.MESH_ERRORS),
            "accepted_odd_meshes": len(corpus.MESH_OK),
            "malformed_molecule_files": len(corpus.MOL_ERRORS),
            "damaged_checkpoint_folders": len(test_faults.DAMAGE),
        },
        # Upper bound: hypothesis stops early when a strategy has fewer distinct inputs.
        "property_examples_per_run": n * (len(test_fuzz_readers.MESH_SUFFIXES) + 3 + 1) + (n + 20) + n + 40 + 8,
    }
    (HERE / "reliability.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
