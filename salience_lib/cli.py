"""Command line: ``python -m salience_lib {make-data,train,report,evaluate} ...``.

Each subcommand imports its module lazily so that ``--help`` is instant and a missing optional
dependency of one command does not break the others.

Every user error — a bad flag or value, a missing, corrupt or truncated file, a full disk, a locked
``--out`` — prints one line ``python -m salience_lib COMMAND: error: ...`` naming the file, flag or
value, and exits with status 2; ``--debug`` prints the traceback first. An unexpected error (a bug)
also prints one line, and exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence

# OpenMP spin-waiting on a busy 2-core machine made training ~30x slower (SPEC §5); must be set
# before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


PROG = "python -m salience_lib"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``PROG COMMAND: error: ...``), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _at_least(low: int | float, kind: type = int) -> Callable[[str], int | float]:
    """An argparse ``type``: a number of ``kind`` that is at least ``low``."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            kind_name = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind_name}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _add_debug(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")


def _add_make_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-data",
        help="generate the synthetic-face data set in CYBORG's layout",
        description="Train n images; val n/6, test n/3 (seen + unseen families), non-face n/12.",
    )
    p.add_argument("--out", required=True, help="output folder, e.g. data/faces64")
    p.add_argument("--n", type=_at_least(1), default=6000, help="number of training images (other splits scale)")
    p.add_argument("--size", type=_at_least(16), default=64, help="image side in pixels (>= 16)")
    p.add_argument("--seed", type=_at_least(0), default=0)
    p.add_argument("--workers", type=_at_least(1), default=1, help="processes (output is identical for any number)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument(
        "--checker-amplitude",
        type=_at_least(0.0, float),
        help="period-2 checkerboard in artifact regions, the signature shared by all families (default 0.04)",
    )
    p.add_argument(
        "--shortcut-amplitude", type=_at_least(0.0, float), help="striped corner stamp, the shortcut cue (default 0.10)"
    )
    p.add_argument(
        "--artifact-strength", type=_at_least(0.0, float), help="visibility of each family's own artifact (default 1)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_debug(p)
    p.set_defaults(func=_run_make_data)


def _run_make_data(args: argparse.Namespace) -> int:
    from salience_lib.data import synthetic

    synthetic.main_make_data(args)
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    from salience_lib.training.config import CHOICES, TrainConfig

    d = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train models (one per seed) with the xent or cyborg loss",
        description="Train one model per seed; complete runs with the same recipe are reused, "
        "interrupted runs resume from their last finished epoch. Unset options take the quick "
        "profile's defaults (salience_lib.training.TrainConfig); --optimizer paper uses the CYBORG "
        "authors' SGD recipe instead (with --epochs 50 --batch-size 20 for their whole schedule).",
    )
    p.add_argument("--data", required=True, help="CYBORG-layout data folder")
    p.add_argument(
        "--loss",
        required=True,
        choices=CHOICES["loss"],
        help="xent; cyborg (the authors' loss: CAM of the predicted class at their feature layer vs the "
        "PIL-bilinear human map, both min-max normalised); cyborg_pooled (the earlier variant: true "
        "class, pooled features, area-pooled map)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--arch", default=d.arch, help="small_cnn or a torchvision classifier name")
    p.add_argument("--out", default="runs", help="folder for checkpoints")
    p.add_argument("--epochs", type=int, help=f"default {d.epochs}")
    p.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {d.lr:g})")
    p.add_argument("--weight-decay", type=float, help=f"default {d.weight_decay:g}")
    p.add_argument(
        "--optimizer",
        choices=CHOICES["optimizer"],
        help=f"default {d.optimizer}; paper: SGD lr 0.005, momentum 0.9, weight decay 1e-6, lr x 0.1 every "
        "12 epochs, no flips (the CYBORG authors')",
    )
    p.add_argument("--schedule", choices=CHOICES["schedule"], help=f"default {d.schedule}")
    p.add_argument("--alpha", type=float, help=f"CE weight of the CYBORG loss (default {d.alpha:g})")
    p.add_argument("--image-size", type=int, help="resize images to this side (default: native size)")
    p.add_argument("--weights", help="local backbone state_dict file, e.g. ImageNet weights (never downloaded)")
    p.add_argument("--device", help=f"{d.device} (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--amp", choices=CHOICES["amp"], help=f"autocast dtype (default {d.amp})")
    p.add_argument(
        "--no-channels-last", dest="channels_last", action="store_false", default=None, help="use NCHW tensors"
    )
    p.add_argument("--num-workers", type=int, help=f"DataLoader workers (default {d.num_workers})")
    p.add_argument("--threads", type=_at_least(1), help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_debug(p)
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from salience_lib import training

    training.main_train(args)
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    from salience_lib.engine.settings import MEASURES, SPLITS, EngineSettings
    from salience_lib.protocol import PROTOCOLS
    from salience_lib.runtime.device import AMP_DTYPES
    from salience_lib.similarity import SIMILARITIES

    defaults = EngineSettings()
    p = sub.add_parser(
        "report",
        help="all five measures for every checkpoint on a data set -> JSON + CSV",
        description="Stream a CYBORG-layout split through the five measures for every complete run; "
        "write one JSON and a flat CSV (next to it). Finished models are cached in <out>.cache/ so an "
        "interrupted report resumes; a changed setting, data file (CSV, image, heatmap) or checkpoint "
        "recomputes. Under torchrun the data are sharded "
        "across processes and rank 0 writes.",
    )
    p.add_argument("--data", required=True, help="CYBORG-layout data folder")
    p.add_argument("--runs", help="folder of runs (every complete checkpoint in its sub-folders)")
    p.add_argument("--run", action="append", help="one run folder (repeatable; replaces --runs)")
    p.add_argument(
        "--models",
        help="CSV of checkpoints trained anywhere, header name,arch,path[,normalize,image_size,num_classes] "
        "(name = RECIPE/SEED; runs of one RECIPE are compared by stability)",
    )
    p.add_argument("--out", required=True, help="JSON file to write, e.g. reports/test.json (CSV alongside)")
    p.add_argument("--csv", help="the data set's CSV (absolute or relative to --data; default dataset.csv)")
    p.add_argument("--split", default=defaults.split, choices=SPLITS)
    p.add_argument("--similarity", default=defaults.similarity, choices=list(SIMILARITIES))
    p.add_argument(
        "--protocol",
        default=defaults.protocol,
        choices=list(PROTOCOLS),
        help="paper (default): the authors' steps; refined: ours (see salience_lib.protocol)",
    )
    p.add_argument("--measures", nargs="+", choices=MEASURES, help="run only these measures (default: all five)")
    p.add_argument("--map-size", type=int, help="upsample Grad-CAM maps to this side first (default: native)")
    p.add_argument("--image-size", type=int, help="resize images (default: the runs' training size)")
    p.add_argument("--device", default=defaults.device, help="auto (default), cpu, cuda or cuda:<i>")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--amp", default=defaults.amp, choices=list(AMP_DTYPES), help="autocast dtype of Grad-CAM")
    p.add_argument("--limit", type=int, help="only the first N images (of the split and the non-face set)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--seed", type=int, default=defaults.seed, help="salt-and-pepper noise and random maps (per image)")
    p.add_argument(
        "--in-set-groups",
        nargs="+",
        default=list(defaults.in_set_groups),
        help="metadata groups whose mean map is the in-set reference for distribution shift",
    )
    p.add_argument("--threads", type=_at_least(1), help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_debug(p)
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from salience_lib import report

    report.main_report(args)
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="XENT vs CYBORG on a generated data set: accuracy, artifact masks, annotations -> JSON",
        description="Accuracy on seen/unseen families and cue-conflict images, salience entropy, mass in the "
        "artifact mask, pointing game, agreement with annotations and cross-run stability for every run "
        "trained on DIR; per-recipe means with 95%% CIs over seeds and Mann-Whitney p-values.",
    )
    p.add_argument("--data", required=True, help="the generated data folder the runs were trained on")
    p.add_argument("--runs", required=True, help="folder of runs")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=_at_least(1), default=1, help="torch CPU threads")
    _add_debug(p)
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from salience_lib import evaluation

    print(evaluation.main_evaluate(args))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_make_data(sub)
    _add_train(sub)
    _add_report(sub)
    _add_evaluate(sub)
    return parser


