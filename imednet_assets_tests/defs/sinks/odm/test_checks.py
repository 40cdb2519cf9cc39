"""`odm/snapshot` `every_record_once`, as Dagster runs it: passes right after the write, fails and
names the record when a FormData is taken out of the snapshot."""

from __future__ import annotations

from lxml import etree

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.sinks.odm.assets import odm_assets
from imednet_assets.defs.sinks.odm.checks import odm_every_record_once
from imednet_assets.defs.sinks.odm.definitions import odm_resources
from imednet_assets_tests.defs.sinks.check_runs import meta, run_check
from imednet_assets_tests.defs.sinks.odm.conftest import NS, Odm, hostile_study


def test_the_check_passes_after_the_write_and_names_a_missing_record(odm: Odm) -> None:
    hostile_study(odm.lake, "A")
    resources = {"lake_io_manager": LakeIOManager(root=str(odm.lake)),
                 **odm_resources(str(odm.root))}
    passed = run_check(odm.instance, "A", odm_every_record_once, resources, odm_assets,
                       materialize=True)
    assert passed.passed
    assert meta(passed)["odm_form_data"] == 4 and meta(passed)["lake_live_rows"] == 4

    path = odm.path("A", "snapshot")
    tree = etree.parse(str(path))
    form = next(f for f in tree.getroot().iter(f"{NS}FormData") if f.get("FormRepeatKey") == "2")
    form.getparent().remove(form)
    tree.write(str(path), xml_declaration=True, encoding="UTF-8")
    failed = run_check(odm.instance, "A", odm_every_record_once, resources, odm_assets)
    assert not failed.passed
    assert meta(failed)["odm_form_data"] == 3 and meta(failed)["missing_sample"] == [2]
