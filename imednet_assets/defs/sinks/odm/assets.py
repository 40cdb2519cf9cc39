"""ODM assets: `odm/snapshot` and `odm/transactional`, each writing one study's ODM 1.3.2 file
from the Parquet lake (the asset plans the write; the `odm_io_manager` streams and swaps it in)."""

import dagster as dg

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.destination import Sink
from imednet_assets.defs.sinks.lake_inputs import SinkPart
from imednet_assets.defs.sinks.odm.io_manager import OdmWrite
from imednet_assets.defs.sinks.odm.source import ENTITIES
from imednet_assets.defs.sinks.odm.writer import OdmKind

SINK = Sink("odm")
ODM_IO_MANAGER_KEY = SINK.io_manager_key

#: kind -> what the file is
KINDS: dict[OdmKind, str] = {
    "snapshot": "CDISC ODM 1.3.2 Snapshot: every live record's current values, with the "
    "study's metadata (<study>.odm.xml)",
    "transactional": "CDISC ODM 1.3.2 Transactional: one AuditRecord per record revision "
    "(<study>.transactional.odm.xml)",
}


def _odm_asset(kind: OdmKind) -> SinkPart:
    def plan(study: str, slices: dict[str, LakeSlice]) -> OdmWrite:
        return OdmWrite(kind, study, slices)

    return SINK.study_asset(kind, ENTITIES,
                            f"The study as {KINDS[kind]}, under <data dir>/bundles/<study>/.",
                            plan, kinds={"xml"})


odm_assets: list[dg.AssetsDefinition] = SINK.assets([_odm_asset(kind) for kind in KINDS])
