"""Asset checks per study partition: lake vs API, DuckDB vs lake, keys and references in DuckDB."""
