"""A cut of a lake on S3 (moto on loopback): frozen from the versions the lake IO manager reads,
exported from the cut the same twice, with the content the live S3 lake exported at cut time."""

from __future__ import annotations

from imednet_assets.compare import bundles_dump, duckdb_dump, lake_dump
from imednet_assets.defs.cuts.export import FrozenLakeIOManager, export_cut, export_lake
from imednet_assets.defs.cuts.verify import verify_cut
from imednet_assets.settings import DUCKDB_FILENAME
from imednet_assets_tests.defs.cuts.conftest import Lab
from imednet_assets_tests.defs.cuts.test_export_verify import files_but_duckdb


def test_cut_of_an_object_store_lake(s3_lab: Lab) -> None:
    lab, out = s3_lab, s3_lab.base / "out"
    assert lab.lake.is_object_store()
    export_lake(lab.lake, lab.study, out / "live-at-cut")
    lab.cut("s3-cut")
    frozen = FrozenLakeIOManager(root=str(lab.cuts / "s3-cut" / "lake"))
    assert lake_dump(frozen, lab.study) == lake_dump(lab.lake, lab.study)
    assert verify_cut("s3-cut", lab.cuts).ok

    lab.sim.advance(study_key=lab.study, modify=2, add=1)
    lab.ingest()
    assert lake_dump(frozen, lab.study) != lake_dump(lab.lake, lab.study)
    export_cut("s3-cut", lab.study, out / "cut", root=lab.cuts)
    export_cut("s3-cut", lab.study, out / "again", root=lab.cuts)
    assert files_but_duckdb(out / "cut") == files_but_duckdb(out / "again")
    # the live export stamps the time this machine downloaded the slice versions as the
    # extraction time, so only its content compares; the cut keeps its own times
    assert (bundles_dump(out / "cut" / "bundles", lab.study)
            == bundles_dump(out / "live-at-cut" / "bundles", lab.study))
    assert (duckdb_dump(out / "cut" / DUCKDB_FILENAME, lab.study)
            == duckdb_dump(out / "live-at-cut" / DUCKDB_FILENAME, lab.study))
