"""The destination contract (`sinks/destination.py`): every optional destination's definitions
carry its `every_record_once` check in its pool with the resource its IO manager writes through;
a write's metadata; the IO manager's refusal of another study's write."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import dagster as dg
import pytest

from imednet_assets.definitions import DESTINATIONS
from imednet_assets.defs.sinks.changes import APPLY, REWRITE, ChangePlan, KeyedPlan
from imednet_assets.defs.sinks.common import DestinationError
from imednet_assets.defs.sinks.destination import (
    DestinationIOManager,
    WriteReport,
    write_metadata,
)

#: destination -> (its env, the asset checked, (resource, IO manager field) that must be one)
CHECKED: dict[str, tuple[dict[str, str], str, tuple[str, str]]] = {
    "sql": ({"IMEDNET_ASSETS_SQL_URL": "postgresql://u:secret@127.0.0.1/db"}, "form_tables",
            ("sql_destination", "destination")),
    "snowflake": ({"SNOWFLAKE_ACCOUNT": "acme", "SNOWFLAKE_USER": "loader",
                   "SNOWFLAKE_PASSWORD": "secret"}, "form_tables", ("snowflake", "snowflake")),
    "mongodb": ({"MONGODB_URI": "mongodb://127.0.0.1:1"}, "records", ("mongodb", "mongodb")),
    "graph": ({"FALKORDB_URL": "redis://127.0.0.1:1"}, "study_graph", ("graph", "destination")),
}


@pytest.mark.parametrize("name", sorted(CHECKED))
def test_check_is_in_the_destination_definitions(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, asset, (resource, field) = CHECKED[name]
    monkeypatch.delenv("NEO4J_URI", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    defs = DESTINATIONS[name].build_defs()
    [checks] = defs.asset_checks
    [spec] = checks.check_specs
    assert (spec.asset_key.path, spec.name, spec.blocking) == (
        [name, asset], "every_record_once", False)
    assert checks.node_def.pool == f"{name}_writer"
    resources = defs.resources or {}
    assert resources[resource] is getattr(resources[f"{name}_io_manager"], field)
    # one step writes every asset of the destination, in its pool
    [assets] = defs.assets or ()
    assert isinstance(assets, dg.AssetsDefinition)
    assert assets.op.name == f"{name}_write"
    assert assets.op.pool == f"{name}_writer"
    for key in assets.keys:
        assert key.path[0] == name
        assert assets.group_names_by_key[key] == name


def test_bundles_have_no_check() -> None:
    defs = DESTINATIONS["bundles"].build_defs()
    assert not list(defs.asset_checks or ())
    assert {k.path[0] for a in defs.assets or () for k in a.keys} == {  # type: ignore[union-attr]
        "bundles"}


def test_write_metadata() -> None:
    plan = ChangePlan(APPLY, {"records": "l:2"}, "3 changed records", "records",
                      frozenset({1, 2, 3}))
    report = WriteReport({"form_a": 4, "form_b": 6}, plan, inserted=3, deleted=3,
                         table_name="main.*", extra={"destination": "here"})
    assert write_metadata(report) == {
        "dagster/row_count": 10, "dagster/table_name": "main.*", "mode": APPLY,
        "mode_reason": "3 changed records", "keys_changed": 3, "rows_inserted": 3,
        "rows_deleted": 3, "destination": "here",
    }
    keyed = KeyedPlan(APPLY, {}, "2 changed subjects", {"subjects": frozenset({1, 2})})
    meta = write_metadata(WriteReport({"subjects": 5}, keyed, updated=2))
    assert meta["keys_changed"] == dg.MetadataValue.json({"subjects": 2})
    assert (meta["rows_updated"], "rows_inserted" in meta, "dagster/table_name" in meta) == (
        2, False, False)
    assert write_metadata(WriteReport({"x": 1})) == {"dagster/row_count": 1}  # no sync state
    rewrite = write_metadata(WriteReport({}, ChangePlan(REWRITE, {}, "new")))
    assert (rewrite["mode"], "keys_changed" in rewrite) == (REWRITE, False)


@dataclass(frozen=True)
class _Write:
    study_key: str


class _Manager(DestinationIOManager):
    label: ClassVar[str] = "test sink"
    write_type: ClassVar[type] = _Write

    fail: bool = False

    def write_output(self, context: dg.OutputContext, obj: Any) -> WriteReport:
        if self.fail:
            raise DestinationError("test sink at ***: study A, batch 1 of 1 failed")
        return WriteReport({"t": 2}, extra={"destination": "test"})


def _context(study: str) -> dg.OutputContext:
    # used as a context manager: its ephemeral instance must be closed again, or Dagster's
    # current defs-state storage keeps pointing at it and later runs in this process fail
    return dg.build_output_context(asset_key=dg.AssetKey(["test", "t"]), partition_key=study)


def test_io_manager_refuses_another_studys_write_and_reports_failures() -> None:
    with pytest.raises(dg.Failure) as refused, _context("A") as context:
        _Manager().handle_output(context, _Write("B"))
    assert refused.value.description == (
        "test sink test/t for study A: expected a _Write for that study, got _Write")
    with pytest.raises(dg.Failure) as failed, _context("A") as context:
        _Manager(fail=True).handle_output(context, _Write("A"))
    assert failed.value.description == "test sink at ***: study A, batch 1 of 1 failed"
    assert failed.value.__cause__ is None
