"""Helpers shared by several test files: the CLI run in-process and the app served
on loopback in a subprocess."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from octgen.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv):
    """Run the CLI in-process: (exit code, stdout, stderr); argparse errors included."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(env: dict, log_path: Path, cwd=None, timeout: float = 300) -> tuple[subprocess.Popen, str]:
    """``python app.py`` with ``env`` (GRADIO_SERVER_PORT set), waiting until it answers
    HTTP 200 on loopback; returns the process and its URL. Fails the test if it
    exits or does not answer in ``timeout`` seconds (generous: a busy 2-core
    machine imports torch slowly)."""
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=cwd)
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}/"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, Path(log_path).read_text()
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f"the app did not start in {timeout:.0f} s")


def tiny_model(payload_vocab_sizes, **kw):
    """A depth-3 OctGen transformer small enough for exact float64 checks (seeded)."""
    import torch

    from octgen.model import OctGenConfig, OctGenTransformer

    torch.manual_seed(0)
    return OctGenTransformer.from_octgen_config(
        OctGenConfig(depth=3, payload_vocab_sizes=payload_vocab_sizes, dim=24, n_layers=2, n_heads=2,
                     **kw)).double().eval()


def synthetic_seqs(payload_vocab_sizes, n=3, points=6, seed=0):
    """Node sequences of ``n`` random depth-3 octrees with random payloads."""
    from octgen.model.sequence import tokens_to_nodes
    from octgen.train.data import synthetic_tokens

    return [tokens_to_nodes(t) for t in synthetic_tokens(n, points, 3, payload_vocab_sizes, seed)]


def stop_app(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM the app (it removes its folders on the way out), SIGKILL after ``timeout`` s."""
    import signal

    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
