#!/usr/bin/env bash
# `pip install .` into a fresh virtualenv (no pins, no editable install, not the book's .venv), then
# the installed library and its `salience` console script on two plain torchvision checkpoints saved
# the way the CYBORG authors save theirs ({"state_dict": ...}): the path a user takes in their own
# environment. Runs outside the source tree so that the installed package, not ./salience_lib, is used.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$repo/_build/install-check}"
rm -rf "$work" && mkdir -p "$work"
# setuptools reuses build/lib: a module deleted from the source would otherwise still be installed.
rm -rf "$repo/build"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "$repo" 2>&1 | grep -v "^WARNING: Location" || true
cd "$work"
bin="$work/venv/bin"
"$bin/salience" --help > /dev/null
"$bin/salience" make-data --out data --n 24 --size 32 --seed 0 --quiet
"$bin/python" - <<'PY'
import csv
import pathlib

import torch
import torchvision

import salience_lib

here = pathlib.Path.cwd()
assert "site-packages" in salience_lib.__file__, f"imported the source tree, not the install: {salience_lib.__file__}"
rows = []
for seed in (0, 1):
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=2)
    torch.save({"state_dict": model.state_dict()}, here / f"xent_{seed}.pth")
    rows.append({"name": f"xent/{seed}", "arch": "resnet18", "path": f"xent_{seed}.pth", "image_size": "32"})
with open(here / "models.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=["name", "arch", "path", "image_size"])
    writer.writeheader()
    writer.writerows(rows)
models = {r["name"]: salience_lib.load_checkpoint(r["path"], "resnet18", image_size=32) for r in rows}
result = salience_lib.evaluate(models, "data", limit=6, batch_size=6, map_size=16, progress=False)
assert set(result["models"]) == {"xent/0", "xent/1"}, result["models"].keys()
assert "stability" in result["recipes"]["xent"], result["recipes"]["xent"].keys()
print("install-check: evaluate() ok,", len(result["models"]), "models")
PY
"$bin/salience" report --data data --models models.csv --out report.json --limit 6 --batch-size 6 --map-size 16 --no-progress
test -s report.json && test -s report.csv
echo "install-check: pip install . gives a working library and CLI ($work)"
