"""turn 1.0's ``turn`` console script (``turn.console.main``)::

    turn follow [RESOURCE ...]   print queue activity
    turn lock [RESOURCE ...]     lock resources until Ctrl-C
    turn status [RESOURCE ...]   print queue details (a summary with none)
    turn reset [RESOURCE ...]    bump and reset idle queues

with --host, --port, --db and --password, as turn 1.0's."""

import argparse
from typing import Any, List, Optional

from . import tools

__all__ = ["command", "get_parser", "main"]


def command(command: str, resources: List[str], *args: Any, **kwargs: Any) -> Any:
    return getattr(tools, command)(resources, *args, **kwargs)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(formatter_class=argparse.RawTextHelpFormatter,
                                     description=__doc__)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", default=6379, type=int)
    parser.add_argument("--db", default=0, type=int)
    parser.add_argument("--password")
    parser.add_argument("command", choices=("follow", "lock", "reset", "status"))
    parser.add_argument("resources", nargs="*", metavar="RESOURCE")
    return parser


def main(argv: Optional[List[str]] = None) -> Any:
    """Runs the command of `argv` (default: the command line)."""
    return command(**vars(get_parser().parse_args(argv)))
