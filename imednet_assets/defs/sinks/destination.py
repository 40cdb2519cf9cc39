"""The contract every destination implements, and the one place its Dagster objects are built.

A destination is a folder with a writer and its settings. It supplies:
- its `Sink` (its name): the asset key prefix, group, pool `<name>_writer` and IO manager key
  `<name>_io_manager` follow from the name;
- a write value per asset and study (what the asset plans from its lake slices) and an IO
  manager subclassing `DestinationIOManager` whose `write_output` brings the study's slice to the
  lake's state (skip, apply the change set, or replace the slice) and returns a `WriteReport`;
- for its reconciliation check, `read_records`: what it holds of a study's records
  (`RecordTally`), given as a `RecordCheck` with the verdict that fits it.

Everything Dagster sees (asset decorators, the IO manager's type check and failures, the
materialization metadata, the `every_record_once` check, the `dg.Definitions`) is built here, so
every destination reports the same way.
"""

import inspect
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import dagster as dg

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.changes import APPLY, ChangePlan, KeyedPlan
from imednet_assets.defs.sinks.common import DestinationError, error_detail
from imednet_assets.defs.sinks.lake_inputs import SinkPart, lake_in, sink_multi_asset

CHECK_NAME = "every_record_once"


# -- what a write did --------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteReport:
    """What one asset's write did for one study.

    `rows`: the study's rows per table (collection, label) after the write; `plan`: the change plan
    it followed (None: a destination without sync state); `inserted`/`updated`/`deleted`: rows,
    where the destination knows them; `table_name`: `dagster/table_name` (omitted when None);
    `extra`: the destination's own metadata (address, timings, per-table detail, ...);
    `columns`: each table's columns as the destination stores them, (name, type) in order, and
    `descriptions` (table -> lower(column) -> text) for `dagster/column_schema`.
    """

    rows: Mapping[str, int]
    plan: ChangePlan | KeyedPlan | None = None
    inserted: int | None = None
    updated: int | None = None
    deleted: int | None = None
    table_name: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    columns: Mapping[str, Sequence[tuple[str, str]]] = field(default_factory=dict)
    descriptions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def column_schema(columns: Mapping[str, Sequence[tuple[str, str]]],
                  descriptions: Mapping[str, Mapping[str, str]]) -> dg.TableSchema:
    """The asset page's column list: one table's columns as they are, several tables' (the form
    tables) as `<table>.<column>`, each with its type and description where there is one."""
    several = len(columns) > 1
    return dg.TableSchema(columns=[
        dg.TableColumn(name=f"{table}.{name}" if several else name, type=ctype,
                       description=descriptions.get(table, {}).get(name.lower()))
        for table in sorted(columns) for name, ctype in columns[table]
    ])


def write_metadata(report: WriteReport) -> dict[str, Any]:
    """The materialization metadata of a write: row count, table, mode (and why), the changed
    keys of an apply, rows inserted/updated/deleted, then the destination's own entries."""
    metadata: dict[str, Any] = {"dagster/row_count": sum(report.rows.values())}
    if report.table_name is not None:
        metadata["dagster/table_name"] = report.table_name
    if report.columns:
        metadata["dagster/column_schema"] = column_schema(report.columns, report.descriptions)
    plan = report.plan
    if plan is not None:
        metadata["mode"] = plan.action
        metadata["mode_reason"] = plan.reason
        if plan.action == APPLY:
            # one keyed entity: how many keys; several: how many per entity
            metadata["keys_changed"] = (
                len(plan.keys) if isinstance(plan, ChangePlan)
                else dg.MetadataValue.json({e: len(k) for e, k in plan.keys.items()}))
    for name, value in (("rows_inserted", report.inserted), ("rows_updated", report.updated),
                        ("rows_deleted", report.deleted)):
        if value is not None:
            metadata[name] = value
    metadata.update(report.extra)
    return metadata


def studies_metadata(reports: Mapping[str, WriteReport]) -> dict[str, Any]:
    """The metadata of a write of several studies: rows summed, each study's rows and mode."""
    last = list(reports.values())[-1]
    metadata: dict[str, Any] = {
        "dagster/row_count": sum(sum(r.rows.values()) for r in reports.values()),
        "rows_by_study": dg.MetadataValue.json(
            {s: sum(r.rows.values()) for s, r in reports.items()}),
        "mode_by_study": dg.MetadataValue.json(
            {s: r.plan.action for s, r in reports.items() if r.plan is not None}),
    }
    if last.table_name is not None:
        metadata["dagster/table_name"] = last.table_name
    if last.columns:  # the tables of the last study (every study shares the tables)
        metadata["dagster/column_schema"] = column_schema(last.columns, last.descriptions)
    return metadata


# -- the IO manager ----------------------------------------------------------------------------


