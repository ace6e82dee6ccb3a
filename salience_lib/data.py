"""Data sets in CYBORG's layout (SPEC §3, §5): a torch ``Dataset`` for any such folder.

Layout of ``root`` (the generated data sets of :mod:`salience_lib.synthetic` and CYBORG's data)::

    dataset.csv    header-less lines ``split,label,path``: split in train/val/test, label in
                   Real/Synthetic, path relative to root (a leading "/", as in CYBORG's CSVs, is
                   allowed and ignored)
    heatmaps/      human annotation maps named like the image file (CYBORG's training code looks
                   them up by file name in one flat folder)
    metadata.csv   optional, with a header that includes ``path`` (the generator adds family,
                   group, shortcut, mask_path, ...); real data sets simply lack it
    nonface.csv    optional, with a header that includes ``path``: out-of-set images

The CSV is validated eagerly (field count, split, label, empty or unsafe path, duplicates, file
existence); images are decoded lazily. Every problem raises ``ValueError`` or
``FileNotFoundError`` naming the file, the CSV line and the offending value; nothing is skipped.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

__all__ = [
    "CSV_NAME",
    "HEATMAP_DIR",
    "LABELS",
    "SPLITS",
    "CsvEntry",
    "CsvImageDataset",
    "NonFaceDataset",
    "read_csv",
]

CSV_NAME = "dataset.csv"
METADATA_NAME = "metadata.csv"
NONFACE_NAME = "nonface.csv"
HEATMAP_DIR = "heatmaps"
LABELS = {"Real": 0, "Synthetic": 1}
SPLITS = ("train", "val", "test")
_READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

Size = tuple[int, int]


@dataclass(frozen=True)
class CsvEntry:
    """One CSV line: 1-based line number, split, integer label (0 Real, 1 Synthetic), relative path."""

    line: int
    split: str
    label: int
    path: str


def _clean_path(raw: str, where: str) -> str:
    path = raw.strip().lstrip("/")
    if not path:
        raise ValueError(f"{where}: empty image path")
    if ".." in PurePosixPath(path).parts:
        raise ValueError(f"{where}: image path {raw!r} must stay inside the data-set root (no '..')")
    return path


def _read_rows(csv_path: Path) -> list[tuple[int, list[str]]]:
    if not csv_path.is_file():
        raise FileNotFoundError(f"CSV file {csv_path} not found")
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        return [(reader.line_num, row) for row in reader if any(field.strip() for field in row)]


def read_csv(csv_path: str | os.PathLike[str]) -> list[CsvEntry]:
    """Parse and validate a header-less CYBORG CSV (every split); blank lines are ignored.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line without exactly 3 fields, an unknown split or label, an empty or unsafe
            path, a path listed twice, or no entries at all; the message names file, line and value.
    """
    csv_path = Path(csv_path)
    entries, first_line = [], {}
    for line, row in _read_rows(csv_path):
        where = f"{csv_path}, line {line}"
        if len(row) != 3:
            raise ValueError(f"{where}: expected 3 fields 'split,label,path', got {len(row)}: {','.join(row)!r}")
        split, label, path = row[0].strip(), row[1].strip(), _clean_path(row[2], where)
        if split not in SPLITS:
            raise ValueError(f"{where}: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if label not in LABELS:
            raise ValueError(f"{where}: unknown label {label!r}; expected one of {', '.join(LABELS)}")
        if path in first_line:
            raise ValueError(f"{where}: duplicate path {path!r} (first listed on line {first_line[path]})")
        first_line[path] = line
        entries.append(CsvEntry(line, split, LABELS[label], path))
    if not entries:
        raise ValueError(f"{csv_path}: the CSV contains no entries")
    return entries


def _parse_size(image_size: int | Sequence[int] | None) -> Size | None:
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"`image_size` must be a positive int or (height, width), got {image_size!r}")
    return size  # type: ignore[return-value]


def _open(path: Path, where: str) -> Image.Image:
    """Open and fully decode an image; any failure names the file and where it was listed."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{where}: file {path} not found") from exc
    except _READ_ERRORS as exc:
        raise ValueError(f"{where}: cannot read image {path}: {exc}") from exc


def _header_size(path: Path, where: str) -> Size:
    """``(height, width)`` from the image header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except _READ_ERRORS as exc:
        raise ValueError(f"{where}: cannot read image {path}: {exc}") from exc
    return height, width


def _check_size(img: Image.Image, expected: Size, where: str, what: str, reference: str) -> None:
    if img.size != (expected[1], expected[0]):
        raise ValueError(
            f"{where}: image {what!r} is {img.size[0]}x{img.size[1]} (WxH) but {reference!r} is "
            f"{expected[1]}x{expected[0]}; pass image_size= to resize"
        )


def _rgb_tensor(img: Image.Image, size: Size | None) -> torch.Tensor:
    img = img.convert("RGB")
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def _gray_tensor(img: Image.Image, size: Size, resample: int = Image.BILINEAR) -> torch.Tensor:
    """A one-channel map as float32 (H, W) in [0, 1]: 8-bit / 255, 16-bit / 65535, others / their max."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        scale = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr / scale, 0.0, 1.0).astype(np.float32), mode="F")
    else:
        img = img.convert("L")
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), resample)
    arr = np.asarray(img, dtype=np.float32)
    return torch.from_numpy(arr if img.mode == "F" else arr / 255.0).clamp_(0.0, 1.0)


