"""The built book as one PDF, for course packs (``make pdf``): Chromium prints every page, pypdf merges.

Every document of ``_toc.yml`` (root first) is opened in headless Debian Chromium (the browser test's
launch, offline: a local server, every other host refused), printed once MathJax has typeset the page
and every widget has rendered (a frame widget prints the frame it shows, the first), and the pages are
merged into one PDF with one bookmark per chapter. The theme prints the exercises' solutions open
(the teacher's copy); ``--no-solutions`` leaves them out (the students' copy).

Then the PDF is checked (:func:`check_pdf`): every chapter's pages are there and hold its title, every
chapter that showed images holds at least as many embedded images, no raw TeX (``\\(``, ``\\[``,
``$$``) is left in the text, and the browser found no unrendered formula. The measured numbers go
to ``<out>.json`` next to the PDF.

Usage: ``python browser_tests/print_pdf.py [--site _build/html] [--out _build/book.pdf] [--no-solutions]``.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import io
import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))  # as in browser_tests/conftest.py
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
TIMEOUT_MS = 60_000
# TeX that MathJax would have replaced: the delimiters Sphinx writes around every formula.
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{|\\frac\{")

# Resolves once MathJax 3 has typeset the page (true on pages without maths too).
MATH_TYPESET = """async () => {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) { await mj.startup.promise; }
    return true;
}"""
WIDGETS_RENDERED = """() => {
    const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
    const rendered = [...document.querySelectorAll('.widget-subarea')].filter(a => a.children.length > 0).length;
    return rendered >= views;
}"""
IMAGES_LOADED = """() => [...document.querySelectorAll('main img')]
    .every(img => img.complete && img.naturalWidth > 0)"""
# What the printed page shows: visible images (distinct sources), formulas and those left untypeset.
PAGE_FACTS = """() => {
    const visible = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
    const images = new Set([...document.querySelectorAll('main img')].filter(visible)
        .map(img => img.currentSrc || img.src));
    const math = [...document.querySelectorAll('main .math')];
    return {
        title: (document.querySelector('main h1') || {innerText: ''}).innerText.replace(/[#¶]\\s*$/, '').trim(),
        images: images.size,
        formulas: math.length,
        untypeset: math.filter(m => !m.querySelector('mjx-container')).length,
    };
}"""
# Paper cannot scroll: long code lines wrap; a figure, a code cell or a table is not cut in two (unless
# it is longer than a page).
PRINT_CSS = """@media print {
    pre { white-space: pre-wrap !important; overflow-wrap: anywhere; }
    figure, .cell_input, .cell_output img, .widget-subarea, table { break-inside: avoid; }
}"""
# The students' copy: the solutions (sphinx-exercise admonitions) are not printed at all.
NO_SOLUTIONS_CSS = "@media print { .solution { display: none !important; } }"


@dataclass
class Printed:
    """One document as printed: its name, title, number of PDF pages and what its page showed."""

    document: str
    title: str
    pages: int
    images: int
    formulas: int
    untypeset: int


def toc_documents(toc: Path) -> list[str]:
    """Every document of a Jupyter Book table of contents, root first, without suffix (``book/data``)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    found.append(node[key].removesuffix(".md").removesuffix(".ipynb"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(toc.read_text(encoding="utf-8")))
    return found


def normalise(text: str) -> str:
    """Text as compared with a title: case folded, hyphenation at line ends undone, runs of space as one."""
    text = re.sub(r"-\s*\n\s*", "-", text)
    return re.sub(r"\s+", " ", text).strip().casefold()


def raw_tex(text: str) -> list[str]:
    """Raw TeX left in extracted text (MathJax did not run), each hit with 20 characters either side."""
    return [text[max(0, m.start() - 20) : m.end() + 20].replace("\n", " ") for m in RAW_TEX.finditer(text)]


def count_images(page: Any) -> int:
    """Image XObjects drawn on a pypdf page, also inside form XObjects (Chromium nests them there)."""

    def walk(resources: Any, seen: set[int]) -> int:
        xobjects = (resources or {}).get("/XObject") if resources is not None else None
        if xobjects is None:
            return 0
        count = 0
        for ref in xobjects.get_object().values():
            key = getattr(ref, "idnum", id(ref))
            if key in seen:
                continue
            seen.add(key)
            obj = ref.get_object()
            if obj.get("/Subtype") == "/Image":
                count += 1
            elif obj.get("/Subtype") == "/Form":
                count += walk(obj.get("/Resources"), seen)
        return count

    return walk(page.get("/Resources"), set())


def check_pdf(pdf: Path | bytes, printed: Sequence[Printed]) -> list[str]:
    """Problems of a merged PDF against what was printed: empty when it is plausible.

    Per document, in order: its pages are there, its first page holds its title, and its pages embed
    at least as many images as the browser showed on it; no raw TeX in the text anywhere, and no
    formula the browser left untypeset.
    """
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf) if isinstance(pdf, bytes) else pdf)
    problems: list[str] = []
    expected = sum(p.pages for p in printed)
    if len(reader.pages) != expected:
        problems.append(f"the PDF has {len(reader.pages)} pages, the documents printed {expected}")
        return problems
    start = 0
    for doc in printed:
        pages = reader.pages[start : start + doc.pages]
        start += doc.pages
        if doc.pages < 1:
            problems.append(f"{doc.document}: no page")
            continue
        texts = [page.extract_text() or "" for page in pages]
        if doc.title and normalise(doc.title) not in normalise(texts[0]):
            problems.append(f"{doc.document}: title {doc.title!r} not found on its first page")
        images = sum(count_images(page) for page in pages)
        if images < doc.images:
            problems.append(f"{doc.document}: {images} images in the PDF, {doc.images} shown in the browser")
        if doc.untypeset:
            problems.append(f"{doc.document}: {doc.untypeset} of {doc.formulas} formulas not typeset by MathJax")
        for hit in raw_tex("\n".join(texts)):
            problems.append(f"{doc.document}: raw TeX in the text: …{hit}…")
    return problems


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """Base URL of ``site`` served on a free local port."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """No line per request."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def print_documents(site: Path, documents: Sequence[str], solutions: bool = True) -> list[tuple[Printed, bytes]]:
    """Print every document of the built site to PDF bytes in headless Chromium, with what each showed."""
    from playwright.sync_api import sync_playwright
    from pypdf import PdfReader

    results: list[tuple[Printed, bytes]] = []
    with serve(site) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 1600})
        context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(url) else r.abort())
        for document in documents:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            response = page.goto(f"{url}/{document}.html", wait_until="load")
            if response is None or response.status != 200:
                raise FileNotFoundError(f"{document}.html is not in the built site {site}: run `make book`")
            page.evaluate(MATH_TYPESET)
            page.wait_for_function(WIDGETS_RENDERED)
            page.wait_for_function(IMAGES_LOADED)
            page.evaluate(MATH_TYPESET)  # widget labels are typeset after the widgets render
            page.add_style_tag(content=PRINT_CSS)
            if not solutions:
                page.add_style_tag(content=NO_SOLUTIONS_CSS)
            page.emulate_media(media="print")
            page.evaluate("() => window.dispatchEvent(new Event('beforeprint'))")  # the theme opens toggles
            facts = page.evaluate(PAGE_FACTS)
            pdf = page.pdf(format="A4", print_background=True, outline=False,
                           margin={"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"})
            page.close()
            pages = len(PdfReader(io.BytesIO(pdf)).pages)
            results.append((Printed(document=document, pages=pages, **facts), pdf))
        browser.close()
    return results


