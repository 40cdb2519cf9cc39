"""`odm/snapshot` `every_record_once`: the study's snapshot holds one FormData per live lake record
(deleted records are not current data). FormData are keyed by their record id (FormRepeatKey),
so a count that agrees means every live record once; on a disagreement the ids say which."""

import dagster as dg
from lxml import etree

from imednet_assets.defs.sinks.destination import (
    CountVerdict,
    RecordCheck,
    RecordTally,
    masked,
    reading,
)
from imednet_assets.defs.sinks.odm.assets import ODM_IO_MANAGER_KEY, SINK
from imednet_assets.defs.sinks.odm.io_manager import OdmIOManager, odm_path
from imednet_assets.defs.sinks.odm.writer import NAMESPACE

_FORM_DATA = f"{{{NAMESPACE}}}FormData"


def read_records(odm: OdmIOManager, study: str, expected: int) -> RecordTally:
    """The FormData of the study's snapshot, streamed (each element dropped once counted), and
    their record ids only when they are not `expected`."""
    path = odm_path(odm.root_path(), study, "snapshot")
    where = str(path)
    with reading(where, (OSError, etree.LxmlError), masked([])):
        ids: list[int | str | None] = []
        for _, node in etree.iterparse(str(path), tag=_FORM_DATA, huge_tree=True):
            key = node.get("FormRepeatKey")
            ids.append(int(key) if key and key.isdigit() else key)
            node.clear(keep_tail=False)
            while node.getprevious() is not None:  # the counted siblings too
                del node.getparent()[0]
    return RecordTally(where, len(ids), None if len(ids) == expected else ids)


RECORD_CHECK = RecordCheck(
    "snapshot",
    "The study's ODM snapshot holds one FormData per live lake record (deleted ones are not "
    "current data); FormRepeatKey is the record id.",
    # the IO manager knows where the files are; Dagster hands IO managers to a check only as a
    # plain resource parameter
    ODM_IO_MANAGER_KEY,
    dg.ResourceParam[OdmIOManager],
    read_records,
    CountVerdict("the ODM snapshot", "FormData", "FormData of the snapshot",
                 ("file", "<study>.odm.xml"), "odm_form_data", live_only=True),
)

odm_every_record_once = SINK.record_check(RECORD_CHECK)
