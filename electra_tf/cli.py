"""What every command-line binary shares: how bad flags end.

absl's `app.run` reports a flag it cannot parse (an unknown flag, `--num_gpus=two`) with a
usage dump and exit status 1, and hands words it does not recognise (`--deterministic false`)
to `main` as positional arguments, where they are easily ignored. Every binary here instead
ends both with one line on stderr and exit status 2, the status of every other bad input.
"""

from __future__ import annotations

import sys
from typing import Callable

from absl import app, flags

BAD_INPUT_EXIT = 2


def flags_parser(prog: str) -> Callable[[list], list]:
    """An `app.run` flags parser that exits 2 with one line on a flag error or a stray word."""

    def parse(argv: list) -> list:
        try:
            rest = flags.FLAGS(argv)
        except flags.Error as e:
            print(f"{prog}: error: {e} (see --helpshort)", file=sys.stderr)
            sys.exit(BAD_INPUT_EXIT)
        if len(rest) > 1:
            print(f"{prog}: error: unexpected argument {rest[1]!r}; flags take the form "
                  "--name=value (booleans: --name or --noname; quote globs)", file=sys.stderr)
            sys.exit(BAD_INPUT_EXIT)
        return rest

    return parse


def run(main: Callable, prog: str) -> None:
    """`app.run(main)` with `flags_parser(prog)`; Ctrl-C before a binary's own handler is
    installed (e.g. while TensorFlow loads) ends with one line and exit status 130, not a
    traceback. Nothing is lost: every binary publishes by renaming, so a rerun continues."""
    try:
        app.run(main, flags_parser=flags_parser(prog))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (Ctrl-C); run the same command again to continue",
              file=sys.stderr)
        sys.exit(130)
