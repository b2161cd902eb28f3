"""The app in a real browser: Debian's chromium driven by Playwright (no browser
download), against the app on loopback. Type a prompt, generate, wait for the 3D
view; switch to molecules, generate, select the third molecule. Screenshots go to
``artifacts/browser/`` (gitignored)."""
import os
import shutil
import time
from pathlib import Path

import pytest
from helpers import free_port, start_app, stop_app

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and os.path.exists(p)), None)

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                     "(pip install -r requirements.txt)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no system chromium (apt-get install -y chromium); "
                                                          ".ci/run installs it")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser-app")
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "OCTGEN_APP_TMP": str(tmp / "octgen-app"),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("OCTGEN_SHAPE_CHECKPOINT", None)  # the shipped shapes-xs
    proc, url = start_app(env, tmp / "server.log")
    yield url
    stop_app(proc, 60)


def _wait_drawn(viewer, timeout_s: float = 90.0, min_pixels: int = 400) -> int:
    """Poll the viewer's pixels until it shows something (a software-GL render can
    take seconds on a busy CPU); -> the number of non-background pixels."""
    import io

    import numpy as np
    from PIL import Image

    deadline = time.time() + timeout_s
    while True:
        rgb = np.asarray(Image.open(io.BytesIO(viewer.screenshot())).convert("RGB")).astype(int)
        drawn = int((np.abs(rgb - 255).sum(axis=2) > 60).sum())
        if drawn >= min_pixels or time.time() > deadline:
            return drawn
        time.sleep(1.0)


def test_prompt_to_shape_then_third_molecule(app_url):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app_url, wait_until="load")
        generate = page.locator("#shape-generate")
        generate.wait_for(timeout=60_000)
        # Generate in view without scrolling (1400x1000).
        box = generate.bounding_box()
        assert box is not None and box["y"] + box["height"] <= 1000
        page.locator("#shape-prompt textarea").fill("a round table with a central pedestal")
        generate.click()
        summary = page.locator("#shape-summary")
        summary.get_by_text("faces").wait_for(timeout=120_000)
        page.locator("#shape-viewer canvas").wait_for(timeout=30_000)
        drawn = _wait_drawn(page.locator("#shape-viewer canvas"))
        page.screenshot(path=str(ARTIFACTS / "1-shape.png"))
        assert drawn >= 400, "the 3D view stayed empty"
        assert "watertight" in summary.inner_text()

        page.get_by_role("tab", name="Generate molecules").click()
        page.locator("#molecule-generate").click()
        page.locator("#molecule-summary").get_by_text("valid").wait_for(timeout=120_000)
        third = page.locator('#molecule-table [data-testid="cell-2-1"]')  # row 2, formula column
        third.click()
        caption = page.locator("#molecule-caption")
        caption.get_by_text("Molecule 2:").wait_for(timeout=60_000)
        drawn = _wait_drawn(page.locator("#molecule-viewer canvas"))
        page.screenshot(path=str(ARTIFACTS / "2-third-molecule.png"))
        formula = third.inner_text().strip()
        assert formula and f"Molecule 2: {formula}," in caption.inner_text()
        assert drawn >= 400, "the molecule view stayed empty"
        browser.close()
