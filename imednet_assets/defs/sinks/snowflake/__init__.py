"""Snowflake destination: staged Parquet + COPY INTO, one study slice per transaction."""
