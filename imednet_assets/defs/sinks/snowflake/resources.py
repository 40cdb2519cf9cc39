"""Where the Snowflake destination is (a `SnowflakeResource` whose repr hides secrets) and how the
sink loads into it (stage, stage prefix, file size, manifest file, plus the shared write knobs)."""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_snowflake import SnowflakeResource
from pydantic import Field

from imednet_assets.defs.sinks.common import WriteSettings
from imednet_assets.settings import data_dir, redact

DESTINATION = "Snowflake"
SECRET_FIELDS = ("password", "private_key", "private_key_password")


def resolved(value: Any) -> Any:
    # inside a run Dagster has replaced EnvVars by their values; outside one it has not
    return value.get_value() if isinstance(value, dg.EnvVar) else value


class SnowflakeConnection(SnowflakeResource):
    """`dagster_snowflake.SnowflakeResource`, with password and keys masked in its repr.

    Set secrets with `dg.EnvVar`; a local server (fakesnow) takes `host`, `port` and `protocol`
    through `additional_snowflake_connection_args`.
    """

    def secrets(self) -> list[str | None]:
        return [resolved(getattr(self, f)) for f in SECRET_FIELDS]

    def describe(self) -> str:
        """The destination without credentials: account, host if any, database and schema."""
        extra = self.additional_snowflake_connection_args or {}
        where = f"account {resolved(self.account)}"
        if extra.get("host"):
            scheme = extra.get("protocol", "https")
            where += f" at {scheme}://{extra['host']}:{extra.get('port', '')}"
        text = (
            f"{DESTINATION} {where} (database {resolved(self.database)}, "
            f"schema {resolved(self.schema_)})"
        )
        return redact(text, self.secrets())

    def __repr_args__(self) -> Any:
        # pydantic's repr would show the resolved password and keys
        for field, value in super().__repr_args__():
            yield field, ("***" if field in SECRET_FIELDS and value is not None else value)


class SnowflakeLoadSettings(WriteSettings):
    """How the sink stages and loads: `batch_size` is rows per Arrow batch / Parquet row group."""

    stage: str = Field(
        default="IMEDNET_STAGE",
        description="Internal stage (plain identifier) in the connection's database and schema; "
        "created when missing.",
    )
    stage_prefix: str = Field(
        default="imednet", description="Folder under the stage: <prefix>/<study>/<table>/<run_id>/."
    )
    target_file_mb: float = Field(
        default=128, gt=0, description="Parquet file size to aim for (Snowflake: 100-250 MB)."
    )
    manifest_path: str | None = Field(
        default=None,
        description="JSON lines manifest of loaded batches (default <data dir>/snowflake/"
        "manifest.jsonl).",
    )

    def manifest_file(self) -> str:
        return self.manifest_path or str(data_dir() / "snowflake" / "manifest.jsonl")
