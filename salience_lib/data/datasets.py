"""The torch data sets over a CYBORG-layout folder: one split of faces, and the out-of-set images.

Every file a data set reads (image, annotation map, mask) must be a regular file inside the data-set
root, reached without a symlink (:func:`_checked_file`; the root itself may be a link): a symlink
could alias another listed image or reach outside the data set, and the error names the CSV line.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path, PurePosixPath
from typing import Literal

import torch
from PIL import Image
from torch.utils.data import Dataset

from salience_lib.data.decode import _check_size, _gray_tensor, _header_size, _open, _parse_size, _rgb_tensor
from salience_lib.data.layout import (
    CSV_NAME,
    HEATMAP_DIR,
    METADATA_NAME,
    NONFACE_NAME,
    SPLITS,
    _clean_path,
    _read_header_csv,
    read_csv,
    resolve_csv,
)

__all__ = ["CsvImageDataset", "NonFaceDataset"]

AVAILABLE = "available"


def _checked_file(root: Path, real_root: Path, rel: str, where: str, what: str) -> Path:
    """``root / rel``, which must be a regular file inside the data-set root reached without a symlink.

    Raises:
        FileNotFoundError: no such file (or a dangling link), naming ``where`` and the expected path.
        ValueError: the path, or a folder on its way from ``root``, is a symlink, or it resolves
            outside ``root`` (the data folder itself may be a symlink).
    """
    path = root / rel
    if not path.is_file():
        dangling = " (a dangling symlink)" if path.is_symlink() else ""
        raise FileNotFoundError(f"{where}: {what} {path} not found{dangling}")
    real = path.resolve()
    if real != real_root / rel:
        how = "outside the data-set root" if not real.is_relative_to(real_root) else "through a symlink"
        raise ValueError(
            f"{where}: {what} {rel!r} resolves {how} (to {real}); symlinks inside the data folder are "
            f"rejected: list the file itself (the data folder {root} may itself be a link)"
        )
    return path


class CsvImageDataset(Dataset):
    """Images of one split of a CYBORG-layout folder, optionally with human annotation maps.

    Items are ``(image, label)`` or, with ``annotations``, ``(image, label, annotation)``:
    ``image`` float32 ``(3, H, W)`` in [0, 1] (RGB; see :func:`~salience_lib.data.decode._rgb_tensor`
    for the modes converted), ``label`` int (0 Real, 1 Synthetic), ``annotation`` float32 ``(H, W)``
    in [0, 1] (an 8-bit map / 255, a 16-bit one / 65535; RGB maps are converted to grey; bilinearly
    resized to the image size when they differ; not renormalised).

    Args:
        root: the data-set folder.
        split: ``"train"``, ``"val"`` or ``"test"``.
        image_size: resize every image (bilinear, antialiased) to this int or ``(height, width)``;
            None keeps the files' size, which must then be the same for every image of the split.
        annotations: ``True``: also return the map ``root/heatmaps/<image file name>``, which must
            exist for every image; ``"available"``: the maps that exist, and an all-NaN map (never a
            fake zero one) for the images without one, which :attr:`annotated` marks. A map whose file
            name another image listed in this CSV, a CSV beside it or ``dataset.csv`` shares is
            ambiguous: an error with ``True``, not used with ``"available"``.
        csv_name: the CSV, absolute or relative to ``root`` (e.g. CYBORG's ``csvs/test.csv``); its
            image paths are relative to ``root`` wherever it lies (:func:`~salience_lib.data.resolve_csv`).
        heatmap_dir: the annotation folder inside ``root``.

    Attributes:
        paths: normalised relative image paths (CSV order); ``lines``: their CSV line numbers.
        labels: int64 tensor ``(N,)``.
        annotated: bool tensor ``(N,)``: which images have a usable annotation map (None without
            ``annotations``); ``ambiguous``: index -> why an existing map was not used (``"available"``).
        image_size: ``(height, width)`` of the returned images.
        metadata: one dict per image from ``metadata.csv`` (all values strings), or None without it.

    Raises:
        FileNotFoundError: missing root, CSV, image file or (with ``annotations=True``) annotation file;
            the message names the path it expected.
        ValueError: unknown ``split``, a bad CSV line (see :func:`read_csv`), no image in ``split``,
            an image or annotation that is a symlink or lies outside ``root``, (``annotations=True``) an
            annotated image whose file name another listed image shares, or a ``metadata.csv`` without a
            row for an image.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        image_size: int | Sequence[int] | None = None,
        annotations: bool | Literal["available"] = False,
        *,
        csv_name: str | os.PathLike[str] = CSV_NAME,
        heatmap_dir: str = HEATMAP_DIR,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"`split` must be one of {', '.join(SPLITS)}, got {split!r}")
        if annotations not in (False, True, AVAILABLE):
            raise ValueError(f"`annotations` must be False, True or {AVAILABLE!r}, got {annotations!r}")
        self.root, self.split, self.annotations = Path(root), split, annotations
        if not self.root.is_dir():
            raise FileNotFoundError(f"data-set folder {self.root} not found")
        self.csv_path, self.heatmap_dir = resolve_csv(self.root, csv_name), self.root / heatmap_dir
        if not self.csv_path.is_file():
            raise FileNotFoundError(
                f"CSV file {self.csv_path} not found (csv_name= chooses another, absolute or relative to {self.root})"
            )
        everything = read_csv(self.csv_path)
        entries = [e for e in everything if e.split == split]
        if not entries:
            found = dict(Counter(e.split for e in everything))
            raise ValueError(f"{self.csv_path}: no entries for split {split!r} (entries per split: {found})")
        self.paths = [e.path for e in entries]
        self.lines = [e.line for e in entries]
        self.labels = torch.tensor([e.label for e in entries], dtype=torch.int64)
        self._real_root = self.root.resolve()
        self._check_files()
        self.ambiguous: dict[int, str] = {}
        self.annotated = self._check_annotations(everything) if annotations else None
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
        for i, path in enumerate(self.paths):
            _checked_file(self.root, self._real_root, path, self._where(i), "image file")

    def _listed_names(self, everything: list) -> dict[str, list[tuple[Path, int, str]]]:
        """File name -> (CSV, line, path) of every image this CSV, the CSVs beside it and ``root/dataset.csv`` list.

        CYBORG keeps one CSV per split (``csvs/train.csv``, ``csvs/test.csv``) and one flat heatmap
        folder, so a test image named like an annotated training image would silently get its map.
        """
        listed: dict[str, list[tuple[Path, int, str]]] = {}
        csvs = {self.csv_path.resolve(): everything}
        for other in [*sorted(self.csv_path.parent.glob("*.csv")), self.root / CSV_NAME]:
            if other.is_file() and other.resolve() not in csvs:
                try:
                    csvs[other.resolve()] = read_csv(other)
                except ValueError:  # not a split CSV (metadata.csv, nonface.csv, ...)
                    continue
        for csv_path, entries in csvs.items():
            for entry in entries:
                listed.setdefault(PurePosixPath(entry.path).name, []).append((csv_path, entry.line, entry.path))
        return listed

    def _check_annotations(self, everything: list) -> torch.Tensor:
        """Which images have a usable map; each map checked like an image (module docs of ``annotations``).

        A map whose file name another listed image (another path) shares is ambiguous: an error with
        ``annotations=True``; with ``"available"`` the image counts as unannotated and :attr:`ambiguous`
        holds the reason.
        """
        present = torch.tensor([self.annotation_file(i).is_file() for i in range(len(self))], dtype=torch.bool)
        if self.annotations is True and not bool(present.all()):
            i = int((~present).nonzero()[0])
            raise FileNotFoundError(
                f"{self._where(i)}: annotation {self.annotation_file(i)} for image {self.paths[i]!r} not found "
                f"(annotations=True needs {self.heatmap_dir.name}/<file name> for every {self.split} image)"
            )
        listed = self._listed_names(everything) if bool(present.any()) else {}
        heatmaps = PurePosixPath(self.heatmap_dir.relative_to(self.root).as_posix())
        me = self.csv_path.resolve()
        for i in present.nonzero()[:, 0].tolist():
            name = PurePosixPath(self.paths[i]).name
            others = [(c, line) for c, line, path in listed[name] if path != self.paths[i]]
            if others:
                csv_path, line = others[0]
                there = f"line {line}" if csv_path == me else f"{csv_path}, line {line}"
                reason = (
                    f"{self._where(i)}: file name {name!r} of {self.paths[i]!r} is also used on {there}; "
                    f"annotations are looked up by file name ({self.annotation_file(i)}) and would be ambiguous"
                )
                if self.annotations is True:
                    raise ValueError(reason)
                present[i] = False
                self.ambiguous[i] = reason
                continue
            where = f"{self._where(i)} (annotation of {self.paths[i]!r})"
            _checked_file(self.root, self._real_root, str(heatmaps / name), where, "annotation")
        return present

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
        image = _rgb_tensor(img, self.image_size, self._where(i))
        label = int(self.labels[i])
        if not self.annotations:
            return image, label
        if not self.annotated[i]:
            return image, label, torch.full(self.image_size, float("nan"))
        where = f"{self._where(i)} (annotation of {self.paths[i]!r})"
        return image, label, _gray_tensor(_open(self.annotation_file(i), where), self.image_size, where=where)

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
        raw = self.metadata[i]["mask_path"]
        if not raw:
            return torch.zeros(self.image_size, dtype=torch.float32)
        where = f"{self.root / METADATA_NAME} (mask of {self.paths[i]!r})"
        path = _checked_file(self.root, self._real_root, _clean_path(raw, where), where, "mask")
        return (_gray_tensor(_open(path, where), self.image_size, Image.NEAREST, where) > 0.5).float()


