"""Destination benchmarks: the same study from one lake into every destination, each path in its
own process against a real server on loopback, next to the approach it replaces.

Each destination's module (`imednet_assets.bench.<destination>`) runs as
`python -m imednet_assets.bench.<destination> LAKE_ROOT STUDY --path NAME`, starts its own server,
and prints one JSON line: path, records, rows (rows, documents or nodes written), seconds and
peak RSS.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson


@dataclass(frozen=True)
class Comparison:
    """Our path against the approach it replaces, by rate, with the issue's target if any.

    `by="records"` compares records/s: for the graph, where our path writes more nodes and
    relationships per record than the seed's, rows/s would flatter ours.
    """

    ours: str
    baseline: str
    target: float | None = None
    by: str = "rows"


@dataclass(frozen=True)
class BenchPath:
    """One measured run: the module's `--path` with extra arguments, shown as `label`."""

    label: str
    path: str
    args: tuple[str, ...] = ()


def _paths(*names: str) -> tuple[BenchPath, ...]:
    return tuple(BenchPath(name, name) for name in names)


# The seed's graph Cypher has no indexes, so it slows down as the graph grows: a whole 100k study
# would take it many minutes. Both graph paths load the same first records; ours also loads all.
GRAPH_LIMIT = ("--limit", "20000")


@dataclass(frozen=True)
class DestinationBench:
    destination: str
    server: str
    paths: tuple[BenchPath, ...]
    comparisons: tuple[Comparison, ...] = ()


BENCHES: tuple[DestinationBench, ...] = (
    DestinationBench(
        "graph",
        "FalkorDB (native protocol)",
        (
            BenchPath("ours (first 20,000)", "ours", GRAPH_LIMIT),
            BenchPath("seed (first 20,000)", "seed", GRAPH_LIMIT),
            BenchPath("ours (whole study)", "ours"),
        ),
        (Comparison("ours (first 20,000)", "seed (first 20,000)", 3.0, by="records"),),
    ),
    DestinationBench(
        "mongodb",
        "nx-27017",
        _paths("ours", "seed", "ours-replay", "seed-replay"),
        (Comparison("ours", "seed", 1.5), Comparison("ours-replay", "seed-replay")),
    ),
    DestinationBench("snowflake", "fakesnow server", _paths("ours")),
    DestinationBench(
        "sql", "PostgreSQL 127.0.0.1", _paths("copy", "rows"), (Comparison("copy", "rows"),)
    ),
    # issue 9: the bundles at least 3x faster than the plain writers, byte for byte the same files
    DestinationBench(
        "bundles", "files (no server)", _paths("ours", "plain"), (Comparison("ours", "plain", 3.0),)
    ),
    # issue 11: SAS transport, SPSS and Stata files of the study (seconds and peak RSS)
    DestinationBench("statistical", "files (no server)", _paths("ours")),
    # issue 11: the study's CDISC ODM Snapshot and Transactional files (rows: FormData written)
    DestinationBench("odm", "files (no server)", _paths("ours")),
)


@dataclass(frozen=True)
class DestinationRun:
    destination: str
    path: str
    records: int
    rows: int
    seconds: float
    peak_rss_mb: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def rate(self, by: str) -> float:
        """Records or rows per second."""
        count = self.records if by == "records" else self.rows
        return count / self.seconds if self.seconds else 0.0


def run_path(
    bench: DestinationBench, path: BenchPath, lake_root: Path, study: str
) -> DestinationRun:
    cmd = [sys.executable, "-m", f"imednet_assets.bench.{bench.destination}", str(lake_root),
           study, "--path", path.path, *path.args]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{bench.destination} bench path {path.label!r} failed:\n{tail}")
    data = orjson.loads(done.stdout.strip().splitlines()[-1])
    return DestinationRun(
        bench.destination, path.label, int(data["records"]),
        int(data.get("rows", data["records"])), float(data["seconds"]),
        float(data["peak_rss_mb"]),
    )  # fmt: skip


def median_run(runs: list[DestinationRun]) -> DestinationRun:
    middle = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    return DestinationRun(
        middle.destination, middle.path, middle.records, middle.rows,
        statistics.median(r.seconds for r in runs), max(r.peak_rss_mb for r in runs),
    )  # fmt: skip


def measure(lake_root: Path, study: str, repeat: int, only: list[str] | None = None
            ) -> list[tuple[DestinationBench, list[DestinationRun]]]:
    """Every path of every destination (or of `only`), median of `repeat` runs each."""
    measured = []
    for bench in BENCHES:
        if only is not None and bench.destination not in only:
            continue
        runs = []
        for path in bench.paths:
            per_path = [run_path(bench, path, lake_root, study) for _ in range(repeat)]
            m = median_run(per_path)
            print(f"  {bench.destination:<9} {path.label:<20} {m.rows:>10,} rows "
                  f"{m.seconds:8.2f} s {m.peak_rss_mb:8.0f} MB")  # fmt: skip
            runs.append(m)
        measured.append((bench, runs))
    return measured


def table(measured: list[tuple[DestinationBench, list[DestinationRun]]]) -> list[str]:
    """The markdown section: one row per destination and path, then each comparison."""
    lines = [
        "## Destinations",
        "",
        "The same study, from the lake written above, into each destination's real server on "
        "loopback. Rows are what the path wrote (table rows, documents, or nodes plus "
        "relationships); comparisons are by rows/s unless they say records/s. Each "
        "destination's module says what its paths do "
        "(`python -m imednet_assets.bench.<destination> --help`).",
        "",
        "| destination | server | path | records | rows | seconds | rows/s | peak RSS (MB) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for bench, runs in measured:
        by_path = {run.path: run for run in runs}
        for run in runs:
            lines.append(
                f"| {bench.destination} | {bench.server} | {run.path} | {run.records:,} "
                f"| {run.rows:,} | {run.seconds:.2f} | {run.rows_per_s:,.0f} "
                f"| {run.peak_rss_mb:,.0f} |"
            )
        for c in bench.comparisons:
            ours, base = by_path[c.ours], by_path[c.baseline]
            base_rate = base.rate(c.by)
            reached = ours.rate(c.by) / base_rate if base_rate else float("nan")
            goal = "" if c.target is None else (
                f" (target {c.target:g}x: {'met' if reached >= c.target else 'NOT met'})"
            )
            verdicts.append(f"- {bench.destination}: `{c.ours}` at {reached:.1f}x the {c.by}/s of "
                            f"`{c.baseline}`{goal}")  # fmt: skip
    return lines + ([""] + verdicts if verdicts else [])
