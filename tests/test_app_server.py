"""The app served on loopback, driven through ``gradio_client`` and raw HTTP: every
named endpoint, bad values getting the app's own message, no path traversal, 20
concurrent sessions, and no temporary file left behind."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import trimesh
from helpers import free_port, start_app, stop_app

ROOT = Path(__file__).resolve().parents[1]
LOAD_SESSIONS = 20
LOAD_SECONDS = 20.0


def _rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its children (KiB), from /proc."""
    total = 0
    for p in [pid] + [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``python app.py`` on a free loopback port (GRADIO_SERVER_PORT), its own temp root."""
    from octgen.modality.shapes import make_untrained_shape_pipeline

    tmp = tmp_path_factory.mktemp("app-server")
    stale = tmp / "octgen-app" / "pid999999999"  # a folder left by a process that no longer runs
    stale.mkdir(parents=True)
    (stale / "left-over.glb").write_bytes(b"x")
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "OCTGEN_APP_TMP": str(tmp / "octgen-app"),
           "OCTGEN_SHAPE_CHECKPOINT": str(make_untrained_shape_pipeline(tmp / "shape-pipeline")),
           "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_HEARTBEAT_INTERVAL": "0.5",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.pop("GRADIO_SERVER_NAME", None)
    proc, url = start_app(env, tmp / "server.log", cwd=tmp)
    yield {"url": url, "port": port, "proc": proc, "tmp": tmp, "work": tmp / "octgen-app" / f"pid{proc.pid}",
           "log": tmp / "server.log", "stale": stale}
    stop_app(proc, 180)


def _client(server):
    from gradio_client import Client

    return Client(server["url"], verbose=False, download_files=False)


def _app_error(fn, *args, **kwargs) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses (hex, as in /proc/net/tcp*) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_serves_on_loopback_only_and_removed_stale_folders(server):
    # Bound to 127.0.0.1 (0100007F little-endian), not 0.0.0.0 or an external address.
    assert _listening_addresses(server["port"]) == {"0100007F"}
    assert not server["stale"].exists()


def test_every_endpoint_and_integer_types(server):
    c = _client(server)
    info = c.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/generate_shape", "/export_shape", "/generate_molecules", "/show_molecule", "/view_molecules",
            "/explore_octree"} <= set(info)
    types = {p["parameter_name"]: p["python_type"]["type"] for p in info["/generate_molecules"]["parameters"]}
    assert types["num"] == "int" and types["seed"] == "int"
    assert all(not r["label"].startswith("value_") for e in info.values() for r in e["returns"])

    job = c.submit("Prompt", "a mug with a handle", None, 3, True, 2.0, 2, 1.0, api_name="/generate_shape")
    outputs = job.result() and job.outputs()
    assert len(outputs) >= 2 and outputs[0][2].startswith("Coarse preview")  # previews streamed before the mesh
    glb, seed, summary, timings = outputs[-1]
    assert isinstance(seed, int) and f"seed {seed}" in summary and timings["total"] > 0
    for fmt in ("OBJ", "PLY", "STL"):
        out = c.predict(fmt, api_name="/export_shape")
        assert out["path"].endswith(fmt.lower())
        assert len(trimesh.load(out["path"], force="mesh").faces) > 0

    glb, table, sdf, summary = c.predict("qm9-xs", 3, 0, 1.0, api_name="/generate_molecules")
    assert len(table["data"]) == 3
    path, caption = c.predict(2, api_name="/show_molecule")
    assert path["path"].endswith("molecule_2.glb") and caption.startswith("Molecule 2:")

    from gradio_client import handle_file

    view = c.predict(handle_file(str(ROOT / "examples" / "molecules" / "caffeine.sdf")), 0,
                     api_name="/view_molecules")
    assert "C8H10N4O2" in view[2]
    explored = c.predict(handle_file(str(ROOT / "examples" / "meshes" / "torus.obj")), 4,
                         api_name="/explore_octree")
    assert [row[0] for row in explored[1]["data"]] == [0, 1, 2, 3, 4]
    c.close()


def test_bad_api_values_get_the_apps_own_message(server, tmp_path):
    from gradio_client import handle_file

    c = _client(server)
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not a picture")
    sketch = {"background": None, "layers": [], "composite": handle_file(str(not_image))}
    cases = [
        (("Sketch", "", sketch, 0, False, 3.0, 2, 1.0), "/generate_shape", "notes.png: not a readable image"),
        (("Prompt", "", None, 0, False, 3.0, 2, 1.0), "/generate_shape", "prompt is empty"),
        (("Prompt", "a mug", None, "x", False, 3.0, 2, 1.0), "/generate_shape", "seed"),
        (("Prompt", "a mug", None, 0, False, 99, 2, 1.0), "/generate_shape", "guidance"),
        (("Text", "a mug", None, 0, False, 3.0, 2, 1.0), "/generate_shape", "condition"),
        (("OBJ",), "/export_shape", "Generate a shape first"),
        (("qm9-xs", 0, 0, 1.0), "/generate_molecules", "number of molecules"),
        (("qm9-xs", 2.5, 0, 1.0), "/generate_molecules", "number of molecules"),
        (("qm9-xs", 2, -3, 1.0), "/generate_molecules", "seed"),
        ((0,), "/show_molecule", "Generate molecules first"),
        ((handle_file(str(not_image)), 0), "/view_molecules", "unsupported molecule format"),
        ((handle_file(str(not_image)), 3), "/explore_octree", "notes.png"),
        ((None, 3), "/explore_octree", "Upload a mesh first"),
    ]
    for args, endpoint, match in cases:
        try:
            message = _app_error(c.predict, *args, api_name=endpoint)
        except pytest.fail.Exception:
            raise AssertionError(f"{endpoint}{args}: no error")
        assert match in message, (endpoint, args, message)
        assert "has raised an exception" not in message and "\n" not in message
    c.close()
    log = server["log"].read_text()
    assert "Traceback" not in log, log[-3000:]
    assert "user error in generate_shape: The prompt is empty" in log


def test_no_path_traversal_through_any_file_endpoint(server):
    """Ask for /etc/passwd through every file-carrying input and the file route."""
    base = server["url"].rstrip("/")
    passwd = {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}, "orig_name": "passwd.sdf"}
    calls = {
        "generate_shape": ["Sketch", "", {"background": None, "layers": [], "composite": passwd}, 0, False, 3.0, 2,
                           1.0],
        "view_molecules": [passwd, 0],
        "explore_octree": [passwd, 3],
    }
    for name, data in calls.items():
        r = httpx.post(f"{base}/gradio_api/call/{name}", json={"data": data}, timeout=30)
        assert r.status_code == 200, r.text
        event = r.json()["event_id"]
        stream = httpx.get(f"{base}/gradio_api/call/{name}/{event}", timeout=60).text
        assert "event: error" in stream and "root:x:0:0" not in stream, stream
    for route in ("/gradio_api/file=/etc/passwd", "/file=/etc/passwd", "/gradio_api/file=../../../../etc/passwd"):
        r = httpx.get(base + route, timeout=10)
        assert r.status_code in (403, 404) and "root:x:0:0" not in r.text, route
    assert "root:x:0:0" not in server["log"].read_text()


def test_uploads_over_the_limit_are_refused(server, tmp_path):
    big = tmp_path / "big.sdf"
    big.write_bytes(b"x" * (21 * 1024 * 1024))
    with open(big, "rb") as f:
        r = httpx.post(server["url"] + "gradio_api/upload", files={"files": ("big.sdf", f)}, timeout=60)
    assert r.status_code == 413 or "too large" in r.text.lower() or "size" in r.text.lower(), r.text


def test_twenty_concurrent_sessions_then_nothing_left(server):
    """20 sessions generate molecules in a loop for LOAD_SECONDS: every request is answered
    or refused by the full queue; memory stays bounded; session folders go with the sessions."""
    from gradio_client import Client

    results = {"ok": 0, "queue_full": 0, "other": []}
    lock = threading.Lock()
    stop = time.time() + LOAD_SECONDS
    peak = [_rss_kib(server["proc"].pid)]
    start_rss = peak[0]

    def session(k):
        c = Client(server["url"], verbose=False, download_files=False)
        try:
            while time.time() < stop:
                try:
                    out = c.predict("qm9-xs", 2, k, 1.0, api_name="/generate_molecules")
                    assert len(out[1]["data"]) == 2
                    with lock:
                        results["ok"] += 1
                except Exception as e:  # noqa: BLE001 - sorted below
                    with lock:
                        if "queue is full" in str(e).lower():
                            results["queue_full"] += 1
                        else:
                            results["other"].append(repr(e)[:300])
        finally:
            c.close()

    threads = [threading.Thread(target=session, args=(k,)) for k in range(LOAD_SESSIONS)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak.append(_rss_kib(server["proc"].pid))
        time.sleep(0.5)
        assert time.time() < stop + 120, "sessions did not finish"
    for t in threads:
        t.join()
    report = {"sessions": LOAD_SESSIONS, "seconds": LOAD_SECONDS, "answered": results["ok"],
              "refused_queue_full": results["queue_full"], "other_errors": len(results["other"]),
              "server_rss_start_mib": round(start_rss / 1024, 1), "server_rss_peak_mib": round(max(peak) / 1024, 1)}
    print("\nload:", json.dumps(report))
    assert not results["other"], results["other"][:3]
    assert results["ok"] >= LOAD_SESSIONS // 2
    assert max(peak) < start_rss + 2 * 1024 * 1024  # bounded: under 2 GiB more than at the start
    sessions = server["work"] / "sessions"
    deadline = time.time() + 30
    while time.time() < deadline and sessions.exists() and any(sessions.iterdir()):
        time.sleep(0.5)  # unload runs once the server notices each closed heartbeat
    assert not sessions.exists() or not any(sessions.iterdir()), list(sessions.iterdir())


def test_stopping_removes_the_process_folder(server):
    # Runs last in this module: stops the server.
    assert server["work"].is_dir()
    server["proc"].send_signal(signal.SIGTERM)
    server["proc"].wait(180)  # shutting down can take a while on a busy 2-core machine
    assert not server["work"].exists(), list(server["work"].rglob("*"))[:5]
    assert not [p for p in (server["tmp"] / "octgen-app").rglob("*")]
