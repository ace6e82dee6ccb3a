"""The live explorer (``salience_lib.book.explore``) in a real kernel, driven from headless Chromium.

The static site has no kernel, so this test serves a one-cell notebook with Voilà (a Jupyter server
that runs the notebook and renders its widgets, live) and changes the explorer's menus in the browser:
each change must reach the kernel, which recomputes and sends back a new picture and number. Voilà
is pinned in requirements-dev.txt and `make browser-test` points ``$VOILA`` at it; elsewhere the
test runs where a ``voila`` executable is found (``$VOILA``, or on the PATH) and is skipped otherwise. The
kernel is this interpreter, so it imports this checkout's ``salience_lib``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from conftest import ROOT
from playwright.sync_api import Browser, Page

VOILA = os.environ.get("VOILA") or shutil.which("voila")
# `make browser-test` (CI) always sets $VOILA: there a missing executable is a failure, not a skip.
if os.environ.get("VOILA") and not os.access(os.environ["VOILA"], os.X_OK):
    raise RuntimeError(f"$VOILA={os.environ['VOILA']} is not an executable: install requirements-dev.txt")
pytestmark = pytest.mark.skipif(VOILA is None, reason="no voila executable: outside `make browser-test` only")

CELL = """import torch
from salience_lib import book
from tests.helpers import TinyCNN
models = {"A": TinyCNN(classes=2, seed=0).eval(), "B": TinyCNN(classes=2, seed=1).eval()}
book.explore(models, torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)))"""
# A short fingerprint of the explorer's picture (a blob: URL) and its number.
SHOWN = """async () => {
    const img = document.querySelector('.salience-explorer img');
    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    let hash = 0;
    for (const b of bytes) hash = (hash * 31 + b) >>> 0;
    return `${bytes.length}:${hash} ` + document.querySelector('.salience-explorer .widget-html-content').innerText;
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def voila_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Voilà serving the explorer notebook, with this interpreter as its kernel."""
    folder = tmp_path_factory.mktemp("live")
    kernel = folder / "jupyter" / "kernels" / "salience"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "salience", "language": "python",
        "env": {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    }))  # fmt: skip
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": CELL}
    notebook = {"cells": [cell],
                "metadata": {"kernelspec": {"name": "salience", "display_name": "salience", "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}  # fmt: skip
    (folder / "explore.ipynb").write_text(json.dumps(notebook))
    port = _free_port()
    env = os.environ | {"JUPYTER_PATH": str(folder / "jupyter")}
    log = (folder / "voila.log").open("w")
    server = subprocess.Popen(
        [VOILA, "explore.ipynb", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1"],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for _ in range(300):  # up to 30 s for the server to listen
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"voila did not start: {(folder / 'voila.log').read_text()[-2000:]}")
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _changed(page: Page, before: str) -> str:
    """What the explorer shows once it differs from ``before`` (polled for up to 30 s)."""
    for _ in range(300):
        now = page.evaluate(SHOWN)
        if now != before:
            return now
        page.wait_for_timeout(100)
    return before


def test_the_live_explorer_recomputes_in_the_kernel_on_every_change(browser: Browser, voila_url: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 1200})
    page.goto(voila_url, wait_until="load", timeout=120_000)
    page.wait_for_selector(".salience-explorer img", timeout=120_000)
    menus = page.locator(".salience-explorer select")  # image, model, salience, measure, then the parameters
    shown = page.evaluate(SHOWN)
    assert "(a) entropy" in shown
    for k, label, expect in [(3, "(c) geometric transform", "consistency c (hflip)"), (1, "B", None),
                             (2, "Grad-CAM++", None), (0, "image 3", None)]:  # fmt: skip
        menus.nth(k).select_option(label=label)
        now = _changed(page, shown)
        assert now != shown, f"choosing {label!r} changed neither the picture nor the number"
        assert expect is None or expect in now, now
        shown = now
    page.close()
