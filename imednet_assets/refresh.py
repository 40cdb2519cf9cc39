"""`imednet-assets refresh`: bring every study already held under the data dir up to date.

Runs the same job the change sensor launches (`imednet_all_job`, tagged `imednet/mode`), one run
per study, into every configured destination, then prints per study and table what changed and
the watermark before and after. Exit status 1 when any step or check failed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from imednet_assets import settings
from imednet_assets.defs.lake.slice import NULL_PARTITION, STUDY_COLUMN
from imednet_assets.defs.modes import FULL, INCREMENTAL, mode_tags
from imednet_assets.demo import api_source, prepare_dagster_home, run_study

#: The lake entity whose slices tell which studies the data dir holds.
STUDIES_ENTITY = "studies"


def known_studies(lake: Path, instance_studies: list[str]) -> list[str]:
    """Studies with a slice in the lake, plus the instance's study partitions."""
    found = set(instance_studies)
    folder = lake / STUDIES_ENTITY
    prefix = f"{STUDY_COLUMN}="
    if folder.is_dir():
        for entry in folder.iterdir():
            name = entry.name
            if entry.is_dir() and name.startswith(prefix) and name != prefix + NULL_PARTITION:
                found.add(unquote(name.removeprefix(prefix)))
    return sorted(found)


def change_rows(result: Any) -> list[tuple[str, str, str]]:
    """(asset, what changed, watermark before -> after) of every materialization of a run."""
    rows = []
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        meta = {k: v.value for k, v in materialization.metadata.items()}
        mode = meta.get("mode", "-")
        counts = ", ".join(
            f"{name.removeprefix('rows_')} {meta[name]:,}"
            for name in ("rows_inserted", "rows_updated", "rows_deleted")
            if isinstance(meta.get(name), int)
        )
        marks = ""
        if "watermark_after" in meta:
            marks = f"{meta.get('watermark_before') or '(none)'} -> {meta['watermark_after']}"
        what = f"{mode}: {counts}" if counts else str(mode)
        rows.append((materialization.asset_key.to_user_string(), what, marks))
    return sorted(rows)


def run_refresh(full: bool = False) -> int:
    """Refresh every known study; 0 when every step and check passed."""
    data = settings.data_dir()
    data.mkdir(parents=True, exist_ok=True)
    os.environ[settings.DATA_DIR_ENV] = str(data)
    prepare_dagster_home(data)
    mode = FULL if full else INCREMENTAL
    started = time.perf_counter()
    failed: list[str] = []
    with contextlib.ExitStack() as stack:
        print(f"source: {stack.enter_context(api_source(3, 40, 7))}")
        import dagster as dg

        from imednet_assets.definitions import ALL_JOB_NAME, configured_destinations, defs
        from imednet_assets.defs.partitions import study_partitions

        print(f"destinations: parquet lake, duckdb, {', '.join(configured_destinations())}")
        instance = dg.DagsterInstance.get()
        studies = known_studies(settings.lake_root(),
                                list(instance.get_dynamic_partitions(study_partitions.name)))
        if not studies:
            print(f"no study under {data}: run `imednet-assets demo` first", file=sys.stderr)
            return 1
        instance.add_dynamic_partitions(
            study_partitions.name,
            [s for s in studies
             if s not in set(instance.get_dynamic_partitions(study_partitions.name))],
        )
        job = defs.resolve_job_def(ALL_JOB_NAME)
        for study in studies:
            run = run_study(job, instance, study, mode_tags(mode))
            print(f"\nstudy {study} ({mode}): {run.status}")
            rows = change_rows(run.result)
            width = max([len(r[0]) for r in rows] + [5])
            for asset, what, marks in rows:
                print(f"  {asset:<{width}}  {what:<48}  {marks}".rstrip())
            if not run.ok:
                failed.append(study)
                run.print_failures()
    print(f"\ntook {time.perf_counter() - started:.1f} s")
    if failed:
        print(f"failed studies: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
