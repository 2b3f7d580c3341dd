"""Command line: ``genemask pretrain --fasta my.fa ...``, ``genemask grid PARAMS.yaml [--jobs N]
[--dry-run] [--status] [--verify]`` and friends.

Each subcommand is a thin shell over a library function, so notebooks and scripts can call the
same code.
"""
from __future__ import annotations

import argparse
import sys


def _grid_needs() -> str | None:
    """Why ``genemask grid`` cannot run here, in one line (None when it can): it runs a checkout's
    notebooks and params files, and the workflow extra's packages."""
    from importlib.util import find_spec

    from . import paths

    if not paths.in_checkout():
        return (f"runs the notebooks/ and params/ of a genemask checkout, and this genemask is installed without one "
                f"({paths.ROOT}): clone the repository and run it there (pip install -e '.[workflow]')")
    missing = [name for name in ("snakemake", "papermill", "nbclient", "yaml") if find_spec(name) is None]
    if missing:
        return f"needs the workflow extra ({', '.join(missing)} missing): pip install -e '.[workflow]'"
    return None


def _grid(args: argparse.Namespace) -> int:
    needs = _grid_needs()
    if needs:
        print(f"genemask grid: {needs}", file=sys.stderr)
        return 2
    from .grid import GridError, migrate, migrate_keys, run_grid
    from .store import StoreError

    try:
        if args.migrate:
            migrate(args.params)
            return 0
        if args.migrate_keys:
            migrate_keys(args.params)
            return 0
        if args.verify:
            from .grid.verify import verify

            return 0 if all(o.equal for o in verify(args.params, stages=args.stage, sample=args.sample, dry_run=args.dry_run)) else 1
        cells = run_grid(args.params, jobs=args.jobs, dry_run=args.dry_run, status=args.status,
                         stages=args.stage or None, rerun_stale=args.rerun_stale, snakemake_args=args.snakemake)
    except (GridError, StoreError) as err:
        print(f"genemask grid: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"genemask grid: {err or 'interrupted'}; running cells were stopped", file=sys.stderr)
        return 130
    return 1 if any(c.status in ("failed", "blocked") for c in cells) else 0


def _demo(args: argparse.Namespace) -> int:
    from .genome import ensure_demo_genome
    from .tasks import ensure_demo_tasks

    print(ensure_demo_genome())
    print(ensure_demo_tasks())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="genemask", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--version", action="version", version=f"genemask {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("pretrain", add_help=False,
                   help="pretrain a k-mer BERT on a FASTA with any masking strategy into a Hugging Face checkpoint "
                        "with a model card (genemask pretrain --help: every option)")
    grid = sub.add_parser("grid", help="run a params file's notebook grid through Snakemake (cached, parallel)",
                          epilog="Arguments after -- go to snakemake, e.g. -- --executor slurm --profile profiles/slurm")
    grid.add_argument("params", help="params YAML, e.g. params/demo.yaml")
    grid.add_argument("--jobs", "-j", type=int, default=1, help="cells run in parallel (default 1)")
    grid.add_argument("--dry-run", action="store_true", help="check every parameter and reference, list every cell's state, run nothing")
    grid.add_argument("--status", action="store_true",
                      help="say of every cell: done and fresh, verified (older code, reproduced by a rerun), stale (made by other code than the notebook and library modules it runs now), or to run")
    grid.add_argument("--rerun-stale", action="store_true", help="also rerun the stale cells (default: keep them, reported as stale)")
    grid.add_argument("--stage", action="append", help="run only this stage's cells and what they need (repeatable)")
    grid.add_argument("--verify", action="store_true",
                      help="rerun stale collected cells (cheapest first) in scratch folders and compare with the committed "
                           "results: equal ones read verified, different ones stay stale with their differences shown")
    grid.add_argument("--sample", type=int, help="with --verify: rerun only the N cheapest stale cells of each stage")
    grid.add_argument("--migrate", action="store_true",
                      help="record provenance for results/<profile> cells collected without it, make their paths portable and compact long step logs")
    grid.add_argument("--migrate-keys", action="store_true",
                      help="re-key results/<profile> to the key of stage and parameters (no notebook code, no version): "
                           "folders, cells.csv rows and the keys their files name; idempotent")
    grid.set_defaults(func=_grid)
    demo = sub.add_parser("demo-data", help="generate the deterministic demo genome and demo tasks")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["pretrain"]:  # every option is the pretraining entry point's (python -m genemask.pretrain)
        from .pretrain import main as pretrain_main

        return pretrain_main(argv[1:], prog="genemask pretrain")
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    args = build_parser().parse_args(argv)
    args.snakemake = extra
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
