"""The `zquant` console script: thin commands over the layers (no logic of its own)."""

import argparse
import sys

from zquant_pipelines import demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zquant", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo", help="sync the most recent trading days into embedded storage (make run)"
    )
    demo_parser.add_argument("--days", type=int, default=demo.DEFAULT_TRADING_DAYS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        demo.main(args.days)
    return 0


if __name__ == "__main__":
    sys.exit(main())