def _read_header_csv(csv_path: Path, required: str = "path") -> list[tuple[int, dict[str, str]]]:
    rows = _read_rows(csv_path)
    if not rows or required not in rows[0][1]:
        raise ValueError(f"{csv_path}, line 1: expected a header with a {required!r} column")
    header = rows[0][1]
    records = []
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise ValueError(f"{csv_path}, line {line}: expected {len(header)} fields, got {len(row)}")
        record = dict(zip(header, row, strict=True))
        record["path"] = _clean_path(record["path"], f"{csv_path}, line {line}")
        records.append((line, record))
    return records


class CsvImageDataset(Dataset):
    """Images of one split of a CYBORG-layout folder, optionally with human annotation maps.

    Items are ``(image, label)`` or, with ``annotations=True``, ``(image, label, annotation)``:
    ``image`` float32 ``(3, H, W)`` in [0, 1] (RGB), ``label`` int (0 Real, 1 Synthetic),
    ``annotation`` float32 ``(H, W)`` in [0, 1] (an 8-bit map / 255, a 16-bit one / 65535; RGB maps
    are converted to grey; bilinearly resized to the image size when they differ; not renormalised).

    Args:
        root: the data-set folder.
        split: ``"train"``, ``"val"`` or ``"test"``.
        image_size: resize every image (bilinear, antialiased) to this int or ``(height, width)``;
            None keeps the files' size, which must then be the same for every image of the split.
        annotations: also return the map ``root/heatmaps/<image file name>``, which must exist.
        csv_name: the CSV inside ``root``.
        heatmap_dir: the annotation folder inside ``root``.

    Attributes:
        paths: relative image paths (CSV order); ``lines``: their CSV line numbers.
        labels: int64 tensor ``(N,)``.
        image_size: ``(height, width)`` of the returned images.
        metadata: one dict per image from ``metadata.csv`` (all values strings), or None without it.

    Raises:
        FileNotFoundError: missing root, CSV, image file or (with ``annotations``) annotation file.
        ValueError: unknown ``split``, a bad CSV line (see :func:`read_csv`), no image in ``split``,
            two annotated images sharing a file name, or a ``metadata.csv`` without a row for an image.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        image_size: int | Sequence[int] | None = None,
        annotations: bool = False,
        *,
        csv_name: str = CSV_NAME,
        heatmap_dir: str = HEATMAP_DIR,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"`split` must be one of {', '.join(SPLITS)}, got {split!r}")
        self.root, self.split, self.annotations = Path(root), split, annotations
        if not self.root.is_dir():
            raise FileNotFoundError(f"data-set folder {self.root} not found")
        self.csv_path, self.heatmap_dir = self.root / csv_name, self.root / heatmap_dir
        everything = read_csv(self.csv_path)
        entries = [e for e in everything if e.split == split]
        if not entries:
            found = dict(Counter(e.split for e in everything))
            raise ValueError(f"{self.csv_path}: no entries for split {split!r} (entries per split: {found})")
        self.paths = [e.path for e in entries]
        self.lines = [e.line for e in entries]
        self.labels = torch.tensor([e.label for e in entries], dtype=torch.int64)
        self._check_files()
        self._resize = image_size is not None
        self.image_size = _parse_size(image_size) or _header_size(self.image_file(0), self._where(0))
        self.metadata = self._read_metadata()

    def _where(self, i: int) -> str:
        return f"{self.csv_path}, line {self.lines[i]}"

    def image_file(self, i: int) -> Path:
        """Absolute path of image ``i``."""
        return self.root / self.paths[i]

    def annotation_file(self, i: int) -> Path:
        """Path of image ``i``'s annotation map: ``heatmaps/<image file name>``."""
        return self.heatmap_dir / PurePosixPath(self.paths[i]).name

    def _check_files(self) -> None:
        names: dict[str, int] = {}
        for i, path in enumerate(self.paths):
            if not self.image_file(i).is_file():
                raise FileNotFoundError(f"{self._where(i)}: image file {self.image_file(i)} not found")
            if not self.annotations:
                continue
            if not self.annotation_file(i).is_file():
                raise FileNotFoundError(
                    f"{self._where(i)}: annotation {self.annotation_file(i)} for image {path!r} not found "
                    f"(annotations=True needs {self.heatmap_dir.name}/<file name> for every {self.split} image)"
                )
            name = PurePosixPath(path).name
            if name in names:
                raise ValueError(
                    f"{self._where(i)}: file name {name!r} of {path!r} is also used on line {names[name]}; "
                    f"annotations are looked up by file name and would be ambiguous"
                )
            names[name] = self.lines[i]

    def _read_metadata(self) -> list[dict[str, str]] | None:
        meta_path = self.root / METADATA_NAME
        if not meta_path.is_file():
            return None
        by_path = {record["path"]: record for _, record in _read_header_csv(meta_path)}
        missing = [i for i, p in enumerate(self.paths) if p not in by_path]
        if missing:
            i = missing[0]
            raise ValueError(f"{meta_path}: no row for image {self.paths[i]!r} ({self._where(i)})")
        return [by_path[p] for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | tuple[torch.Tensor, int, torch.Tensor]:
        i = range(len(self))[i]
        img = _open(self.image_file(i), self._where(i))
        if not self._resize:
            _check_size(img, self.image_size, self._where(i), self.paths[i], self.paths[0])
        image = _rgb_tensor(img, self.image_size)
        label = int(self.labels[i])
        if not self.annotations:
            return image, label
        note = _open(self.annotation_file(i), f"{self._where(i)} (annotation of {self.paths[i]!r})")
        return image, label, _gray_tensor(note, self.image_size)

    def where(self, **conditions: str | Collection[str]) -> list[int]:
        """Indices whose metadata match every condition, e.g. ``where(group="unseen", shortcut="0")``.

        A condition is a value or a collection of accepted values, compared as strings.

        Raises:
            ValueError: no ``metadata.csv``, or a column it lacks.
        """
        if self.metadata is None:
            raise ValueError(f"{self.root} has no {METADATA_NAME}; cannot select by {sorted(conditions)}")
        accepted = {}
        for key, value in conditions.items():
            if key not in self.metadata[0]:
                raise ValueError(f"{METADATA_NAME} has no column {key!r}; columns: {list(self.metadata[0])}")
            values = [value] if isinstance(value, str | int) else value
            accepted[key] = {str(v) for v in values}
        return [i for i, row in enumerate(self.metadata) if all(row[k] in v for k, v in accepted.items())]

    def mask(self, i: int) -> torch.Tensor:
        """Exact artifact mask of image ``i`` as float32 ``(H, W)`` in {0, 1}; all zero without one.

        Raises:
            ValueError: no ``metadata.csv`` or no ``mask_path`` column.
        """
        if self.metadata is None or "mask_path" not in self.metadata[i]:
            raise ValueError(f"{self.root}: masks need {METADATA_NAME} with a 'mask_path' column")
        rel = self.metadata[i]["mask_path"]
        if not rel:
            return torch.zeros(self.image_size, dtype=torch.float32)
        img = _open(self.root / rel, f"{self.root / METADATA_NAME} (mask of {self.paths[i]!r})")
        return (_gray_tensor(img, self.image_size, Image.NEAREST) > 0.5).float()


class NonFaceDataset(Dataset):
    """Out-of-set images listed in ``root/nonface.csv`` (header with ``path``; e.g. ``kind``).

    Items are images, float32 ``(3, H, W)`` in [0, 1]; ``image_size`` as in :class:`CsvImageDataset`
    (None requires every image to have the size of the first). ``kinds`` holds the ``kind`` column
    when present; ``image_size`` is the ``(height, width)`` of the returned images.

    Raises:
        FileNotFoundError: missing CSV or image file. ValueError: bad header or row, no rows.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        image_size: int | Sequence[int] | None = None,
        *,
        csv_name: str = NONFACE_NAME,
    ) -> None:
        self.root, self.csv_path = Path(root), Path(root) / csv_name
        records = _read_header_csv(self.csv_path)
        if not records:
            raise ValueError(f"{self.csv_path}: no images listed")
        self.lines = [line for line, _ in records]
        self.paths = [record["path"] for _, record in records]
        self.kinds = [record.get("kind", "") for _, record in records]
        for line, path in zip(self.lines, self.paths, strict=True):
            if not (self.root / path).is_file():
                raise FileNotFoundError(f"{self.csv_path}, line {line}: image file {self.root / path} not found")
        self._resize = image_size is not None
        first = f"{self.csv_path}, line {self.lines[0]}"
        self.image_size = _parse_size(image_size) or _header_size(self.root / self.paths[0], first)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        i = range(len(self))[i]
        where = f"{self.csv_path}, line {self.lines[i]}"
        img = _open(self.root / self.paths[i], where)
        if not self._resize:
            _check_size(img, self.image_size, where, self.paths[i], self.paths[0])
        return _rgb_tensor(img, self.image_size)
