"""The Snowflake definitions come from the environment, secrets only as EnvVars."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.snowflake import definitions
from imednet_assets.defs.sinks.tabular import ENTITIES


def test_not_configured_without_an_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNOWFLAKE_ACCOUNT", raising=False)
    assert definitions.is_configured() is False


def test_build_defs_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {"SNOWFLAKE_ACCOUNT": "acme", "SNOWFLAKE_USER": "loader",
           "SNOWFLAKE_PASSWORD": "pw-from-env-42", "SNOWFLAKE_DATABASE": "CLIN",
           "SNOWFLAKE_SCHEMA": "EDC", "SNOWFLAKE_WAREHOUSE": "WH", "SNOWFLAKE_STAGE": "MY_STAGE",
           "SNOWFLAKE_HOST": "localhost", "SNOWFLAKE_PORT": "8123", "SNOWFLAKE_PROTOCOL": "http"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert definitions.is_configured() is True
    # the top level adds the lake assets and the IO manager the inputs come through
    defs = dg.Definitions.merge(definitions.build_defs(), dg.Definitions(
        assets=[dg.AssetSpec(["imednet", e], partitions_def=study_partitions) for e in ENTITIES],
        resources={"lake_io_manager": LakeIOManager(root=str(tmp_path))}))
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"snowflake/subjects", "snowflake/visits", "snowflake/dictionary",
            "snowflake/records_long", "snowflake/form_tables"} <= keys
    spec = defs.resolve_assets_def(dg.AssetKey(["snowflake", "form_tables"]))
    assert spec.group_names_by_key[dg.AssetKey(["snowflake", "form_tables"])] == "snowflake"
    manager = definitions.snowflake_resources()["snowflake_io_manager"]
    assert manager.load.stage == "MY_STAGE"  # type: ignore[attr-defined]
    connection = manager.snowflake  # type: ignore[attr-defined]
    assert isinstance(connection.password, dg.EnvVar)  # the value never enters config
    assert connection.additional_snowflake_connection_args == {
        "host": "localhost", "port": 8123, "protocol": "http"}
    assert "pw-from-env-42" not in repr(manager)
    assert connection.describe() == (
        "Snowflake account acme at http://localhost:8123 (database CLIN, schema EDC)")
