"""The ``aioxdp`` command.

Errors are one line on stderr that says what to do, and exit status 2,
as iputils' ping does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from aioxdp import __version__
from aioxdp.errors import XDPError

EXIT_OK = 0
EXIT_ERROR = 2


def _demo(args: argparse.Namespace) -> int:
    from aioxdp.demo import run_demo

    return run_demo(out=sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aioxdp", description="asyncio packet I/O on AF_XDP sockets"
    )
    parser.add_argument("--version", action="version", version=f"aioxdp {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what libbpf and aioxdp do"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="make a lab of two namespaces and show aioxdp working in it")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="aioxdp: %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except XDPError as exc:
        print(f"aioxdp: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
