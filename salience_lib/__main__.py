"""``python -m salience_lib``: the command line (see :mod:`salience_lib.cli`)."""

from salience_lib.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