class NonFaceDataset(Dataset):
    """Out-of-set images listed in ``root/nonface.csv`` (header with ``path``; e.g. ``kind``).

    Items are images, float32 ``(3, H, W)`` in [0, 1]; ``image_size`` as in :class:`CsvImageDataset`
    (None requires every image to have the size of the first). ``kinds`` holds the ``kind`` column
    when present; ``image_size`` is the ``(height, width)`` of the returned images.

    Raises:
        FileNotFoundError: missing CSV or image file. ValueError: bad header or row, a path listed
            twice, a symlinked image or one outside ``root``, no rows.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        image_size: int | Sequence[int] | None = None,
        *,
        csv_name: str = NONFACE_NAME,
    ) -> None:
        self.root, self.csv_path = Path(root), resolve_csv(root, csv_name)
        records = _read_header_csv(self.csv_path)
        if not records:
            raise ValueError(f"{self.csv_path}: no images listed")
        self.lines = [line for line, _ in records]
        self.paths = [record["path"] for _, record in records]
        self.kinds = [record.get("kind", "") for _, record in records]
        real_root = self.root.resolve()
        for line, path in zip(self.lines, self.paths, strict=True):
            _checked_file(self.root, real_root, path, f"{self.csv_path}, line {line}", "image file")
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
        return _rgb_tensor(img, self.image_size, where)