def _user_error(err: BaseException) -> bool:
    """Whether ``err`` is bad input (a value, a file, a lock), not a bug."""
    from salience_lib.engine.settings import SettingsError
    from salience_lib.runtime.lock import LockError

    return isinstance(err, ValueError | OSError | SettingsError | LockError)


def error_line(err: BaseException) -> str:
    """One line for ``err``: its message with line breaks folded; an ``OSError`` as ``reason: PATH``.

    A full disk reads ``no space left on device: /path/report.json``.
    """
    if isinstance(err, OSError) and err.errno is not None and err.filename is not None:
        reason = err.strerror or os.strerror(err.errno)
        text = f"{reason[:1].lower()}{reason[1:]}: {err.filename}"
    else:
        text = str(err) or type(err).__name__
        if isinstance(err, KeyError | IndexError) or not _user_error(err):
            text = f"{type(err).__name__}: {text}"
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as err:  # one line per error; the traceback only with --debug
        if getattr(args, "debug", False):
            traceback.print_exc()
        line = error_line(err)
        if _user_error(err):
            print(f"{PROG} {args.command}: error: {line}", file=sys.stderr)
            return 2
        print(
            f"{PROG} {args.command}: error: {line} (unexpected; rerun with --debug for the traceback)", file=sys.stderr
        )
        return 1
