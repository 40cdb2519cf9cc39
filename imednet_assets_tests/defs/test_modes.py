"""The run tags of the refresh modes: what the change sensor writes, the run reads back."""

import pytest

from imednet_assets.defs.modes import CHANGED_ROWS_TAG, changed_rows, changed_rows_tags


def test_the_changed_rows_tag_reads_back_what_was_written():
    tags = changed_rows_tags({"records": 1001, "record_revisions": 1001, "queries": 0})
    assert tags == {CHANGED_ROWS_TAG: "record_revisions=1001,records=1001"}
    assert changed_rows(tags) == {"record_revisions": 1001, "records": 1001}
    assert changed_rows_tags({"records": 0}) == {}


@pytest.mark.parametrize("value", ["", "records", "records=", "records=-3", "records=1e3",
                                   "records=²", "records=١٢", "records=12 "])
def test_a_malformed_changed_rows_tag_announces_nothing(value):
    assert changed_rows({CHANGED_ROWS_TAG: value}) == {}


def test_a_run_without_the_tag_announces_nothing():
    assert changed_rows({"imednet/mode": "incremental"}) == {}
