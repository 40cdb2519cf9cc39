"""`imednet-assets` command line: simulate, demo, refresh, bench, dev, worker, scale-demo,
cut-export, cut-verify."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _simulate(args: argparse.Namespace) -> int:
    from imednet_assets.simulator.server import run_from_args

    run_from_args(args)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from imednet_assets.demo import run_demo

    return run_demo(
        studies=args.studies, subjects=args.subjects, seed=args.seed,
        local_servers=args.local_servers,
    )  # fmt: skip


def _refresh(args: argparse.Namespace) -> int:
    from imednet_assets.refresh import run_refresh

    return run_refresh(full=args.full)


def _bench(args: argparse.Namespace) -> int:
    from imednet_assets.bench.runner import run_bench

    return run_bench(args)


def _dev(args: argparse.Namespace) -> int:
    from imednet_assets.demo import run_dev

    return run_dev(port=args.port)


def _worker(args: argparse.Namespace) -> int:
    from imednet_assets.workers import run_worker

    return run_worker(args.name, holds_local_files=not args.network_only,
                      concurrency=args.concurrency)


def _scale_demo(args: argparse.Namespace) -> int:
    from imednet_assets.scale_demo import run_scale_demo

    return run_scale_demo(studies=args.studies, subjects=args.subjects, workers=args.workers)


def _cut_export(args: argparse.Namespace) -> int:
    from imednet_assets.defs.cuts.commands import run_cut_export

    return run_cut_export(args.cut, args.study, args.to)


def _cut_verify(args: argparse.Namespace) -> int:
    from imednet_assets.defs.cuts.commands import run_cut_verify

    return run_cut_verify(args.cut)


def build_parser() -> argparse.ArgumentParser:
    from imednet_assets.bench.runner import add_bench_arguments
    from imednet_assets.simulator.server import add_simulate_arguments

    parser = argparse.ArgumentParser(prog="imednet-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    simulate = sub.add_parser("simulate", help="serve the built-in iMednet API simulator")
    add_simulate_arguments(simulate)
    simulate.set_defaults(func=_simulate)

    demo = sub.add_parser(
        "demo",
        help="materialize every asset for every study (simulator unless IMEDNET_BASE_URL is set)",
    )
    demo.add_argument("--studies", type=int, default=3, help="simulated studies")
    demo.add_argument("--subjects", type=int, default=40, help="simulated subjects per study")
    demo.add_argument("--seed", type=int, default=7, help="simulator seed")
    demo.add_argument(
        "--local-servers",
        action="store_true",
        help="also start a local server for every destination not configured in the environment "
        "(MongoDB: nx-27017, Snowflake: fakesnow, graph: FalkorDB, SQL: the local PostgreSQL) "
        "and materialize them all",
    )
    demo.set_defaults(func=_demo)

    refresh = sub.add_parser(
        "refresh",
        help="bring every study under the data dir up to date with the API, incrementally "
        "(the job the change sensor launches), into every configured destination",
    )
    refresh.add_argument("--full", action="store_true",
                         help="re-read every study whole instead of only what changed")
    refresh.set_defaults(func=_refresh)

    bench = sub.add_parser("bench", help="benchmark against the ceiling and the SDK path")
    add_bench_arguments(bench)
    bench.set_defaults(func=_bench)

    dev = sub.add_parser("dev", help="Dagster UI with the simulator running")
    dev.add_argument("--port", type=int, default=3000, help="Dagster UI port")
    dev.set_defaults(func=_dev)

    worker = sub.add_parser(
        "worker", help="a Celery worker for runs on IMEDNET_ASSETS_EXECUTOR=celery")
    worker.add_argument("--name", default="imednet", help="worker name (name@host)")
    worker.add_argument("--concurrency", type=int, default=1, help="steps at a time")
    worker.add_argument(
        "--network-only", action="store_true",
        help="serve only the default queue: this machine does not hold the DuckDB file, the "
        "bundles or a local lake")
    worker.set_defaults(func=_worker)

    scale = sub.add_parser(
        "scale-demo",
        help="on loopback: S3-compatible lake, PostgreSQL instance, webserver, daemon and Celery "
        "workers; backfill simulated studies and compare with a single-machine demo")
    scale.add_argument("--studies", type=int, default=6, help="simulated studies")
    scale.add_argument("--subjects", type=int, default=6, help="simulated subjects per study")
    scale.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    scale.set_defaults(func=_scale_demo)

    cut_export = sub.add_parser(
        "cut-export", help="write a study's DuckDB file, bundles, statistical and ODM files from "
        "a data cut (<data dir>/cuts/NAME) instead of the live lake")
    cut_export.add_argument("--cut", required=True, help="data cut name")
    cut_export.add_argument("--study", required=True, help="the cut's study key")
    cut_export.add_argument("--to", required=True, type=Path, help="a new or empty folder")
    cut_export.set_defaults(func=_cut_export)

    cut_verify = sub.add_parser(
        "cut-verify", help="recompute every SHA-256 of a data cut against its manifest")
    cut_verify.add_argument("--cut", required=True, help="data cut name")
    cut_verify.set_defaults(func=_cut_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    from imednet_assets.client.errors import ImednetError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ImednetError as err:
        # the API refused or could not be reached: one clear line, not a stack trace
        print(f"imednet-assets {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
