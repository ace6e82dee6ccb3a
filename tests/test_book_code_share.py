"""Every executed chapter of the book is prose with code, at most half code (developers' guide).

The share of a chapter is its non-blank lines inside ``{code-cell}`` blocks (cell options such as
``:tags:`` or a ``---`` block count as code; the opening and closing fences do not) over all its
non-blank lines after the front matter (without those fences). Only chapters that execute — a
``kernelspec:`` in the front matter — are held to it.
"""

import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
LIMIT = 0.5
OPENING = re.compile(r"^(`{3,})\{code-cell\}")


def front_matter_end(lines: list[str], path: Path) -> int | None:
    """The index of the line that closes the ``---`` front matter, or None without front matter."""
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return i
    raise ValueError(f"{path}: the front matter opened on line 1 is never closed")


def code_share(text: str, path: Path = Path("<text>")) -> float:
    """Non-blank code-cell lines over all non-blank lines after the front matter, fences not counted."""
    lines = text.splitlines()
    end = front_matter_end(lines, path)
    body = lines[end + 1 :] if end is not None else lines
    code = total = 0
    fence = None
    for number, line in enumerate(body, start=(end or -1) + 2):
        stripped = line.strip()
        if fence is None:
            opening = OPENING.match(stripped)
            if opening:
                fence = (opening.group(1), number)
            elif stripped:
                total += 1
        elif stripped == fence[0]:
            fence = None
        elif stripped:
            code += 1
            total += 1
    if fence is not None:
        raise ValueError(f"{path}: the code cell opened on line {fence[1]} is never closed")
    if total == 0:
        raise ValueError(f"{path}: no content after the front matter")
    return code / total


def executed_chapters() -> list[Path]:
    """The chapters with a ``kernelspec:`` in their front matter."""
    chapters = []
    for path in sorted(BOOK.glob("*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        end = front_matter_end(lines, path)
        if end is not None and any(line.startswith("kernelspec:") for line in lines[1:end]):
            chapters.append(path)
    return chapters


def test_code_share_counts_cell_options_but_not_fences():
    text = "\n".join(
        [
            "---",
            "kernelspec:",
            "  name: python3",
            "---",
            "# Title",
            "",
            "Some prose.",
            "```{code-cell} ipython3",
            ":tags: [hide-input]",
            "",
            "x = 1",
            "```",
            "```{math}",
            "a = b",
            "```",
        ]
    )
    # code: ":tags:" and "x = 1"; all: "# Title", "Some prose.", the two code lines, and the math block's 3 lines
    assert code_share(text) == pytest.approx(2 / 7)
    assert code_share("no front matter\n```{code-cell} ipython3\ny = 2\n```\n") == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="line 2 is never closed"):
        code_share("prose\n```{code-cell} ipython3\nx = 1\n")
    with pytest.raises(ValueError, match="no content"):
        code_share("---\nkernelspec: {}\n---\n\n")


def test_the_executed_chapters_are_found():
    names = {path.stem for path in executed_chapters()}
    assert {"data", "entropy", "selection", "performance"} <= names
    assert "README" not in names, "a file without a kernelspec is no executed chapter"


def test_every_executed_chapter_is_at_most_half_code():
    shares = {path.name: code_share(path.read_text(encoding="utf-8"), path) for path in executed_chapters()}
    offenders = {name: f"{share:.1%}" for name, share in shares.items() if share > LIMIT}
    assert not offenders, f"chapters over {LIMIT:.0%} code (move code into salience_lib.book): {offenders}"
