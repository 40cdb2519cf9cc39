"""Snowflake sink through Dagster into a real fakesnow server: exact tables, replays, failures."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.results import materialization
from imednet_assets.defs.sinks.destination import column_schema
from imednet_assets.defs.sinks.snowflake import loader, sql
from imednet_assets.defs.sinks.tabular import ENTITIES, StudyTables
from imednet_assets.local_servers import free_port
from imednet_assets_tests.defs.sinks.duckdb.conftest import (
    record,
    variable,
    write_lake,
    write_study,
)
from imednet_assets_tests.defs.sinks.duckdb.test_assets import BIG, HOSTILE, LONG_NAME, study_a
from imednet_assets_tests.defs.sinks.snowflake.conftest import PASSWORD, SnowSink

FORM_TABLES = dg.AssetKey(["snowflake", "form_tables"])


def _cell(value: Any) -> Any:
    # the dump reads timestamps as text (see SnowSink.dump)
    return str(value) if isinstance(value, dt.datetime) else value


def expected_tables(snow: SnowSink, study: str) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every table of the study as StudyTables shapes it from the lake: upper-case columns, rows."""
    slices = {e: LakeSlice.read(snow.lake, e, study, SCHEMAS[e]) for e in ENTITIES}
    out = {}
    with StudyTables(study, slices, max_identifier_length=loader.MAX_IDENTIFIER_LENGTH) as t:
        for spec in t.specs():
            table = t.read(spec).read_all()
            rows = [tuple(_cell(v) for v in r.values()) for r in table.to_pylist()]
            out[spec.name.upper()] = ([c.upper() for c in table.column_names],
                                      sorted(rows, key=repr))
    return out


def assert_study_landed(snow: SnowSink, study: str) -> None:
    for table, (columns, rows) in expected_tables(snow, study).items():
        have = [c for c, _ in snow.columns(table)]
        assert have[: len(columns)] == columns or sorted(have) == sorted(columns), table
        idx = [have.index(c) for c in columns]
        landed = sorted((tuple(r[i] for i in idx) for r in snow.dump(table, study)), key=repr)
        assert landed == rows, table


def assert_pages_show_the_catalog(snow: SnowSink, result: dg.ExecuteInProcessResult) -> None:
    """Every asset page lists its tables' columns as the catalog holds them now (the load keeps
    track of what it created, added and widened instead of reading each table back)."""
    catalog = snow.all_columns()
    events = result.get_asset_materialization_events()
    assert events
    for event in events:
        meta = event.materialization.metadata
        expected = column_schema({t: catalog[t] for t in meta["table_rows"].value}, {})
        shown = meta["dagster/column_schema"].value.columns
        assert [(c.name, c.type) for c in shown] == [
            (c.name, c.type) for c in expected.columns], event.asset_key


def test_every_table_lands_exactly_hostile_names_and_values_included(snow: SnowSink) -> None:
    study_a(snow)
    result = snow.run("A")
    assert_pages_show_the_catalog(snow, result)
    assert snow.tables() == ["FORMS", "FORM_AE_LOG", "FORM_EMPTY", "FORM_VS", "RECORDS_LONG",
                             "SUBJECTS", "VARIABLES", "VISITS"]
    assert_study_landed(snow, "A")
    # odd names are columns of their own; the 100 kB value is intact; records_long keeps them all
    cols = [c for c, _ in snow.columns("FORM_VS")]
    assert {"ODD_NAME_SELECT", LONG_NAME.upper(), "GR_E", "RECORD_ID_2", "AGE_2"} <= set(cols)
    assert snow.execute(f'SELECT "{LONG_NAME.upper()}", "ODD_NAME_SELECT" FROM "FORM_VS" '
                        'WHERE "RECORD_ID" = 1') == [("long", BIG)]
    assert snow.execute('SELECT "VALUE", "LABEL" FROM "RECORDS_LONG" WHERE "VARIABLE_NAME" = %s',
                        (HOSTILE,)) == [(BIG, f"label of {HOSTILE}")]
    assert snow.execute('SELECT "SELECT" FROM "FORM_AE_LOG"') == [("Bronchitis",)]
    assert snow.staged() == []  # every staged file was removed

    meta = materialization(result, "snowflake/form_tables").metadata
    assert meta["rows_written"].value == {"FORM_AE_LOG": 1, "FORM_EMPTY": 0, "FORM_VS": 3}
    assert meta["dagster/row_count"].value == 4
    assert meta["batches"].value == 2
    assert meta["dagster/table_name"].value == "FORM_*"
    columns = {c.name: c for c in meta["dagster/column_schema"].value.columns}
    assert [n.split(".", 1)[1] for n in columns if n.startswith("FORM_VS.")] == cols
    assert columns[f"FORM_VS.{LONG_NAME.upper()}"].description == f"label of {LONG_NAME}"
    long_meta = materialization(result, "snowflake/records_long").metadata
    assert long_meta["dagster/row_count"].value == 33
    assert long_meta["preview"].value.startswith("| STUDY_KEY | RECORD_ID | FORM_KEY |")

    # the manifest: one line and one table row per loaded batch
    lines = [json.loads(x) for x in snow.manifest.read_text().splitlines()]
    assert sorted(x["batch_id"] for x in lines) == [
        "A/FORMS/0", "A/FORM_AE_LOG/0", "A/FORM_VS/0", "A/RECORDS_LONG/0", "A/SUBJECTS/0",
        "A/VARIABLES/0", "A/VISITS/0"]
    vs = next(x for x in lines if x["batch_id"] == "A/FORM_VS/0")
    assert vs["rows"] == 3 and len(vs["checksum"]) == 64 and vs["run_id"] == result.run_id
    assert vs["stage_path"].startswith(f"@IMEDNET_STAGE/imednet/A/{result.run_id}/")
    assert vs["stage_path"].endswith("/FORM_VS/")
    in_table = snow.execute(f'SELECT "BATCH_ID", "ROWS", "CHECKSUM" FROM "{sql.MANIFEST_TABLE}"')
    assert sorted(in_table) == sorted((x["batch_id"], x["rows"], x["checksum"]) for x in lines)


