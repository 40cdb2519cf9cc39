"""`mongodb/records` `every_record_once`: the study's documents in `records` are as many as its
lake records (deleted ones included, kept flagged). `_id` is `<study>/<record_id>`, unique by
construction, so equal counts mean every record once: counting is enough."""

import dagster as dg
from pymongo.errors import PyMongoError

from imednet_assets.defs.checks._support import (
    ERROR,
    id_samples,
    lake_record_ids,
    result,
    study_check,
    study_of,
)
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.common import DestinationError, error_detail
from imednet_assets.defs.sinks.lake_inputs import lake_in
from imednet_assets.defs.sinks.mongodb.assets import POOL, RECORDS_COLLECTION
from imednet_assets.defs.sinks.mongodb.resources import MongoDestination


@study_check(
    ["mongodb", "records"],
    "every_record_once",
    "The study's documents in `records` (study_key = the study) are exactly as many as its lake "
    "records, deleted ones included; `_id` = <study>/<record_id> makes each one unique.",
    additional_ins={"records": lake_in("records")},
    pool=POOL,
)
def mongodb_every_record_once(
    context: dg.AssetCheckExecutionContext, records: LakeSlice, mongodb: MongoDestination
) -> dg.AssetCheckResult:
    study = study_of(context)
    lake_rows = records.num_rows
    where = mongodb.describe()
    samples: dict[str, list[int]] = {"missing_sample": [], "unexpected_sample": []}
    try:
        with mongodb.open() as db:
            collection = db[RECORDS_COLLECTION]
            documents = collection.count_documents({"study_key": study})
            if documents != lake_rows:  # only then: which ones (one pass over the study's ids)
                found = (d.get("record_id") for d in
                         collection.find({"study_key": study}, {"record_id": 1, "_id": 0}))
                samples = id_samples(lake_record_ids(records), found)
    except DestinationError as err:
        raise dg.Failure(description=f"every_record_once for study {study}: {err}") from None
    except PyMongoError as err:
        detail = error_detail(err, mongodb.secrets(), 300)
        raise dg.Failure(
            description=f"every_record_once for study {study}: reading {where} failed: {detail}"
        ) from None
    passed = documents == lake_rows
    return result(
        passed,
        ERROR,
        f"study {study}: "
        + (f"{lake_rows} lake records, each one document in {RECORDS_COLLECTION}" if passed else
           f"{RECORDS_COLLECTION} holds {documents} documents, the lake {lake_rows} records"),
        study=study,
        collection=RECORDS_COLLECTION,
        destination=where,
        lake_rows=lake_rows,
        mongodb_documents=documents,
        **samples,
    )
