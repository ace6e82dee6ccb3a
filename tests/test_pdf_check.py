"""The pure parts of ``make pdf`` (browser_tests/print_pdf.py): the table of contents, the text
comparisons and the check of a merged PDF against what the browser printed."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pypdf
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser_tests"))
import print_pdf
from print_pdf import Printed, check_pdf, count_images, normalise, raw_tex, toc_documents


def _image_pdf(pages: int) -> bytes:
    """A PDF of ``pages`` pages, one embedded image each and no text (PIL writes it)."""
    frames = [Image.new("RGB", (32, 24), (40 * k, 100, 200)) for k in range(pages)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "PDF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def _printed(document: str = "book/a", title: str = "", pages: int = 1, images: int = 0) -> Printed:
    return Printed(document=document, title=title, pages=pages, images=images, formulas=0, untypeset=0)


def test_toc_documents_root_first_without_suffix(tmp_path: Path) -> None:
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: book/intro\nparts:\n  - chapters:\n    - file: book/data.md\n"
                   "    - file: book/models\n      sections:\n      - file: book/extra.ipynb\n")
    assert toc_documents(toc) == ["book/intro", "book/data", "book/models", "book/extra"]


def test_the_book_toc_is_read() -> None:
    documents = toc_documents(Path(print_pdf.ROOT) / "_toc.yml")
    assert documents[0] == "book/intro"
    assert "book/entropy" in documents


def test_normalise_joins_lines_and_hyphenation() -> None:
    assert normalise("Exercises of the measure\nchapters") == "exercises of the measure chapters"
    assert normalise("Out-of-\nset  salience") == "out-of-set salience"
    assert normalise("(a) Entropy") == normalise("  (A)\tENTROPY ")


@pytest.mark.parametrize("text", [r"a \(x^2\) b", r"\[ y \]", "$$ z $$", r"\frac{a}{b}", r"\begin{aligned}"])
def test_raw_tex_finds_untypeset_maths(text: str) -> None:
    assert raw_tex(text)


def test_raw_tex_ignores_typeset_maths_and_money() -> None:
    assert raw_tex("H = − ∑ p log p, and 5 $ for a coffee; σ² and a/b") == []


def test_count_images_per_page() -> None:
    reader = pypdf.PdfReader(io.BytesIO(_image_pdf(3)))
    assert [count_images(page) for page in reader.pages] == [1, 1, 1]


def test_check_pdf_passes_a_plausible_pdf() -> None:
    printed = [_printed("book/a", pages=2, images=2), _printed("book/b", pages=1, images=1)]
    assert check_pdf(_image_pdf(3), printed) == []


def test_check_pdf_reports_missing_pages() -> None:
    problems = check_pdf(_image_pdf(2), [_printed(pages=3)])
    assert len(problems) == 1 and "2 pages" in problems[0]


def test_check_pdf_reports_missing_images_titles_and_untypeset_maths() -> None:
    printed = [
        _printed("book/a", pages=1, images=2),
        _printed("book/b", title="A title", pages=1),
        Printed(document="book/c", title="", pages=1, images=0, formulas=4, untypeset=3),
    ]
    problems = check_pdf(_image_pdf(3), printed)
    assert any(p.startswith("book/a: 1 images in the PDF, 2 shown") for p in problems)
    assert any(p.startswith("book/b: title 'A title' not found") for p in problems)
    assert any(p.startswith("book/c: 3 of 4 formulas not typeset") for p in problems)
