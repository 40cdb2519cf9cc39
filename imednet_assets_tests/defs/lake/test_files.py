"""Lake Parquet files: how their columns are encoded."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.files import FileRoller
from imednet_assets.defs.lake.slice import lake_schema


def test_no_column_gets_a_dictionary_and_only_scalar_ones_get_statistics(tmp_path: Path):
    schema = lake_schema(SCHEMAS["records"])
    n = 50
    columns = {field.name: pa.nulls(n, field.type) for field in schema}
    columns.update(
        study_key=pa.array(["S"] * n), form_key=pa.array(["VS"] * n),
        record_id=pa.array(range(n), pa.int64()),
        record_data=pa.array([[("sysbp", str(120 + i)), ("diabp", str(80 + i))]
                              for i in range(n)], schema.field("record_data").type),
    )
    roller = FileRoller(tmp_path, schema, "record_id", rows_per_file=n, row_group_rows=n)
    roller.write(pa.table(columns, schema=schema).to_batches()[0])
    roller.close(write_empty=False)

    group = pq.ParquetFile(roller.files[0]).metadata.row_group(0)
    chunks = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    nested = {path for path in chunks if "." in path}
    assert {"record_data.key_value.key", "record_data.key_value.value"} <= nested
    assert not {path for path, chunk in chunks.items() if chunk.has_dictionary_page}
    with_statistics = {path for path, chunk in chunks.items() if chunk.is_stats_set}
    assert with_statistics == set(chunks) - nested
    assert chunks["record_id"].statistics.min == 0 and chunks["record_id"].statistics.max == n - 1
    assert pq.read_table(roller.files[0]).equals(pa.table(columns, schema=schema))
