"""The own-model chapter's stand-ins for a user's files: a CYBORG-style data folder and plain checkpoints.

The CYBORG authors (Boyd et al., WACV 2023; github.com/BoydAidan/CYBORG) keep their data as a
``Data/`` folder with one header-less CSV per split in ``csvs/`` — lines like
``test,Synthetic,/test/1_fake/stylegan1-0.5_aligned/000000/000170.png``, the path relative to the
image folder — and their models as ``final_model.pth`` = ``{"state_dict": ...}`` of a plain
torchvision classifier whose head is ``nn.Linear(..., 2)``, trained with ImageNet normalisation
done *outside* the model. :func:`write_cyborg_folder` rewrites a split of a data set in this
library's layout into that one, and :func:`fine_tune_plain` trains a plain torchvision model the
way those checkpoints were made, so that the chapter can show that they are read with no conversion.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path, PurePosixPath

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from salience_lib.data.layout import HEATMAP_DIR
from salience_lib.models.builders import IMAGENET_MEAN, IMAGENET_STD
from salience_lib.models.checkpoints import replace_head

__all__ = ["fine_tune_plain", "write_cyborg_folder"]

_LABEL_FOLDERS = {"Real": "0_real", "Synthetic": "1_fake"}


def _metadata(root: Path) -> list[dict[str, str]]:
    with open(root / "metadata.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_cyborg_folder(source: str | os.PathLike[str], dest: str | os.PathLike[str], split: str = "test",
                        limit: int | None = None) -> Path:  # fmt: skip
    """Copy one split of a generated data set into CYBORG's layout under ``dest``; return ``dest/csvs/<split>.csv``.

    Images go to ``dest/<split>/{0_real,1_fake}/<family>_aligned/000000/<file>`` (the generator's
    family names, e.g. ``iris``; real images as ``real_aligned``), human annotation maps to
    ``dest/heatmaps/`` under the image's file name, and the CSV lines are CYBORG's
    ``split,label,/path``. No metadata file is written: the shift groups must come from the folders.

    Args:
        source: a folder written by ``make-data`` (it has ``metadata.csv``).
        dest: the new folder (created; an existing one is replaced).
        split: which split to copy.
        limit: only the first ``limit`` images of the split.
    """
    source, dest = Path(source), Path(dest)
    rows = [row for row in _metadata(source) if row["split"] == split][:limit]
    if not rows:
        raise ValueError(f"{source / 'metadata.csv'}: no image of split {split!r}")
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "csvs").mkdir(parents=True)
    (dest / HEATMAP_DIR).mkdir()
    lines = []
    for row in rows:
        name = PurePosixPath(row["path"]).name
        relative = PurePosixPath(split, _LABEL_FOLDERS[row["label"]], f"{row['family']}_aligned", "000000", name)
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / row["path"], dest / relative)
        if row.get("heatmap_path"):
            shutil.copyfile(source / row["heatmap_path"], dest / HEATMAP_DIR / name)
        lines.append(f"{split},{row['label']},/{relative}\n")
    csv_path = dest / "csvs" / f"{split}.csv"
    csv_path.write_text("".join(lines), encoding="utf-8")
    return csv_path


def fine_tune_plain(arch: str, dataset: Dataset, *, steps: int = 60, batch_size: int = 32, lr: float = 1e-3,
                    seed: int = 0, device: str | torch.device = "cpu") -> nn.Module:  # fmt: skip
    """A plain torchvision ``arch`` with a 2-way head, trained from random init for ``steps`` Adam steps.

    Trained as the CYBORG authors trained theirs, with plain cross-entropy and ImageNet
    normalisation applied to the batch outside the model: the returned module is the bare
    torchvision classifier (its ``state_dict()`` has torchvision's own keys) and expects normalised
    input — exactly what ``load_checkpoint(..., normalize="imagenet")`` undoes. Deterministic for a
    seed on one device.

    Args:
        arch: a ``torchvision.models`` builder name, e.g. ``"resnet18"``.
        dataset: yields ``(image in [0, 1], label, ...)``.
        steps: optimiser steps (batches drawn with replacement by a seeded generator).
    """
    import torchvision

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(weights=None)
    replace_head(model, 2)
    model = model.to(device).train()
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    picks = torch.randint(len(dataset), (steps * batch_size,), generator=generator).tolist()
    loader = DataLoader(Subset(dataset, picks), batch_size=batch_size)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for images, labels, *_ in loader:
        images, labels = images.to(device), torch.as_tensor(labels, device=device)
        loss = nn.functional.cross_entropy(model((images - mean) / std), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()
