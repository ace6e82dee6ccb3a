"""Fixtures for the browser test of the built book: a local web server and headless Chromium.

The site in ``_build/html`` (``make book``) is served on 127.0.0.1 and opened in Debian's Chromium
(``/usr/bin/chromium``, or ``$CHROMIUM``) through playwright, which brings its own driver: nothing
is downloaded (never run ``playwright install``). Every request to another host is refused and
reported, so the test also proves that the site works offline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import print_pdf  # the same site server and table of contents as the PDF (browser_tests/ is on sys.path)
import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def toc_documents(toc: Path = ROOT / "_toc.yml") -> list[str]:
    """Every document of the table of contents (root first), as Sphinx names them (``book/data``)."""
    return print_pdf.toc_documents(toc)


@pytest.fixture(scope="session")
def site_url() -> Iterator[str]:
    """Base URL of ``_build/html`` served on a free local port."""
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no built site in {SITE}: run `make book` first")
    with print_pdf.serve(SITE) as url:
        yield url


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """The playwright driver (bundled with the Python package)."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Debian Chromium."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) or set $CHROMIUM")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Folder for the screenshots the tests take (``_build/screenshots``)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
