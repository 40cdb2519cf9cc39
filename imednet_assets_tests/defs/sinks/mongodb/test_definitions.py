"""The contract with the top-level definitions: env switch, asset keys, pool, secrets by EnvVar."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.mongodb.definitions import build_defs, is_configured


def test_configured_only_with_a_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONGODB_URI", raising=False)
    assert not is_configured()
    monkeypatch.setenv("MONGODB_URI", "mongodb://u:secret@db.example:27017/")
    assert is_configured()


def test_build_defs_assets_pool_and_secret_handling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGODB_URI", "mongodb://u:secret@db.example:27017/")
    monkeypatch.setenv("MONGODB_DATABASE", "trials")
    lake = dg.Definitions(
        assets=[dg.AssetSpec(["imednet", e], partitions_def=study_partitions)
                for e in ("records", "subjects", "visits")],
        resources={"lake_io_manager": LakeIOManager(root=str(tmp_path))},
    )
    defs = dg.Definitions.merge(build_defs(), lake)
    graph = defs.resolve_asset_graph()
    keys = {dg.AssetKey(["mongodb", "records"]), dg.AssetKey(["mongodb", "subjects"])}
    assert keys <= graph.get_all_asset_keys()
    for key in keys:
        node = graph.get(key)
        assert node.group_name == "mongodb" and node.pools == {"mongodb_writer"}
        assert node.partitions_def.name == "study"
        assert "mongodb" in node.kinds
    resource = defs.resources["mongodb"]
    assert isinstance(resource.uri, dg.EnvVar) and resource.uri.env_var_name == "MONGODB_URI"
    assert resource.database == "trials"
    assert "secret" not in repr(resource) and resource.address == "mongodb://***@db.example:27017/"
