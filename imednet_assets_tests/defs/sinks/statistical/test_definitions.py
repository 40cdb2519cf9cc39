"""What the integrator wires in: always configured, three partitioned assets written by one step
in their own pool, the IO manager writing under the bundles' root."""

from __future__ import annotations

from pathlib import Path

import pytest

from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.statistical import definitions
from imednet_assets.defs.sinks.statistical.io_manager import StatisticalIOManager


def test_build_defs_gives_three_export_assets(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv("IMEDNET_ASSETS_DATA_DIR", str(tmp_path))
    assert definitions.is_configured() is True
    defs = definitions.build_defs()
    [asset] = defs.assets  # type: ignore[misc]
    specs = {s.key.to_user_string(): s for s in asset.specs}
    assert sorted(specs) == ["statistical/dta", "statistical/sav", "statistical/xpt"]
    for spec in specs.values():
        assert spec.group_name == "statistical"
        assert spec.partitions_def == study_partitions
    assert asset.op.pool == "statistical_writer"
    assert {k.path[0] for k in asset.keys_by_input_name.values()} == {"imednet"}
    assert {next(iter(s.kinds)) for s in specs.values()} == {"sas", "spss", "stata"}
    manager = defs.resources["statistical_io_manager"]  # type: ignore[index]
    assert isinstance(manager, StatisticalIOManager)
    assert manager.root_path() == tmp_path.resolve() / "bundles"
