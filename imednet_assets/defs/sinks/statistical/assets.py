"""Statistical export assets: one per format, each writing one study's export from the lake.

Each asset only plans the write (format, study, lake slices); the `statistical_io_manager` reads
the study's tables (`StudyTables`) and swaps the zip in.
"""

import dagster as dg

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.destination import Sink
from imednet_assets.defs.sinks.lake_inputs import SinkPart
from imednet_assets.defs.sinks.statistical.formats import FORMATS, StatFormat
from imednet_assets.defs.sinks.statistical.io_manager import StatisticalWrite
from imednet_assets.defs.sinks.tabular import ENTITIES

SINK = Sink("statistical")
STATISTICAL_IO_MANAGER_KEY = SINK.io_manager_key
POOL = SINK.pool

#: format -> Dagster kind
KINDS: dict[StatFormat, str] = {"xpt": "sas", "sav": "spss", "dta": "stata"}


def _export_asset(fmt: StatFormat) -> SinkPart:
    def plan(study: str, slices: dict[str, LakeSlice]) -> StatisticalWrite:
        return StatisticalWrite(fmt, study, slices)

    return SINK.study_asset(
        fmt, ENTITIES,
        f"The study as {FORMATS[fmt].what}: a zip of one dataset per form plus subjects and "
        "visits, the mapping dataset and mapping.csv, under <data dir>/bundles/<study>/.",
        plan, kinds={KINDS[fmt]})


#: The step writes SAS transport last: a value only it refuses (a run of blanks longer than a
#: piece, a dataset over 9,999 variables) fails the step once the SPSS and Stata exports are in.
WRITE_ORDER: tuple[StatFormat, ...] = ("sav", "dta", "xpt")

statistical_assets: list[dg.AssetsDefinition] = SINK.assets(
    [_export_asset(f) for f in WRITE_ORDER])