def test_replay_is_identical_and_a_change_is_loaded_leaving_other_studies_alone(
    snow: SnowSink,
) -> None:
    study_a(snow, "A")
    study_a(snow, "B")
    snow.run("A")
    snow.run("B")
    first = snow.snapshot()
    snow.run("A")
    assert snow.snapshot() == first  # a replay without change leaves every table identical
    b_rows = {t: snow.dump(t, "B") for t in snow.tables()}

    # A changes: a value, a record gone, a form gone; the replay must load it (never "skipped")
    write_lake(snow.lake, "records", "A", [record(1, "VS", {"sysbp": "130", "Pain Level": "4"}),
                                           record(2, "VS", {"sysbp": "ND"})])
    write_lake(snow.lake, "forms", "A", [{"form_id": 0, "form_key": "VS", "form_name": "VS"}])
    snow.run("A")
    assert_study_landed(snow, "A")
    assert snow.execute('SELECT "SYSBP", "SYSBP__RAW_2", "PAIN_LEVEL" FROM "FORM_VS" '
                        'WHERE "STUDY_KEY" = %s ORDER BY "RECORD_ID"', ("A",)) == [
        (130.0, "130", "4"), (None, "ND", None)]
    assert snow.dump("FORM_AE_LOG", "A") == []  # the removed form's rows left its table
    assert {t: snow.dump(t, "B") for t in snow.tables()} == b_rows
    assert snow.staged() == []


def _fail_at(table: str):
    def seam(cursor: Any, load: loader.TableLoad) -> None:
        if load.table == table:
            raise RuntimeError("injected failure between PUT and COPY")
    return seam


def _materializations(snow: SnowSink) -> int:
    return len(snow.instance.fetch_materializations(FORM_TABLES, limit=100).records)


