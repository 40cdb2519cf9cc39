"""The scale-out backfill on one Celery worker and on two: seconds from the GraphQL launch to the
backfill's end, with the ratio. Each measure starts its own stack (`scale_demo.scale_stack`).

Usage: python -m imednet_assets.bench.scale --studies 6 --subjects 6 --workers 1  (one JSON line)
"""

from __future__ import annotations

import argparse
import sys

import orjson

from imednet_assets.bench.child import run_json


def measure(studies: int, subjects: int, workers: int) -> dict:
    from imednet_assets.scale_demo import backfill, scale_stack

    with scale_stack(studies, subjects) as stack:
        report = backfill(stack.data, stack.env, stack.studies, workers)
    return {"studies": studies, "subjects": subjects, "workers": workers,
            "status": report.status, "seconds": report.seconds,
            "failed_runs": report.failed_runs,
            "steps_by_worker": {w: len(s) for w, s in report.steps_by_worker.items()}}


def run_measure(studies: int, subjects: int, workers: int) -> dict:
    """`measure` in its own process (it starts servers and sets the environment)."""
    return run_json("imednet_assets.bench.scale", "--studies", str(studies), "--subjects",
                    str(subjects), "--workers", str(workers), what="scale")


def scale_table(runs: list[dict]) -> list[str]:
    """The scale-out section of docs/benchmarks.md."""
    one = next(r for r in runs if r["workers"] == 1)
    lines = [
        "Scale-out (`make scale-demo`'s stack on loopback: lake on moto's S3 server, PostgreSQL "
        "instance, `dagster dev`, Celery workers over RabbitMQ): one backfill of every study "
        "launched through GraphQL, timed from the launch to the backfill's end.",
        "",
        "| studies | subjects each | Celery workers | seconds | vs one worker | steps per worker "
        "| status |",
        "|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in runs:
        steps = ", ".join(f"{w.split('@')[0]} {n}" for w, n in r["steps_by_worker"].items())
        lines.append(
            f"| {r['studies']} | {r['subjects']} | {r['workers']} | {r['seconds']:.1f} "
            f"| {one['seconds'] / r['seconds']:.2f}x | {steps} | {r['status']} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=6)
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    print(orjson.dumps(measure(args.studies, args.subjects, args.workers)).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