class DestinationIOManager(dg.ConfigurableIOManager):
    """The IO manager of every destination: checks the output is the write planned for the run's
    study, runs the destination's `write_output`, turns its `DestinationError`s into a `dg.Failure`
    (the message only: no stack trace, no secret) and records the write's metadata."""

    #: how failures name the destination, e.g. "SQL sink"
    label: ClassVar[str]
    #: the write value the destination's assets return
    write_type: ClassVar[type]

    def write_output(self, context: dg.OutputContext, obj: Any) -> WriteReport:
        """Bring the study's slice to the lake's state; raise `DestinationError` on failure."""
        raise NotImplementedError

    @contextmanager
    def step_session(self) -> Iterator[None]:
        """Held open around all the writes of a step (a destination that opens a file or a
        connection per write can share one); by default nothing."""
        yield

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        """One study's write, or {study: write} for a run over several studies (a single-run
        backfill), written study by study."""
        studies = list(context.asset_partition_keys)
        writes = obj if isinstance(obj, Mapping) else {studies[0] if studies else "": obj}
        for study in studies:
            write = writes.get(study)
            if not isinstance(write, self.write_type) or write.study_key != study:
                raise dg.Failure(
                    description=f"{self.label} {context.asset_key.to_user_string()} for study "
                    f"{study}: expected a {self.write_type.__name__} for that study, got "
                    f"{type(write).__name__}")
        reports = {}
        for study in studies:
            try:
                reports[study] = self.write_output(context, writes[study])
            except DestinationError as err:  # config errors included
                done = f" (studies {', '.join(reports)} were written)" if reports else ""
                raise dg.Failure(description=f"{err}{done}") from None
        if len(reports) == 1:
            context.add_output_metadata(write_metadata(next(iter(reports.values()))))
        else:
            context.add_output_metadata(studies_metadata(reports))

    def load_input(self, context: dg.InputContext) -> Any:
        raise dg.Failure(
            description=f"{self.label} {context.asset_key.to_user_string()} cannot be read as "
            "an input: query the destination instead")


# -- the reconciliation check ------------------------------------------------------------------


@dataclass(frozen=True)
class RecordTally:
    """What a destination holds of one study's records: `count` rows (documents, nodes);
    `ids` the record ids it holds, read only when `count` differs from the lake's (else None);
    for form tables also the rows per table and the record ids held more than once."""

    where: str
    count: int
    ids: list[Any] | None = None
    by_table: Mapping[str, int] = field(default_factory=dict)
    duplicate_ids: int = 0
    duplicates_sample: Sequence[tuple[Any, int]] = ()


@contextmanager
def reading(where: str, errors: tuple[type[BaseException], ...],
            clean: Callable[[BaseException], str]) -> Iterator[None]:
    """A destination read: its driver's `errors` become a `DestinationError` saying
    `reading <where> failed: <clean(error)>` (`clean` masks the secrets)."""
    try:
        yield
    except DestinationError:
        raise
    except errors as err:
        raise DestinationError(f"reading {where} failed: {clean(err)}") from None


def masked(secrets: Sequence[str | None]) -> Callable[[BaseException], str]:
    """`clean` for `reading`: the error's type and text, secrets masked, 300 characters."""
    return lambda err: error_detail(err, secrets, 300)


Verdict = Callable[[str, LakeSlice, int, RecordTally, dict[str, list[Any]]], dg.AssetCheckResult]


@dataclass(frozen=True)
class FormTablesVerdict:
    """Every lake record is one row of the destination's form tables: rows equal the records
    and no record id is in two rows (`count_key` names the destination's row count)."""

    count_key: str
    tables: str

    def __call__(self, study: str, records: LakeSlice, expected: int, tally: RecordTally,
                 samples: dict[str, list[Any]]) -> dg.AssetCheckResult:
        from imednet_assets.defs.checks._support import form_tables_verdict

        return form_tables_verdict(
            study, lake_rows=expected, by_table=dict(tally.by_table),
            duplicate_ids=tally.duplicate_ids,
            duplicates_sample=[{"record_id": r, "rows": n} for r, n in tally.duplicates_sample],
            count_key=self.count_key, tables=self.tables, destination=tally.where, **samples)


@dataclass(frozen=True)
class CountVerdict:
    """Every lake record is one thing of the destination (unique by construction, so counting
    is enough). `holder` holds `plural`; `one` is what one record becomes; `place` names where
    (metadata key, value); with `live_only` only live lake records count."""

    holder: str
    plural: str
    one: str
    place: tuple[str, str]
    count_key: str
    live_only: bool = False

    def __call__(self, study: str, records: LakeSlice, expected: int, tally: RecordTally,
                 samples: dict[str, list[Any]]) -> dg.AssetCheckResult:
        from imednet_assets.defs.checks._support import ERROR, result

        live = "live " if self.live_only else ""
        passed = tally.count == expected
        lake = ({"lake_live_rows": expected, "lake_deleted_rows": records.num_rows - expected}
                if self.live_only else {"lake_rows": expected})
        return result(
            passed, ERROR,
            f"study {study}: "
            + (f"{expected} {live}lake records, each one {self.one}" if passed else
               f"{self.holder} holds {tally.count} {self.plural}, the lake {expected} "
               f"{live}records"),
            study=study, **{self.place[0]: self.place[1]}, destination=tally.where, **lake,
            **{self.count_key: tally.count}, **samples)


