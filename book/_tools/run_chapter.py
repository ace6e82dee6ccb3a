"""Execute one chapter of the book with papermill; used by ``make book`` (see the Makefile).

    python book/_tools/run_chapter.py book/entropy.md _build/src/book/entropy.ipynb \\
        --param profile=quick --param data_dir=../data/faces64 ...

The source is a MyST Markdown text notebook (jupytext ``md:myst``) with one code cell tagged
``parameters`` holding literals only. The script checks the chapter's conventions (a kernelspec, one
``parameters`` cell, no ``def``/``class``/``!pip``/URL in code cells), runs it with papermill in
the chapter's own folder (so relative paths behave as when a reader opens it in Jupyter), keeps the
widget state, and writes the executed notebook atomically: the output exists only if every cell
ran. On a failure the partly executed notebook, with the traceback, is kept next to the output as
``<name>.failed.ipynb`` and the exit status is 1.

papermill inserts the parameters it was given as a cell tagged ``injected-parameters``. When they
only repeat the chapter's defaults, that cell is tagged ``remove-cell`` so the page does not show
the same values twice; otherwise it stays visible and shows what the chapter really ran with.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import papermill
from papermill.exceptions import PapermillExecutionError

FORBIDDEN = (
    (re.compile(r"^\s*(async\s+)?def\s", re.MULTILINE), "a function definition (move it to salience_lib)"),
    (re.compile(r"^\s*class\s", re.MULTILINE), "a class definition (move it to salience_lib)"),
    (re.compile(r"^\s*[!%]\s*pip\b", re.MULTILINE), "a pip install (add the package to requirements.txt)"),
    (re.compile(r"\bhttps?://"), "a URL (the book runs offline; ship the data or generate it)"),
)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ChapterError(Exception):
    """A chapter that breaks the book's conventions or fails to run."""


def parse_params(items: list[str]) -> dict[str, str]:
    """``["name=value", ...]`` -> ``{name: value}`` (values stay strings)."""
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise ChapterError(f"--param needs NAME=VALUE with a Python identifier as NAME, got {item!r}")
        params[name] = value
    return params


def literal_assignments(source: str) -> dict[str, Any]:
    """Names assigned a literal in a code cell (``name = <literal>``); other statements are ignored."""
    values: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            try:
                value = ast.literal_eval(node.value) if node.value is not None else None
            except ValueError:
                continue
            for target in targets:
                if isinstance(target, ast.Name):
                    values[target.id] = value
    return values


def check_conventions(nb: nbformat.NotebookNode, source: Path) -> nbformat.NotebookNode:
    """The chapter's ``parameters`` cell; raises :class:`ChapterError` naming what is wrong."""
    if nb.metadata.get("kernelspec", {}).get("language") != "python":
        raise ChapterError(f"{source}: the front matter needs a kernelspec with `language: python` (for papermill)")
    tagged = [cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", [])]
    if len(tagged) != 1 or tagged[0].cell_type != "code":
        raise ChapterError(f"{source}: needs exactly one code cell tagged `parameters`, found {len(tagged)}")
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        for pattern, what in FORBIDDEN:
            if pattern.search(cell.source):
                raise ChapterError(f"{source}: code cell {number} contains {what}")
    try:
        literal_assignments(tagged[0].source)
    except SyntaxError as error:
        raise ChapterError(f"{source}: the parameters cell is not valid Python: {error}") from error
    return tagged[0]


def tidy_injected(nb: nbformat.NotebookNode, defaults: dict[str, Any]) -> None:
    """Tag papermill's injected cell ``remove-cell`` when it only repeats the defaults."""
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" not in tags:
            continue
        injected = literal_assignments(cell.source)
        if all(name in defaults and defaults[name] == value for name, value in injected.items()):
            cell.metadata["tags"] = [*tags, "remove-cell"]


def run(source: Path, output: Path, params: dict[str, str], timeout: int | None) -> float:
    """Execute ``source`` into ``output``; returns the seconds it took."""
    nb = jupytext.read(source, fmt="md:myst")
    defaults = literal_assignments(check_conventions(nb, source).source)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ChapterError(f"{source}: the parameters cell does not define {unknown} (the build passes them)")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.stem}.partial.ipynb")
    failed = output.with_name(f"{output.stem}.failed.ipynb")
    failed.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        executed = papermill.execute_notebook(
            nb,
            str(partial),
            parameters=params,
            kernel_name=nb.metadata["kernelspec"].get("name", "python3"),
            language="python",
            progress_bar=False,
            cwd=str(source.parent),
            start_timeout=300,
            execution_timeout=timeout,
            # ipykernel warns at every start that its local TCP sockets are unencrypted: keep errors only.
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except PapermillExecutionError as error:
        os.replace(partial, failed)
        first_line = next((line for line in error.source.splitlines() if line.strip()), "")
        traceback = ANSI.sub("", "\n".join(error.traceback))
        raise ChapterError(
            f"{source}: the code cell starting `{first_line}` raised {error.ename}: {error.evalue}\n"
            f"{traceback}\n"
            f"error: the executed notebook with this traceback: {failed}"
        ) from error
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    tidy_injected(executed, defaults)
    nbformat.write(executed, str(partial))
    os.replace(partial, output)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="chapter source, e.g. book/entropy.md")
    parser.add_argument("output", type=Path, help="executed notebook to write, e.g. _build/src/book/entropy.ipynb")
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE passed to the parameters cell")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: no limit)")
    args = parser.parse_args(argv)
    try:
        seconds = run(args.source, args.output, parse_params(args.param), args.timeout)
    except ChapterError as error:
        print(f"error: chapter {error}", file=sys.stderr)
        return 1
    print(f"executed {args.source} in {seconds:.0f} s -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
