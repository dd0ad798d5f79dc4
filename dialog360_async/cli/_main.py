"""The ``dialog360`` command-line tool (also ``python -m dialog360_async``).

Sends one message, manages the blocklist, runs a resumable broadcast from a JSONL or CSV file,
receives its status webhooks into the broadcast store and reports what became of its messages,
and runs an offline demo broadcast against the bundled fake server. Expected failures end in
one ``dialog360: ...`` line on stderr: exit 1 for API and file errors, 2 for bad usage or input,
3 for a broadcast with a halted channel, 130 after Ctrl-C. The API key is never printed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..errors import Dialog360Error, ValidationError
from ._commands import PROG, say
from ._input import InputError, UsageError
from ._parser import GLOBAL_DEFAULTS, build_parser, option_names

__all__ = ["main"]

_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dialog360`` command line; returns the exit status.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if args.command == "fake-server":
            from ..testing.__main__ import main as serve

            return serve(extra, prog=f"{PROG} fake-server")
        if extra:
            parser.error(f"unrecognized arguments: {option_names(extra)}")
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        for name, value in GLOBAL_DEFAULTS.items():
            if not hasattr(args, name):
                setattr(args, name, value)
    except SystemExit as exc:  # argparse exits after --help, --version or a usage error
        return exc.code if isinstance(exc.code, int) else 2
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        say("interrupted")
        return _INTERRUPTED
    except (UsageError, InputError, ValidationError) as exc:
        say(exc)
        return 2
    except (Dialog360Error, OSError) as exc:
        say(exc)
        return 1
    return code
