"""Open every chapter of the built book in headless Chromium, as a reader would, offline.

Per page of ``_toc.yml``: no console error, no uncaught exception, no failed request and no request
to another host; every image (figures and widget frames) present and decoded; every widget rendered.
Per frame widget (``salience_lib.book.frame_slider`` / ``frame_dropdown``): moving the control
shows another image, with no kernel. The landing page shows its figure and the findings pasted from
the selection chapter; the selection chapter's explorer section shows its precomputed frames (the
live explorer needs a kernel and is not on the page). Screenshots go to ``_build/screenshots/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import toc_documents
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Locator, Page, Request, Response, Route

DOCUMENTS = toc_documents()
# Pages whose source builds a static frame widget (book.frame_slider / book.frame_dropdown).
WIDGET_DOCUMENTS = [d for d in DOCUMENTS if "book.frame_" in (Path(__file__).parents[1] / f"{d}.md").read_text()]
LOCAL_HOSTS = {"127.0.0.1"}
TIMEOUT_MS = 60_000

VIEW_SCRIPTS = 'script[type="application/vnd.jupyter.widget-view+json"]'
ALL_WIDGETS_RENDERED = """() => {
    const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
    const rendered = [...document.querySelectorAll('.widget-subarea')].filter(a => a.children.length > 0).length;
    return rendered >= views;
}"""
BROKEN_IMAGES = """() => [...document.querySelectorAll('main img')]
    .filter(img => !(img.complete && img.naturalWidth > 0))
    .map(img => img.currentSrc || img.src || img.outerHTML.slice(0, 120))"""
# A short fingerprint of the bytes of the image a frame widget shows (its src is a blob: URL).
SHOWN_IMAGE = """async (viewer) => {
    const img = viewer.querySelector('img');
    if (!img || !img.complete || img.naturalWidth === 0) return null;
    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    let hash = 0;
    for (const b of bytes) hash = (hash * 31 + b) >>> 0;
    return `${bytes.length}:${hash}`;
}"""


@dataclass
class Visit:
    """An open page and everything that went wrong while it loaded and was used."""

    page: Page
    problems: list[str] = field(default_factory=list)


def _slug(document: str) -> str:
    return document.replace("/", "_")


def _open(context: BrowserContext, url: str) -> Visit:
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    visit = Visit(page)

    def route(route: Route) -> None:
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            visit.problems.append(f"request to another host (refused): {route.request.url}")
            route.abort()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            visit.problems.append(f"console error: {message.text} at {message.location.get('url')}")

    def response(resp: Response) -> None:
        if resp.status >= 400:
            visit.problems.append(f"HTTP {resp.status}: {resp.url}")

    def failed(request: Request) -> None:
        visit.problems.append(f"request failed: {request.url} ({request.failure})")

    page.route("**/*", route)
    page.on("console", console)
    page.on("pageerror", lambda error: visit.problems.append(f"uncaught exception: {error}"))
    page.on("response", response)
    page.on("requestfailed", failed)
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    page.wait_for_function(ALL_WIDGETS_RENDERED)
    return visit


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context (no cache, no storage) per test."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()


def test_toc_lists_pages() -> None:
    assert DOCUMENTS, "_toc.yml lists no page"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_page_loads_offline_without_errors(context: BrowserContext, site_url: str, screenshots: Path, document: str):
    visit = _open(context, f"{site_url}/{document}.html")
    page = visit.page
    assert page.locator("main h1").count() >= 1, f"{document}: no title rendered"
    broken = page.evaluate(BROKEN_IMAGES)
    views = page.locator(VIEW_SCRIPTS).count()
    rendered = page.locator(".widget-subarea > *").count()
    page.screenshot(path=screenshots / f"{_slug(document)}.png", full_page=True)
    assert not broken, f"{document}: images missing or not decoded: {broken}"
    assert rendered >= views, f"{document}: {views} widgets in the page, {rendered} rendered"
    assert not visit.problems, f"{document}:\n" + "\n".join(visit.problems)


def _move(viewer: Locator, page: Page) -> str:
    """Operate the viewer's control one step; returns what was done."""
    select = viewer.locator("select")
    if select.count():
        options = select.locator("option").count()
        assert options >= 2, "a frame dropdown needs at least two options"
        select.select_option(index=options - 1)
        return f"dropdown -> option {options}"
    handle = viewer.locator(".noUi-handle")
    assert handle.count() == 1, "a frame widget has neither a dropdown nor one slider handle"
    handle.focus()
    page.keyboard.press("ArrowRight")
    return "slider -> one step right"


