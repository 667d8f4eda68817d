"""The ``raysim`` command line. The tracer's commands (trace, replay, export) build on it."""

from __future__ import annotations

import argparse
import sys

import raysim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="raysim", description=__doc__)
    parser.add_argument("--version", action="version", version=f"raysim {raysim.__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
