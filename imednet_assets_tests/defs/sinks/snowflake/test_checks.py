"""`snowflake/form_tables` `every_record_once` on the real fakesnow server through the real
connector: passes after a materialization with exact counts, fails with exact counts and ids after
tampering, ignores other studies."""

from __future__ import annotations

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.sinks.snowflake.assets import snowflake_assets
from imednet_assets.defs.sinks.snowflake.checks import snowflake_every_record_once
from imednet_assets.defs.sinks.snowflake.definitions import snowflake_resources
from imednet_assets_tests.defs.sinks.check_runs import meta, run_check, shown
from imednet_assets_tests.defs.sinks.duckdb.test_assets import study_a
from imednet_assets_tests.defs.sinks.snowflake.conftest import PASSWORD, SnowSink

OTHER = "O'Brien; DROP TABLE \"FORM_VS\" $.x"  # another study, with a hostile key


def check(snow: SnowSink, study: str, *, materialize: bool = False):
    resources = {"lake_io_manager": LakeIOManager(root=str(snow.lake)),
                 **snowflake_resources(snow.connection(), snow.settings())}
    return run_check(snow.instance, study, snowflake_every_record_once, resources,
                     snowflake_assets, materialize=materialize)


def test_passes_after_materialization_with_exact_metadata(snow: SnowSink) -> None:
    study_a(snow)  # 4 records, one deleted (kept), hostile names, a 100 kB value
    study_a(snow, OTHER)
    snow.run(OTHER)  # the same record ids in another study: neither counted nor duplicates

    evaluation = check(snow, "A", materialize=True)

    assert evaluation.passed
    assert evaluation.description == "study A: 4 lake records, each once in the form tables"
    found = meta(evaluation)
    assert found == {
        "study": "A", "table": "FORM_*", "destination": found["destination"],
        "lake_rows": 4, "snowflake_rows": 4, "duplicate_record_ids": 0,
        "duplicates_sample": [], "missing_sample": [], "unexpected_sample": [],
        "rows_by_table": {"FORM_AE_LOG": 1, "FORM_VS": 3},
    }
    assert found["destination"].startswith("Snowflake account fakesnow at ")
    assert PASSWORD not in shown(evaluation)


def test_fails_with_exact_counts_after_a_row_is_deleted(snow: SnowSink) -> None:
    study_a(snow)
    study_a(snow, OTHER)
    snow.run("A")
    snow.run(OTHER)
    snow.execute('DELETE FROM "FORM_VS" WHERE "STUDY_KEY" = %s AND "RECORD_ID" = 2', ("A",))

    evaluation = check(snow, "A")

    assert not evaluation.passed
    assert evaluation.description == "study A: form tables hold 3 rows, the lake 4 records"
    found = meta(evaluation)
    assert (found["lake_rows"], found["snowflake_rows"]) == (4, 3)
    assert (found["missing_sample"], found["unexpected_sample"]) == ([2], [])
    assert found["rows_by_table"] == {"FORM_AE_LOG": 1, "FORM_VS": 2}
    assert PASSWORD not in shown(evaluation)
    assert check(snow, OTHER).passed  # the other study is untouched


def test_fails_on_a_duplicated_record_and_ignores_other_studies(snow: SnowSink) -> None:
    study_a(snow)
    study_a(snow, OTHER)
    snow.run("A")
    snow.run(OTHER)
    # in A record 4 also lands in FORM_VS and record 2 is lost; OTHER loses all its rows
    snow.execute('DELETE FROM "FORM_VS" WHERE "STUDY_KEY" = %s AND "RECORD_ID" = 2', ("A",))
    snow.execute('INSERT INTO "FORM_VS" ("STUDY_KEY", "RECORD_ID") '
                 'SELECT "STUDY_KEY", "RECORD_ID" FROM "FORM_AE_LOG" WHERE "STUDY_KEY" = %s',
                 ("A",))
    for table in ("FORM_VS", "FORM_AE_LOG"):
        snow.execute(f'DELETE FROM "{table}" WHERE "STUDY_KEY" = %s', (OTHER,))

    evaluation = check(snow, "A")
    assert not evaluation.passed
    assert evaluation.description == "study A: 1 record_id(s) occur more than once"
    found = meta(evaluation)
    assert (found["lake_rows"], found["snowflake_rows"], found["duplicate_record_ids"]) == (
        4, 4, 1)
    assert found["duplicates_sample"] == [{"record_id": 4, "rows": 2}]

    other = check(snow, OTHER)
    assert other.description == f"study {OTHER}: form tables hold 0 rows, the lake 4 records"
    assert meta(other)["missing_sample"] == [1, 2, 3, 4]