@pytest.mark.parametrize("document", WIDGET_DOCUMENTS)
def test_frame_widgets_switch_frames_without_a_kernel(
    context: BrowserContext, site_url: str, screenshots: Path, document: str
):
    visit = _open(context, f"{site_url}/{document}.html")
    page = visit.page
    viewers = page.locator(".salience-frames")
    assert viewers.count() > 0, f"{document} builds a frame widget in its source but the page shows none"
    for k in range(viewers.count()):
        viewer = viewers.nth(k)
        viewer.scroll_into_view_if_needed()
        before = viewer.evaluate(SHOWN_IMAGE)
        assert before is not None, f"{document}: frame widget {k + 1} shows no decoded image"
        action = _move(viewer, page)
        after = None
        for _ in range(100):  # the browser re-renders the frame asynchronously: poll for up to 10 s
            after = viewer.evaluate(SHOWN_IMAGE)
            if after is not None and after != before:
                break
            page.wait_for_timeout(100)
        viewer.screenshot(path=screenshots / f"{_slug(document)}-widget{k + 1}-moved.png")
        assert after is not None, f"{document}: frame widget {k + 1} shows no image after {action}"
        assert after != before, f"{document}: frame widget {k + 1} shows the same image after {action}"
    assert not visit.problems, f"{document}:\n" + "\n".join(visit.problems)


def test_the_book_has_a_frame_widget() -> None:
    """The widget check above must not pass vacuously: some chapter builds a frame widget."""
    assert WIDGET_DOCUMENTS, "no chapter source calls book.frame_slider or book.frame_dropdown"


# The landing page: its figure of the two recipes' maps, and the findings pasted from the selection chapter.
LANDING = DOCUMENTS[0]  # the root of _toc.yml (book/intro)
NUMBER = r"^-?\d+(\.\d+)?( px)?$"
DECODED = "img => img.complete && img.naturalWidth > 0"


def test_landing_page_shows_the_figure_and_the_findings(
    context: BrowserContext, site_url: str, screenshots: Path
) -> None:
    visit = _open(context, f"{site_url}/{LANDING}.html")
    page = visit.page
    figure = page.locator("figure#fig-intro-faces img")
    assert figure.count() == 1, f"{LANDING}: no figure fig-intro-faces with an image"
    figure.scroll_into_view_if_needed()
    assert figure.evaluate(DECODED), f"{LANDING}: the figure's image did not load"
    findings = page.locator("section#what-the-measures-found")
    assert findings.count() == 1, f"{LANDING}: no section 'What the measures found'"
    rows = findings.locator("table tbody tr")
    assert rows.count() == 5, f"{LANDING}: the findings table has {rows.count()} rows, not one per measure"
    for k in range(rows.count()):
        pasted = rows.nth(k).locator(".pasted-text")
        texts = [pasted.nth(i).inner_text().strip() for i in range(pasted.count())]
        assert len(texts) == 7, f"{LANDING}: findings row {k + 1} shows {texts}, not 2 × (mean, CI) and a p"
        assert all(re.match(NUMBER, text) for text in texts), f"{LANDING}: findings row {k + 1}: {texts}"
    page.screenshot(path=screenshots / f"{_slug(LANDING)}-landing.png", full_page=True)
    assert not visit.problems, f"{LANDING}:\n" + "\n".join(visit.problems)


# The selection chapter's live explorer: left out of the static page, whose precomputed frames stand in for it.
SELECTION = "book/selection"


def test_selection_page_has_the_explorer_section_with_static_frames(
    context: BrowserContext, site_url: str, screenshots: Path
) -> None:
    assert SELECTION in DOCUMENTS, f"{SELECTION} (the chapter with the explorer section) is not in _toc.yml"
    visit = _open(context, f"{site_url}/{SELECTION}.html")
    page = visit.page
    section = page.locator("section#explore-a-model-live")
    assert section.count() == 1, f"{SELECTION}: no section 'Explore a model live'"
    assert "kernel" in section.inner_text(), f"{SELECTION}: the section does not say that a kernel makes it live"
    assert page.locator(".salience-explorer").count() == 0, f"{SELECTION}: the live explorer is on the static page"
    viewer = section.locator(".salience-frames")
    assert viewer.count() == 1, f"{SELECTION}: the explorer section has {viewer.count()} frame widgets, not one"
    viewer.scroll_into_view_if_needed()
    image = viewer.locator("img").first
    assert image.evaluate(DECODED), f"{SELECTION}: the explorer's static frame is not decoded"
    options = viewer.locator("select option")
    assert options.count() >= 2, f"{SELECTION}: the explorer's frames offer {options.count()} choices"
    viewer.screenshot(path=screenshots / f"{_slug(SELECTION)}-explorer.png")
    assert not visit.problems, f"{SELECTION}:\n" + "\n".join(visit.problems)
