"""`imednet-assets bench`: ceiling vs SDK path vs this platform, side by side on one simulator."""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from imednet_assets.bench import destinations
from imednet_assets.bench.child import run_json
from imednet_assets.bench.paths import API_KEY, SECURITY_KEY

RECORDS_PER_SUBJECT_GUESS = 50
BENCH_STUDIES = 1
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Measurement:
    path: str
    records: int
    seconds: float
    peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--records", type=int, default=100_000, help="records in the study")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="simulator latency")
    parser.add_argument("--concurrency", type=int, default=8, help="client concurrency")
    parser.add_argument("--repeat", type=int, default=1, help="runs per path (median is kept)")
    parser.add_argument(
        "--scale-records",
        type=int,
        default=1_000_000,
        help="records of the memory-scaling run of this platform (0 skips it)",
    )
    parser.add_argument("--skip-sdk", action="store_true", help="leave out the SDK path")
    parser.add_argument(
        "--changed", type=float, default=0.01,
        help="share of records modified before the incremental refresh (0 skips it)",
    )
    parser.add_argument(
        "--destinations",
        default=",".join(b.destination for b in destinations.BENCHES),
        help="comma-separated destinations to benchmark from the lake ('' for none)",
    )
    parser.add_argument(
        "--ui-studies", type=int, default=100,
        help="small studies in the UI backfill benchmark (0 skips the UI benchmarks)",
    )
    parser.add_argument("--ui-subjects", type=int, default=40,
                        help="subjects of the one-study UI run (40: about 2,000 records)")
    parser.add_argument(
        "--scale-studies", type=int, default=6,
        help="studies of the scale-out backfill on one and two Celery workers (0 skips it)",
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")


def _run_path(
    path: str, base_url: str, study: str, concurrency: int, work_dir: Path | None = None
) -> Measurement:
    cmd = [
        sys.executable,
        "-m",
        "imednet_assets.bench.paths",
        path,
        base_url,
        study,
        "--concurrency",
        str(concurrency),
    ]
    if work_dir is not None:
        cmd += ["--work-dir", str(work_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"bench path {path!r} failed:\n{tail}")
    data = orjson.loads(done.stdout.strip().splitlines()[-1])
    return Measurement(data["path"], data["records"], data["seconds"], data["peak_rss_mb"])


def _run_incremental(base_url: str, study: str, args: argparse.Namespace,
                     with_destinations: bool) -> dict:
    extra = ["--destinations"] if with_destinations else []
    return run_json("imednet_assets.bench.incremental", base_url, study, "--changed",
                    str(args.changed), "--concurrency", str(args.concurrency), *extra,
                    what="incremental")


def incremental_table(runs: list[dict]) -> list[str]:
    """The incremental-refresh section of docs/benchmarks.md."""
    lines = [
        "Incremental refresh: a full refresh of the study (every entity, through "
        "`imednet_all_job`, checks left out), then records modified upstream, a change-sensor "
        "tick and the run it asks for (the entities that changed and the assets that read them: "
        "the incremental refresh), then as many records modified again and an incremental run "
        "of every asset (what the nightly reconcile and `imednet-assets refresh` run), then a "
        "tick with nothing changed. Targets: the incremental refresh into the lake and DuckDB "
        "at most 10% of the full refresh's time and at most 2% of its API requests; the idle "
        "tick at most one request per entity.",
        "",
        "| destinations | records | modified | full s | incremental s | time ratio "
        "| full requests | incremental requests | request ratio | assets materialized "
        "| tick that saw the change | every asset: s, requests | idle tick requests |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {', '.join(r['destinations'])} | {r['records']:,} | {r['modified']:,} "
            f"| {r['full_seconds']:.2f} | {r['incremental_seconds']:.2f} "
            f"| {r['incremental_seconds'] / r['full_seconds']:.1%} | {r['full_requests']:,} "
            f"| {r['incremental_requests']:,} "
            f"| {r['incremental_requests'] / r['full_requests']:.2%} "
            f"| {len(r['incremental_assets'])} of {r['assets']} "
            f"| {r['change_tick_requests']} requests "
            f"| {r['every_asset_seconds']:.2f} s "
            f"({r['every_asset_seconds'] / r['full_seconds']:.1%}), {r['every_asset_requests']} "
            f"| {r['tick_requests']} for {r['entities']} entities |"
        )
    lines.append("")
    for r in runs:
        slowest = r.get("slowest_steps", {}).get("incremental", {})
        steps = ", ".join(f"{step} {seconds:.2f} s" for step, seconds in slowest.items())
        lines.append(f"- slowest incremental steps ({', '.join(r['destinations'])}): {steps}; "
                     f"assets: {', '.join(r['incremental_assets'])}")
    return lines


def _median(runs: list[Measurement]) -> Measurement:
    ordered = sorted(runs, key=lambda m: m.seconds)
    middle = ordered[len(ordered) // 2]
    return Measurement(
        middle.path,
        middle.records,
        statistics.median(m.seconds for m in runs),
        max(m.peak_rss_mb for m in runs),
    )


def _simulated_study(records: int, latency_ms: float, seed: int):
    from imednet_assets.simulator import SimulatorConfig, SimulatorServer

    subjects = max(1, math.ceil(records / RECORDS_PER_SUBJECT_GUESS))
    config = SimulatorConfig(
        seed=seed,
        studies=BENCH_STUDIES,
        subjects=subjects,
        latency_ms=latency_ms,
        api_key=API_KEY,
        security_key=SECURITY_KEY,
    )
    return SimulatorServer(config, subprocess=True)


def _study_of(sim) -> tuple[str, int]:
    stats = sim.stats()
    study = sorted(stats["studies"])[0] if "studies" in stats else sorted(stats)[0]
    per_study = stats["studies"][study] if "studies" in stats else stats[study]
    return study, int(per_study["records"])


def _table(rows: list[Measurement], ceiling: Measurement, sdk: Measurement | None) -> list[str]:
    lines = [
        "| path | records | seconds | records/s | peak RSS (MB) | ratio to ceiling "
        "| ratio to SDK |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in rows:
        to_ceiling = m.seconds / ceiling.seconds if ceiling.seconds else float("nan")
        to_sdk = f"{sdk.seconds / m.seconds:.1f}x faster" if sdk and m.seconds else "-"
        lines.append(
            f"| {m.path} | {m.records:,} | {m.seconds:.2f} | {m.rate:,.0f} | {m.peak_rss_mb:,.0f} "
            f"| {to_ceiling:.2f}x | {to_sdk} |"
        )
    return lines


def run_bench(args: argparse.Namespace) -> int:
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with _simulated_study(args.records, args.latency_ms, args.seed) as sim:
        study, served = _study_of(sim)
        print(
            f"study {study}: {served:,} records, latency {args.latency_ms:g} ms/request, "
            f"concurrency {args.concurrency}"
        )
        paths = ["ceiling", "platform"] + ([] if args.skip_sdk else ["sdk"])
        results: dict[str, list[Measurement]] = {p: [] for p in paths}
        for _ in range(args.repeat):
            for path in paths:
                m = _run_path(path, sim.base_url, study, args.concurrency)
                print(
                    f"  {path:<9} {m.records:>10,} records {m.seconds:8.2f} s "
                    f"{m.peak_rss_mb:8.0f} MB"
                )
                results[path].append(m)
        incremental_lines: list[str] = []
        if args.changed:
            runs = []
            # every destination too, unless the destination benchmarks are switched off
            for with_destinations in (False, True)[: 2 if args.destinations else 1]:
                run = _run_incremental(sim.base_url, study, args, with_destinations)
                print(f"  incremental ({', '.join(run['destinations'])}): "
                      f"{run['incremental_seconds']:.2f} s vs full {run['full_seconds']:.2f} s, "
                      f"{run['incremental_requests']} vs {run['full_requests']} requests")
                runs.append(run)
            incremental_lines = ["", *incremental_table(runs)]
        wanted = [d for d in args.destinations.split(",") if d]
        destination_lines: list[str] = []
        if wanted:
            with tempfile.TemporaryDirectory(prefix="imednet-bench-lake-") as tmp:
                _run_path("lake", sim.base_url, study, args.concurrency, Path(tmp))
                measured_destinations = destinations.measure(
                    Path(tmp) / "lake", study, args.repeat, wanted
                )
            destination_lines = ["", *destinations.table(measured_destinations)]
    ui_lines: list[str] = []
    if args.ui_studies:
        from imednet_assets.bench import ui

        # one demo-sized study (2,000 records), then many small ones as one backfill
        ui_runs = [ui.run_measure(1, args.ui_subjects, args.latency_ms),
                   ui.run_measure(args.ui_studies, 2, args.latency_ms)]
        for r in ui_runs:
            print(f"  UI {r['launched_as']} of {r['studies']} studies: {r['ui_seconds']:.1f} s "
                  f"vs CLI {r['cli_seconds']:.1f} s")
        ui_lines = ["", *ui.ui_table(ui_runs)]
    scale_out_lines: list[str] = []
    if args.scale_studies:
        from imednet_assets.bench import scale

        scale_runs = [scale.run_measure(args.scale_studies, 6, workers) for workers in (1, 2)]
        for r in scale_runs:
            print(f"  scale-out on {r['workers']} worker(s): {r['seconds']:.1f} s")
        scale_out_lines = ["", *scale.scale_table(scale_runs)]
    measured = {p: _median(runs) for p, runs in results.items()}
    ceiling, platform_m, sdk = measured["ceiling"], measured["platform"], measured.get("sdk")
    lines = _table(list(measured.values()), ceiling, sdk)

    scale_lines: list[str] = []
    if args.scale_records:
        with _simulated_study(args.scale_records, args.latency_ms, args.seed) as sim:
            study_big, served_big = _study_of(sim)
            big = _run_path("platform", sim.base_url, study_big, args.concurrency)
        ratio = big.peak_rss_mb / platform_m.peak_rss_mb
        scale_lines = [
            "",
            "Memory scaling of this platform (target: peak RSS at the large study no more than "
            "1.5x the small one):",
            "",
            "| records | seconds | records/s | peak RSS (MB) |",
            "|---:|---:|---:|---:|",
            f"| {platform_m.records:,} | {platform_m.seconds:.2f} | {platform_m.rate:,.0f} "
            f"| {platform_m.peak_rss_mb:,.0f} |",
            f"| {big.records:,} | {big.seconds:.2f} | {big.rate:,.0f} | {big.peak_rss_mb:,.0f} |",
            "",
            f"RSS ratio large/small: {ratio:.2f}x",
        ]
    targets = [
        "",
        "Targets: this platform at least 10x faster than the SDK path and within 1.5x of the "
        "ceiling.",
    ]
    if sdk:
        targets.append(
            f"Reached: {sdk.seconds / platform_m.seconds:.1f}x the SDK path, "
            f"{platform_m.seconds / ceiling.seconds:.2f}x the ceiling's time."
        )
    header = [
        "# Benchmarks",
        "",
        f"Measured by `imednet-assets bench` (`make bench`) on {started}, {platform.machine()}, "
        f"Python {platform.python_version()}. Simulator latency {args.latency_ms:g} ms per "
        f"request, client concurrency {args.concurrency}, median of {args.repeat} run(s) per "
        "path, each path in its own process. Times vary with the machine's load; read the ratios.",
        "Each path's clock starts after its imports (and, for the platform, after the Dagster "
        "instance is made, as a deployment has one); the asset checks are not timed.",
        "",
        "- ceiling: raw concurrent fetch of every records page (500 per page), bodies discarded",
        "- platform: Dagster materialization of forms, variables and records into the Parquet lake,"
        " then `records_long` and the per-form tables into DuckDB",
        "- sdk: `imednet` SDK 0.5.0 `RecordMapper.dataframe` (sequential pages of 100) + DuckDB "
        "insert",
        "",
    ]
    text = "\n".join(
        header + lines + targets + scale_lines + incremental_lines + destination_lines
        + ui_lines + scale_out_lines
    ) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print()
    print(text)
    print(f"written to {args.output}")
    return 0
