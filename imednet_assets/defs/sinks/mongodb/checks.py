"""`mongodb/records` `every_record_once`: the study's documents in `records` are as many as its
lake records (deleted ones included, kept flagged). `_id` is `<study>/<record_id>`, unique by
construction, so equal counts mean every record once: counting is enough."""

from pymongo.errors import PyMongoError

from imednet_assets.defs.sinks.destination import (
    CountVerdict,
    RecordCheck,
    RecordTally,
    masked,
    reading,
)
from imednet_assets.defs.sinks.mongodb.assets import RECORDS_COLLECTION, SINK
from imednet_assets.defs.sinks.mongodb.resources import MongoDestination


def read_records(mongodb: MongoDestination, study: str, expected: int) -> RecordTally:
    """The study's documents in `records`, and (only when they are not `expected`) their
    record ids (one pass over the study's ids)."""
    where = mongodb.describe()
    with reading(where, (PyMongoError,), masked(mongodb.secrets())), mongodb.open() as db:
        collection = db[RECORDS_COLLECTION]
        documents = collection.count_documents({"study_key": study})
        ids = None if documents == expected else [
            d.get("record_id")
            for d in collection.find({"study_key": study}, {"record_id": 1, "_id": 0})]
        return RecordTally(where, documents, ids)


RECORD_CHECK = RecordCheck(
    RECORDS_COLLECTION,
    "The study's documents in `records` (study_key = the study) are exactly as many as its lake "
    "records, deleted ones included; `_id` = <study>/<record_id> makes each one unique.",
    "mongodb",
    MongoDestination,
    read_records,
    CountVerdict(RECORDS_COLLECTION, "documents", f"document in {RECORDS_COLLECTION}",
                 ("collection", RECORDS_COLLECTION), "mongodb_documents"),
)

mongodb_every_record_once = SINK.record_check(RECORD_CHECK)
