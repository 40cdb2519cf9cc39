"""Does a study have changes the lake does not hold yet? One small API request per entity.

For each entity (the metadata too) the probe asks the API for the rows with
`dateModified >= mark - lag` (revisions: `dateCreated`), newest first, page size 1:
`totalElements` and the newest row come back in one answer. A newest value past the lake's mark,
or more rows in that window than the lake holds there (a tie: a row written in the mark's own
second after the last pull), means changes. Purges are not visible here; a run that reads an
entity compares its count afterwards, and the nightly reconcile reads every entity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow.dataset as pads

from imednet_assets.client.filters import build_filter, term
from imednet_assets.client.settings import ClientSettings
from imednet_assets.client.sync import probe_sync
from imednet_assets.defs.ingest.assets import CHANGED_BY
from imednet_assets.defs.lake.io_manager import LakeIOManager, newest_mark, read_start

#: API requests one study's probe costs.
REQUESTS_PER_STUDY = len(CHANGED_BY)


@dataclass(frozen=True)
class EntityProbe:
    """What one request told about one entity of one study."""

    entity: str
    lake_mark: str | None
    api_newest: str | None
    api_rows: int
    lake_rows: int

    @property
    def changed(self) -> bool:
        if self.lake_mark is None:  # nothing held yet, or an empty slice: any row is news
            return self.api_rows != self.lake_rows
        newer = self.api_newest is not None and self.api_newest > self.lake_mark
        return newer or self.api_rows != self.lake_rows


def _lake_window(lake_io: LakeIOManager, entity: str, study: str, column: str,
                 lag_s: float) -> tuple[str | None, datetime | None, int]:
    """(the slice's mark, where the window starts, the slice's rows in the window); a slice
    without a mark (none yet, or empty): (None, None, all its rows). The mark is the manifest's
    watermark, or for the metadata (read whole, no watermark kept) its newest date."""
    try:
        # local files either way (an object-store lake's version is copied once per version)
        lake = lake_io.read_slice(entity, study)
    except FileNotFoundError:
        return None, None, 0
    if not lake.files:
        return None, None, lake.num_rows
    dataset = pads.dataset([str(f) for f in lake.files], format="parquet")
    mark = lake.manifest.watermark if lake.manifest else None
    if mark is None:
        mark = newest_mark(dataset, column)
    since = read_start(mark, lag_s)
    if since is None:
        return None, None, lake.num_rows
    return mark, since, dataset.count_rows(filter=pads.field(column) >= since)


def probe_study(settings: ClientSettings, lake_io: LakeIOManager, study: str,
                lag_s: float) -> list[EntityProbe]:
    """One request per entity of `study`, compared with the lake `lake_io` reads."""
    probes = []
    for entity, (attribute, column) in CHANGED_BY.items():
        mark, since, lake_rows = _lake_window(lake_io, entity, study, column, lag_s)
        terms = [term(attribute, ">=", since)] if since else []
        if entity == "studies":  # the study list holds every study: ask about this one
            terms.insert(0, term("studyKey", "==", study))
        api_rows, newest = probe_sync(
            settings, entity, study,
            filter=build_filter(*terms) if terms else None,
            sort=f"{attribute},desc",
        )
        probes.append(EntityProbe(entity, mark, newest.get(attribute) if newest else None,
                                  api_rows, lake_rows))
    return probes
