"""The torch data sets over a CYBORG-layout folder: one split of faces, and the out-of-set images."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path, PurePosixPath

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
    _read_header_csv,
    read_csv,
)

__all__ = ["CsvImageDataset", "NonFaceDataset"]


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
