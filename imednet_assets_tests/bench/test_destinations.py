"""The destination section of the benchmark report: every path, every comparison, the verdicts."""

from __future__ import annotations

from imednet_assets.bench.destinations import (
    BENCHES,
    BenchPath,
    Comparison,
    DestinationBench,
    DestinationRun,
    median_run,
    table,
)


def run(path: str, rows: int, seconds: float) -> DestinationRun:
    return DestinationRun("graph", path, 1_000, rows, seconds, 300.0)


def test_table_lists_every_path_and_judges_each_comparison_by_rate() -> None:
    bench = DestinationBench(
        "graph", "FalkorDB", tuple(BenchPath(p, p) for p in ("ours", "seed", "other")),
        (Comparison("ours", "seed", 3.0), Comparison("ours", "other", 3.0)),
    )  # fmt: skip
    # ours 2,000 rows/s; seed 500 rows/s (4x: met); other 1,000 rows/s over fewer rows (2x: not)
    lines = table([(bench, [run("ours", 4_000, 2.0), run("seed", 4_000, 8.0),
                            run("other", 1_000, 1.0)])])  # fmt: skip
    assert "| graph | FalkorDB | seed | 1,000 | 4,000 | 8.00 | 500 | 300 |" in lines
    assert lines[-2:] == [
        "- graph: `ours` at 4.0x the rows/s of `seed` (target 3x: met)",
        "- graph: `ours` at 2.0x the rows/s of `other` (target 3x: NOT met)",
    ]


def test_median_keeps_the_middle_time_and_the_highest_memory() -> None:
    runs = [DestinationRun("sql", "copy", 10, 10, s, m) for s, m in ((3.0, 1), (1.0, 5), (2.0, 2))]
    assert median_run(runs) == DestinationRun("sql", "copy", 10, 10, 2.0, 5)


def test_every_comparison_names_paths_the_bench_runs() -> None:
    for bench in BENCHES:
        for c in bench.comparisons:
            assert {c.ours, c.baseline} <= {p.label for p in bench.paths}, bench.destination


def test_a_comparison_by_records_ignores_how_many_rows_each_path_writes() -> None:
    bench = DestinationBench("graph", "FalkorDB", (BenchPath("ours", "ours"),
                                                   BenchPath("seed", "seed")),
                             (Comparison("ours", "seed", 3.0, by="records"),))  # fmt: skip
    # same records in the same time; ours writes 3x the nodes: no speed-up by records
    lines = table([(bench, [run("ours", 3_000, 1.0), run("seed", 1_000, 1.0)])])
    assert lines[-1] == "- graph: `ours` at 1.0x the records/s of `seed` (target 3x: NOT met)"
