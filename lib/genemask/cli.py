"""Command line: ``genemask grid PARAMS.yaml [--jobs N] [--dry-run]`` and friends.

Each subcommand is a thin shell over a library function, so notebooks and scripts can call the
same code.
"""
from __future__ import annotations

import argparse
import sys


def _grid(args: argparse.Namespace) -> int:
    from .grid import GridError, run_grid

    try:
        cells = run_grid(args.params, jobs=args.jobs, dry_run=args.dry_run, stages=args.stage or None)
    except GridError as err:
        print(f"genemask grid: {err}", file=sys.stderr)
        return 2
    return 1 if any(c.status == "failed" for c in cells) else 0


def _demo(args: argparse.Namespace) -> int:
    from .genome import ensure_demo_genome
    from .tasks import ensure_demo_tasks

    print(ensure_demo_genome())
    print(ensure_demo_tasks())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genemask", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    grid = sub.add_parser("grid", help="run a params file's notebook grid with papermill (cached, parallel)")
    grid.add_argument("params", help="params YAML, e.g. params/demo.yaml")
    grid.add_argument("--jobs", "-j", type=int, default=1, help="cells run in parallel (default 1)")
    grid.add_argument("--dry-run", action="store_true", help="check parameters and list the cells, run nothing")
    grid.add_argument("--stage", action="append", help="run only this stage (repeatable)")
    grid.set_defaults(func=_grid)
    demo = sub.add_parser("demo-data", help="generate the deterministic demo genome and demo tasks")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
