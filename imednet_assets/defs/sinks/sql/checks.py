"""`sql/form_tables` `every_record_once`: every lake record of the study (deleted ones included,
the SQL sink keeps them flagged) is exactly one row of the database's form tables.

The queries are SQLAlchemy Core (LIMIT and quoting the dialect's way), identifiers force-quoted,
the study a bound parameter.
"""


from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.sql import quoted_name

from imednet_assets.defs.checks._support import SAMPLE
from imednet_assets.defs.sinks.destination import (
    FormTablesVerdict,
    RecordCheck,
    RecordTally,
    reading,
)
from imednet_assets.defs.sinks.sql import ddl
from imednet_assets.defs.sinks.sql.assets import SINK
from imednet_assets.defs.sinks.sql.resources import SqlDestination

RECORD_ID = "record_id"


def form_tables(conn: sa.Connection, schema: str | None) -> list[str]:
    """The sink's form tables: `form_*` tables with a study_key and a record_id column."""
    inspector = sa.inspect(conn)
    tables = []
    for name in sorted(inspector.get_table_names(schema=schema)):
        if name.startswith(ddl.FORM_TABLE_PREFIX):
            columns = {c["name"] for c in inspector.get_columns(name, schema=schema)}
            if {ddl.STUDY_COLUMN, RECORD_ID} <= columns:
                tables.append(name)
    return tables


def study_record_ids(schema: str | None, tables: Sequence[str]) -> sa.Subquery:
    """(table_name, record_id) of the study's rows in every table (`:study` bound)."""
    parts = []
    for name in tables:
        table = sa.table(
            quoted_name(name, True),
            sa.column(quoted_name(RECORD_ID, True)),
            sa.column(quoted_name(ddl.STUDY_COLUMN, True)),
            schema=quoted_name(schema, True) if schema else None,
        )
        parts.append(
            sa.select(sa.literal(name).label("table_name"), table.c[RECORD_ID].label(RECORD_ID))
            .where(table.c[ddl.STUDY_COLUMN] == sa.bindparam("study"))
        )
    return sa.union_all(*parts).subquery("study_rows")


def rows_by_table_query(rows: sa.Subquery) -> sa.Select:
    return sa.select(rows.c.table_name, sa.func.count()).group_by(rows.c.table_name)


def duplicates_query(rows: sa.Subquery, limit: int | None = None) -> sa.Select:
    """record_id and its row count, for ids in more than one row (first `limit`, by id)."""
    query = (
        sa.select(rows.c[RECORD_ID], sa.func.count().label("n"))
        .group_by(rows.c[RECORD_ID])
        .having(sa.func.count() > 1)
        .order_by(rows.c[RECORD_ID])
    )
    return query if limit is None else query.limit(limit)


def read_records(destination: SqlDestination, study: str, expected: int) -> RecordTally:
    """The study's rows in the form tables: per table, record ids held twice, and (only when
    the rows are not `expected`) every record id held."""
    params = {"study": study}
    where = destination.describe()
    with reading(where, (sa.exc.SQLAlchemyError,), destination.clean), \
            destination.open() as engine, engine.connect() as conn:
        tables = form_tables(conn, destination.db_schema)
        if not tables:
            return RecordTally(where, 0, [] if expected else None)
        rows = study_record_ids(destination.db_schema, tables)
        by_table = {t: int(n) for t, n in conn.execute(rows_by_table_query(rows), params)}
        counted = sa.select(sa.func.count()).select_from(duplicates_query(rows).subquery())
        dupe_ids = int(conn.execute(counted, params).scalar_one())
        dupes = [(r, int(n)) for r, n in conn.execute(duplicates_query(rows, SAMPLE), params)]
        count = sum(by_table.values())
        ids = None if count == expected else list(
            conn.execute(sa.select(rows.c[RECORD_ID]), params).scalars().all())
        return RecordTally(where, count, ids, by_table, dupe_ids, dupes)


RECORD_CHECK = RecordCheck(
    "form_tables",
    "Every lake record of the study (deleted ones included) is exactly one row of the SQL form "
    "tables: the row count over all form_* tables equals the lake's records, and record_id is "
    "unique across them.",
    "sql_destination",
    SqlDestination,
    read_records,
    FormTablesVerdict("sql_rows", "form_*"),
)

sql_every_record_once = SINK.record_check(RECORD_CHECK)
