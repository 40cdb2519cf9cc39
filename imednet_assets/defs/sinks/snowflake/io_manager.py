"""Snowflake sink IO manager: connects (or fails clearly before any data moves), then runs the
asset's `SnowflakeWrite` through `loader.load_study` and reports what it did: the plan followed
(`mode`: skip, apply or rewrite, and why), the rows deleted and inserted, the study's rows."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import dagster as dg
from pydantic import PrivateAttr

from imednet_assets.defs.sinks.common import DestinationConfigError, error_detail
from imednet_assets.defs.sinks.destination import DestinationIOManager, WriteReport
from imednet_assets.defs.sinks.snowflake import loader, sql
from imednet_assets.defs.sinks.snowflake.resources import SnowflakeConnection, SnowflakeLoadSettings


def check_connection(conn: Any, resource: SnowflakeConnection, settings: SnowflakeLoadSettings
                     ) -> None:
    """Database and schema in use, stage and manifest table there; else a config error."""
    where = resource.describe()
    if not sql.is_plain_identifier(settings.stage):
        raise DestinationConfigError(
            f"{where}: stage name {settings.stage!r} must be a plain identifier "
            "(letters, digits, _ and $)")
    cursor = conn.cursor()
    try:
        cursor.execute("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()")
        database, schema = cursor.fetchone()
        if not database or not schema:
            raise DestinationConfigError(
                f"{where}: no database/schema in use (does it exist, may this user use it?)")
        loader.ensure_stage_and_manifest(cursor, settings)
    except DestinationConfigError:
        raise
    except Exception as err:
        detail = error_detail(err, resource.secrets(), 300)
        raise DestinationConfigError(f"{where} cannot be used: {detail}") from None
    finally:
        cursor.close()


class SnowflakeSinkIOManager(DestinationIOManager):
    """Loads a `SnowflakeWrite` for the run's study partition (see `loader`)."""

    label: ClassVar[str] = "Snowflake sink"
    write_type: ClassVar[type] = loader.SnowflakeWrite

    snowflake: SnowflakeConnection
    load: SnowflakeLoadSettings
    _step: contextlib.ExitStack | None = PrivateAttr(default=None)
    _session: Any = PrivateAttr(default=None)

    @contextlib.contextmanager
    def step_session(self) -> Iterator[None]:
        """One login and one connection check for every output of the step: a Snowflake login
        costs more than a small incremental load. The first write opens it, so a refused login
        fails that write as any other would."""
        with contextlib.ExitStack() as step:
            self._step = step
            try:
                yield
            finally:
                self._step, self._session = None, None

    @contextlib.contextmanager
    def _checked(self) -> Iterator[Any]:
        """A checked connection: the step's, else one for this write alone."""
        if self._step is None:
            with self._open() as conn:
                check_connection(conn, self.snowflake, self.load)
                yield conn
            return
        if self._session is None:
            conn = self._step.enter_context(self._open())
            check_connection(conn, self.snowflake, self.load)
            self._session = conn
        try:
            yield self._session
        except BaseException:
            # a failed write fails the step: log out now, not when its generator is collected
            with contextlib.suppress(Exception):
                self._session.close()
            self._session = None
            raise

    def _connect(self) -> Any:
        try:
            return self.snowflake.get_connection()
        except Exception as err:  # noqa: BLE001 - reported as a config error below
            detail = error_detail(err, self.snowflake.secrets(), 300)
            raise DestinationConfigError(
                f"{self.snowflake.describe()} is unreachable or refused the login: {detail}"
            ) from None

    def write_output(self, context: dg.OutputContext, obj: loader.SnowflakeWrite) -> WriteReport:
        where = self.snowflake.describe()
        with self._checked() as conn:
            report = loader.load_study(
                conn, obj, self.load, run_id=context.run_id, destination=where,
                secrets=self.snowflake.secrets(), log=context.log.warning)
            biggest = max(report.rows, key=lambda t: (report.rows[t], t), default=None)
            # (name, type) of every table written, for the asset page's column list: as the
            # load's schema sync left them
            columns = report.columns
            cursor = conn.cursor()
            try:
                preview = loader.preview(cursor, biggest, obj.study_key,
                                         [name for name, _ in columns[biggest]]
                                         ) if biggest else ""
            finally:
                cursor.close()
        assert report.plan is not None  # load_study always plans
        return WriteReport(
            report.rows,
            report.plan,
            inserted=report.rows_inserted,
            deleted=report.rows_deleted,
            # the form tables are one asset: `FORM_*`
            table_name=(f"{sql.FORM_TABLE_PREFIX}*" if "form" in obj.tables
                        else next(iter(report.rows))),
            extra={
                "table_rows": dg.MetadataValue.json(dict(sorted(report.rows.items()))),
                "rows_written": dg.MetadataValue.json(dict(sorted(report.loaded.items()))),
                "batches": report.batches,
                "seconds": round(report.seconds, 3),
                "destination": where,
                "stage_paths": dg.MetadataValue.json(report.stage_paths),
                "manifest": self.load.manifest_file(),
                "preview": dg.MetadataValue.md(preview),
            },
            columns=columns,
            descriptions=report.descriptions,
        )

    def _open(self) -> Any:
        return _Connection(self)


class _Connection:
    """`SnowflakeResource.get_connection()` closes only on success: close on error too."""

    def __init__(self, manager: SnowflakeSinkIOManager) -> None:
        self._manager = manager
        self._cm: Any = None

    def __enter__(self) -> Any:
        self._cm = self._manager._connect()
        try:
            self.conn = self._cm.__enter__()
        except Exception as err:  # noqa: BLE001 - the login happens here
            detail = error_detail(err, self._manager.snowflake.secrets(), 300)
            raise DestinationConfigError(
                f"{self._manager.snowflake.describe()} is unreachable or refused the login: "
                f"{detail}") from None
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            return bool(self._cm.__exit__(None, None, None))
        with contextlib.suppress(Exception):  # the original error is what matters
            self.conn.close()
        return False
