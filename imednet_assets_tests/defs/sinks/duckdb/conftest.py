"""Helpers for the DuckDB sink tests: small real lake folders and a real Dagster run over them."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.slice import encode, study_dir
from imednet_assets.defs.sinks.duckdb.assets import duckdb_assets
from imednet_assets.defs.sinks.duckdb.definitions import duckdb_resources
from imednet_assets_tests.defs.sinks.runs import materialize_study

ENTITIES = ("studies", "sites", "intervals", "forms", "variables", "subjects", "visits",
            "records", "record_revisions", "queries")
HOUSEKEEPING = {"dateCreated": "2024-04-09 16:40:03", "dateModified": "2024-04-10 07:12:48",
                "unvnum": ""}


def write_lake(root: Path, entity: str, study: str, rows: list[dict],
               columns: Sequence[str] | None = None) -> None:
    """One study slice in the lake layout (records split by form); `columns` reorders the file."""
    schema = SCHEMAS[entity]
    table = pa.Table.from_pylist([{"study_key": study, **r} for r in rows], schema=schema)
    if columns is not None:
        table = table.select(list(columns))
    folder = study_dir(root, entity, study)
    shutil.rmtree(folder, ignore_errors=True)  # a whole slice is replaced, as the lake does
    folder.mkdir(parents=True, exist_ok=True)
    if entity != "records":
        pq.write_table(table, folder / "part-00000.parquet")
        return
    for form in sorted(set(table.column("form_key").to_pylist())):
        part = table.filter(pa.compute.equal(table.column("form_key"), form))
        sub = folder / f"form_key={encode(form)}"
        sub.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, sub / "part-00000.parquet")


def record(record_id: int, form_key: str, data: dict[str, str | None], **extra) -> dict:
    return {"record_id": record_id, "form_key": form_key, "subject_key": f"S-{record_id % 3}",
            "visit_id": 10 + record_id % 2, "interval_id": 1, "site_id": 101,
            "parent_record_id": 0, "record_status": "Record Complete", "deleted": False,
            "record_data": list({**HOUSEKEEPING, **data}.items()), **extra}


def variable(variable_id: int, form_key: str, name: str, vtype: str, label: str = "") -> dict:
    return {"variable_id": variable_id, "form_key": form_key, "variable_name": name,
            "variable_type": vtype, "label": label or f"label of {name}", "sequence": variable_id,
            "deleted": False, "disabled": False}


def write_study(root: Path, study: str, forms: list[str], variables: list[dict],
                records: list[dict]) -> None:
    """A whole study in the lake: metadata entities get a row or two, the rest as given."""
    write_lake(root, "studies", study, [{"study_id": 1, "study_name": f"Study {study}"}])
    write_lake(root, "sites", study, [{"site_id": 101, "site_name": "Rochester"}])
    write_lake(root, "intervals", study, [{"interval_id": 1, "interval_name": "Week 4",
                                           "forms": [{"form_id": 1, "form_key": forms[0],
                                                      "form_name": "x"}]}])
    write_lake(root, "forms", study, [{"form_id": i, "form_key": f, "form_name": f"Form {f}"}
                                      for i, f in enumerate(forms)])
    write_lake(root, "variables", study, variables)
    write_lake(root, "subjects", study, [{"subject_id": 1, "subject_key": "S-1"}])
    write_lake(root, "visits", study, [{"visit_id": 10, "subject_key": "S-1"}])
    write_lake(root, "records", study, records)
    write_lake(root, "record_revisions", study, [{"record_revision_id": 1, "record_id": 1}])
    write_lake(root, "queries", study, [{"annotation_id": 1, "record_id": 1,
                                         "query_comments": [{"sequence": 1, "comment": "?"}]}])


class Sink:
    """A lake folder + DuckDB file + Dagster instance, and a way to run the DuckDB assets."""

    def __init__(self, tmp_path: Path) -> None:
        self.lake = tmp_path / "lake"
        self.db = str(tmp_path / "sink.duckdb")
        self.instance = dg.DagsterInstance.ephemeral()

    def run(self, study: str, *, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return materialize_study(
            self.instance, study, duckdb_assets,
            {"lake_io_manager": LakeIOManager(root=str(self.lake)), **duckdb_resources(self.db)},
            raise_on_error=raise_on_error)

    def query(self, text: str, params: list | None = None) -> list[tuple]:
        conn = duckdb.connect(self.db, read_only=True)
        try:
            return conn.execute(text, params or []).fetchall()
        finally:
            conn.close()

    def tables(self) -> list[str]:
        return [t for (t,) in self.query(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY 1")]

    def dump(self, table: str, study: str | None = None) -> list[tuple]:
        """Every row of a table (optionally of one study), in a total order."""
        where = "" if study is None else " WHERE study_key = ?"
        return self.query(f'SELECT * FROM "{table}"{where} ORDER BY ALL',
                          [] if study is None else [study])

    def snapshot(self) -> dict[str, tuple[list, list[tuple]]]:
        """Every table: its columns (name, type) and all its rows."""
        return {t: (self.query(f"DESCRIBE \"{t}\""), self.dump(t)) for t in self.tables()}


@pytest.fixture
def sink(tmp_path: Path) -> Sink:
    return Sink(tmp_path)
