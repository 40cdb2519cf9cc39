"""What the lead wires in: always configured, three partitioned assets written by one step in
their own pool."""

from __future__ import annotations

import pytest

from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.bundles import definitions
from imednet_assets.defs.sinks.bundles.io_manager import BundleIOManager


def test_build_defs_gives_three_bundle_assets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(definitions.HEADERS_ENV, raising=False)
    assert definitions.is_configured() is True
    defs = definitions.build_defs()
    [asset] = defs.assets  # type: ignore[misc]
    specs = {s.key.to_user_string(): s for s in asset.specs}
    assert sorted(specs) == ["bundles/csv", "bundles/json", "bundles/xlsx"]
    for spec in specs.values():
        assert spec.group_name == "bundles"
        assert spec.partitions_def == study_partitions
    assert asset.op.pool == "bundles_writer"
    assert {k.path[0] for k in asset.keys_by_input_name.values()} == {"imednet"}
    assert {next(iter(s.kinds)) for s in specs.values()} == {"csv", "excel", "json"}
    manager = defs.resources["bundles_io_manager"]  # type: ignore[index]
    assert isinstance(manager, BundleIOManager) and manager.headers == "names"


def test_headers_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(definitions.HEADERS_ENV, " Labels ")
    assert definitions.bundle_resources()["bundles_io_manager"].headers == "labels"
    monkeypatch.setenv(definitions.HEADERS_ENV, "ids")
    with pytest.raises(ValueError, match="IMEDNET_ASSETS_BUNDLE_HEADERS must be one of names, "
                                         "labels, not 'ids'"):
        definitions.build_defs()