@pytest.mark.parametrize("how", ["between_put_and_copy", "during_copy"])
def test_a_failed_load_keeps_the_previous_data_and_cleans_the_stage(
    snow: SnowSink, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    study_a(snow)
    snow.run("A")
    before = snow.snapshot()
    write_lake(snow.lake, "records", "A", [record(1, "VS", {"sysbp": "1"}),
                                           record(4, "AE Log!", {"select": "Flu"})])
    if how == "between_put_and_copy":
        # FORM_AE_LOG is loaded first (its DELETE ran), FORM_VS fails: both must roll back
        monkeypatch.setattr(loader, "_before_copy", _fail_at("FORM_VS"))
        message = "injected failure between PUT and COPY"
    else:
        # a real COPY failure: the staged FORM_VS file is replaced by one whose RECORD_ID is
        # text that no NUMBER column takes
        def corrupt(cursor: Any, load: loader.TableLoad) -> None:
            if load.table == "FORM_VS":
                bad = snow.lake.parent / load.files[0].name
                pq.write_table(pa.table({"STUDY_KEY": ["A"], "RECORD_ID": ["not a number"]}), bad)
                cursor.execute(sql.put_sql(str(bad), "IMEDNET_STAGE", load.stage_path))
        monkeypatch.setattr(loader, "_before_copy", corrupt)
        message = "not a number"
    result = snow.run("A", raise_on_error=False, selection=[FORM_TABLES])

    assert not result.success
    failure = result.failure_data_for_node("snowflake_write")
    text = failure.user_failure_data.description
    assert text.startswith("Snowflake account fakesnow at http://localhost:")
    assert ("(database IMEDNET, schema " + snow.schema + "): load of snowflake/form_tables for "
            "study A failed at table FORM_VS, batch A/FORM_VS/0..0; nothing of this load was "
            "committed.") in text
    assert message in text and PASSWORD not in text
    assert snow.snapshot() == before  # nothing lost, nothing duplicated
    assert snow.staged() == []
    assert _materializations(snow) == 1  # the partition was not marked materialized again
    manifest = [json.loads(x)["run_id"] for x in snow.manifest.read_text().splitlines()]
    assert result.run_id not in manifest


def test_wide_form_of_300_variables_and_small_files(snow: SnowSink) -> None:
    types = ["TEXT", "NUMBER", "DATE", "CHECKBOX", "DATETIME"]
    variables = [variable(i, "WIDE", f"v{i:03d} {types[i % 5]}", types[i % 5])
                 for i in range(300)]
    values = {0: "text é", 1: "12.5", 2: "2024-02-29", 3: "true", 4: "2024-02-29 23:59:59"}
    records = [record(r, "WIDE", {f"v{i:03d} {types[i % 5]}": values[i % 5] if (i + r) % 7 else ""
                                  for i in range(300)}) for r in range(1, 41)]
    write_study(snow.lake, "W", ["WIDE"], variables, records)
    snow.target_file_mb = 0.1  # small files: several batches per table
    snow.batch_size = 10
    snow.run("W")
    assert len(snow.columns("FORM_WIDE")) == 11 + 300 + 240  # meta + typed + raw columns
    assert_study_landed(snow, "W")
    batches = [json.loads(x) for x in snow.manifest.read_text().splitlines()]
    wide = [b for b in batches if b["table_name"] == "FORM_WIDE"]
    assert len(wide) > 1 and sum(b["rows"] for b in wide) == 40
    first = snow.snapshot()
    snow.run("W")
    assert snow.snapshot() == first


def test_a_type_clash_between_studies_widens_the_column_to_the_raw_text(snow: SnowSink) -> None:
    study_a(snow, "A", sysbp_type="NUMBER")
    study_a(snow, "B", sysbp_type="DATE")
    snow.run("A")
    assert_pages_show_the_catalog(snow, snow.run("B"))
    assert sql.type_family(dict(snow.columns("FORM_VS"))["SYSBP"]) == "TEXT"
    assert snow.execute('SELECT "STUDY_KEY", "RECORD_ID", "SYSBP" FROM "FORM_VS" '
                        'ORDER BY 1, 2') == [
        ("A", 1, "128"), ("A", 2, "ND"), ("A", 3, "37.2"),
        ("B", 1, "128"), ("B", 2, "ND"), ("B", 3, "37.2")]
    snow.run("A")  # A again, now into the text column: its raw text, no "128.0"
    assert snow.execute('SELECT "SYSBP" FROM "FORM_VS" WHERE "STUDY_KEY" = %s ORDER BY '
                        '"RECORD_ID"', ("A",)) == [("128",), ("ND",), ("37.2",)]


def test_an_unreachable_server_fails_before_any_data_moves_naming_the_destination(
    snow: SnowSink,
) -> None:
    study_a(snow)
    port = free_port()  # nothing listens there
    bad = snow.connection(login_timeout=3, network_timeout=3,
                          additional_snowflake_connection_args={
                              "host": "localhost", "port": port, "protocol": "http"})
    result = snow.run("A", raise_on_error=False, selection=[FORM_TABLES], connection=bad)
    text = result.failure_data_for_node("snowflake_write").user_failure_data.description
    assert text.startswith(f"Snowflake account fakesnow at http://localhost:{port} (database "
                           f"IMEDNET, schema {snow.schema}) is unreachable or refused the login: ")
    assert PASSWORD not in text
    assert snow.tables() == [] and not snow.manifest.exists()


def test_a_stage_name_that_needs_quoting_is_a_config_error(snow: SnowSink) -> None:
    study_a(snow)
    snow_settings = snow.settings

    def settings(**overrides: Any):
        return snow_settings(stage="my stage", **overrides)

    snow.settings = settings  # type: ignore[method-assign]
    result = snow.run("A", raise_on_error=False, selection=[FORM_TABLES])
    text = result.failure_data_for_node("snowflake_write").user_failure_data.description
    assert text.endswith(": stage name 'my stage' must be a plain identifier (letters, digits, "
                         "_ and $)")
    assert snow.tables() == []


def test_secrets_never_reach_reprs_metadata_or_logs(snow: SnowSink) -> None:
    study_a(snow)
    connection = snow.connection()
    assert PASSWORD not in repr(connection) and "password='***'" in repr(connection)
    result = snow.run("A")
    events = snow.instance.all_logs(result.run_id)
    assert events and not any(PASSWORD in dg.serialize_value(e) for e in events)
    assert PASSWORD not in snow.manifest.read_text()


def test_empty_study_creates_tables_and_stages_nothing(snow: SnowSink) -> None:
    write_study(snow.lake, "E", ["F1"], [variable(1, "F1", "x", "NUMBER")], [])
    snow.run("E")
    assert snow.dump("FORM_F1") == [] and snow.dump("RECORDS_LONG") == []
    assert [c for c, _ in snow.columns("FORM_F1")][-2:] == ["X", "X__RAW"]