@dataclass(frozen=True)
class RecordCheck:
    """A destination's `every_record_once`: `read(resource, study, expected)` tallies the
    study's records there (raising `DestinationError` when it cannot read, see `reading`);
    `verdict` compares with the lake; `resource_key` (of `resource_type`) is the resource it
    reads through."""

    asset: str
    description: str
    resource_key: str
    resource_type: type
    read: Callable[[Any, str, int], RecordTally]
    verdict: FormTablesVerdict | CountVerdict


# -- the destination's Dagster objects ---------------------------------------------------------


@dataclass(frozen=True)
class Sink:
    """A destination as Dagster sees it: assets `<name>/<asset>` in group `<name>`, written by
    IO manager `<name>_io_manager` in pool `<name>_writer` (one writer per destination)."""

    name: str

    @property
    def pool(self) -> str:
        return f"{self.name}_writer"

    @property
    def io_manager_key(self) -> str:
        return f"{self.name}_io_manager"

    def _kinds(self, kinds: Collection[str] | None) -> set[str]:
        return set(kinds or {self.name})

    def asset(self, asset: str, ins: Mapping[str, str], description: str,
              kinds: Collection[str] | None = None) -> Callable[[Callable[..., Any]], SinkPart]:
        """Decorates `plan(study, **slices)` into asset `<name>/<asset>`; `ins` maps parameter ->
        lake entity."""
        return lambda plan: SinkPart(asset, dict(ins), description, plan, kinds)

    def study_asset(self, asset: str, entities: Iterable[str], description: str,
                    plan: Callable[[str, dict[str, LakeSlice]], Any],
                    kinds: Collection[str] | None = None) -> SinkPart:
        """Asset `<name>/<asset>` whose write is `plan(study, {entity: slice})`."""
        return SinkPart(asset, {e: e for e in entities}, description,
                        lambda study, **slices: plan(study, slices), kinds)

    def assets(self, parts: Sequence[SinkPart]) -> list[dg.AssetsDefinition]:
        """The destination's assets: one step writing all of them (see `sink_multi_asset`)."""
        return [sink_multi_asset(destination=self.name, parts=parts, kinds=self._kinds(None),
                                 io_manager_key=self.io_manager_key, pool=self.pool)]

    def record_check(self, check: RecordCheck) -> dg.AssetChecksDefinition:
        """`every_record_once` on `<name>/<check.asset>`, in the destination's pool."""
        # imported here: the check helpers import the DuckDB sink, which imports this module
        from imednet_assets.defs.checks._support import (
            id_samples,
            lake_record_ids,
            live_records,
            study_check,
            study_of,
        )

        live_only = isinstance(check.verdict, CountVerdict) and check.verdict.live_only

        def _check(context: dg.AssetCheckExecutionContext, records: LakeSlice,
                   **resources: Any) -> dg.AssetCheckResult:
            study = study_of(context)
            expected = live_records(records) if live_only else records.num_rows
            resource = resources[check.resource_key]
            try:
                tally = check.read(resource, study, expected)
            except DestinationError as err:
                raise dg.Failure(
                    description=f"{CHECK_NAME} for study {study}: {err}") from None
            samples: dict[str, list[Any]] = {"missing_sample": [], "unexpected_sample": []}
            if tally.ids is not None:  # only on a mismatch: which ones
                samples = id_samples(lake_record_ids(records, live_only=live_only), tally.ids)
            return check.verdict(study, records, expected, tally, samples)

        # the resource as a typed parameter (Dagster binds resources by parameter): through
        # `context.resources` some resources (Snowflake's) hand out another object
        params = list(inspect.signature(_check).parameters.values())[:2]
        _check.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
            *params, inspect.Parameter(check.resource_key, inspect.Parameter.KEYWORD_ONLY,
                                       annotation=check.resource_type)])
        return study_check([self.name, check.asset], CHECK_NAME, check.description,
                           additional_ins={"records": lake_in("records")},
                           pool=self.pool)(_check)

    def definitions(self, assets: Sequence[dg.AssetsDefinition], resources: Mapping[str, Any],
                    check: RecordCheck | None = None) -> dg.Definitions:
        """The destination's part of the definitions: its assets, its check, its resources."""
        return dg.Definitions(assets=list(assets),
                              asset_checks=[self.record_check(check)] if check else [],
                              resources=dict(resources))