def merge(printed: Sequence[tuple[Printed, bytes]], out: Path, title: str) -> None:
    """One PDF from the documents' PDFs, with a bookmark per document (its title)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for doc, pdf in printed:
        first = len(writer.pages)
        writer.append(PdfReader(io.BytesIO(pdf)))
        writer.add_outline_item(title=doc.title or doc.document, page_number=first)
    writer.add_metadata({"/Title": title})
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as handle:
        writer.write(handle)


def main(argv: Sequence[str] | None = None) -> int:
    """Print, merge and check; exit status 1 when the check finds a problem."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "_build" / "html", help="the built site")
    parser.add_argument("--toc", type=Path, default=ROOT / "_toc.yml", help="its table of contents")
    parser.add_argument("--config", type=Path, default=ROOT / "_config.yml", help="its configuration (title)")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "book.pdf", help="the PDF to write")
    parser.add_argument("--no-solutions", dest="solutions", action="store_false",
                        help="leave the exercises' solutions out (the students' copy)")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        print(f"no built site in {args.site}: run `make book` first", file=sys.stderr)
        return 1
    if not CHROMIUM.is_file():
        print(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) or set $CHROMIUM",
              file=sys.stderr)
        return 1
    start = time.perf_counter()
    title = yaml.safe_load(args.config.read_text(encoding="utf-8")).get("title", "book")
    printed = print_documents(args.site, toc_documents(args.toc), args.solutions)
    merge(printed, args.out, title)
    docs = [doc for doc, _ in printed]
    problems = check_pdf(args.out, docs)
    summary = {"pdf": str(args.out), "pages": sum(d.pages for d in docs), "images": sum(d.images for d in docs),
               "formulas": sum(d.formulas for d in docs), "bytes": args.out.stat().st_size,
               "seconds": round(time.perf_counter() - start, 1), "problems": problems,
               "documents": [asdict(d) for d in docs]}
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"{args.out}: {summary['pages']} pages, {len(docs)} documents, {summary['images']} images, "
          f"{summary['formulas']} formulas, {summary['bytes'] / 1e6:.1f} MB, {summary['seconds']} s")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
