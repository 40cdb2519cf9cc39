"""`imednet/data_cut`: one study partition's lake slices frozen as a named cut, run on demand
with `{"name": ...}` config; each materialization in the UI is one cut, its metadata says which."""

# no `from __future__ import annotations`: Dagster reads the config annotation at run time
import hashlib
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from imednet_assets.defs.cuts.manifest import MANIFEST_NAME, CutError, CutManifest, cuts_root
from imednet_assets.defs.cuts.writer import make_cut
from imednet_assets.defs.execution import step_tags
from imednet_assets.defs.ingest.assets import ENTITIES, LAKE_IO_MANAGER_KEY
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.lake_inputs import lake_key

DATA_CUTS_KEY = "data_cuts"
DATA_CUT_KEY = dg.AssetKey(["imednet", "data_cut"])
CUTS_GROUP = "cuts"
USER_TAGS = ("dagster/user", "user")
"""Run tags that name who launched the run (Dagster+ sets the first; OSS sets none)."""


class DataCuts(dg.ConfigurableResource):
    """Where cuts are kept."""

    root: str | None = Field(default=None,
                             description="Cuts folder; defaults to <IMEDNET_ASSETS_DATA_DIR>/cuts.")

    def folder(self) -> Path:
        return cuts_root(self.root)


class DataCutConfig(dg.Config):
    """The cut to make."""

    name: str = Field(description="Cut name, e.g. interim-2026-06: ASCII letters, digits, '-', "
                      "'_', '.'. Never overwritten: the same name again is a no-op when the "
                      "data is identical, an error otherwise.")


def made_by(context: dg.OpExecutionContext) -> dict[str, Any]:
    """The run that makes the cut: id, job, tags and the user where a tag names one."""
    tags = {k: str(v) for k, v in sorted(context.run.tags.items())}
    user = next((tags[t] for t in USER_TAGS if tags.get(t)), None)
    return {"run_id": context.run_id, "job": context.job_name, "user": user, "tags": tags}


def cut_metadata(manifest: CutManifest, folder: Path, made_now: bool) -> dict[str, Any]:
    """What the UI shows of a cut."""
    path = folder / MANIFEST_NAME
    rows = {e: s["rows"] for e, s in sorted(manifest.slices.items())}
    table = ["| entity | rows | watermark |", "|---|---|---|"]
    table += [f"| {e} | {s['rows']} | {s['watermark'] or ''} |"
              for e, s in sorted(manifest.slices.items())]
    return {
        "cut_name": manifest.name,
        "made_now": dg.MetadataValue.bool(made_now),
        "manifest_path": dg.MetadataValue.path(str(path)),
        "manifest_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "content_sha256": manifest.content_sha256,
        "file_count": len(manifest.files),
        "total_bytes": manifest.total_bytes,
        "watermarks": dg.MetadataValue.json(manifest.watermarks),
        "created_at": manifest.created_at,
        "dagster/row_count": sum(rows.values()),
        "slices": dg.MetadataValue.md("\n".join(table)),
    }


data_cut = dg.AssetSpec(
    key=DATA_CUT_KEY,
    deps=[lake_key(e) for e in ENTITIES],
    group_name=CUTS_GROUP,
    kinds={"parquet"},
    partitions_def=study_partitions,
    tags={"imednet/layer": CUTS_GROUP},
    description="A named, read-only copy of the study's lake slices with a SHA-256 manifest: "
    "every export can be produced from it again, byte for byte (`imednet-assets cut-export`). "
    "Made by `data_cut_job` with `{name}` config; each materialization is one cut.",
)
"""Not materializable by itself: "Materialize all" must not ask for a cut name, so the cut is
made by its own job, which records a materialization of this asset (lineage from the lake)."""

DATA_CUT_OP = "make_data_cut"


@dg.op(
    name=DATA_CUT_OP,
    required_resource_keys={LAKE_IO_MANAGER_KEY, DATA_CUTS_KEY},
    # the cut is files on this machine's disk (`defs/execution.py`)
    tags=step_tags("cuts"),
)
def make_data_cut(context: dg.OpExecutionContext, config: DataCutConfig) -> None:
    lake = getattr(context.resources, LAKE_IO_MANAGER_KEY)
    cuts: DataCuts = getattr(context.resources, DATA_CUTS_KEY)
    study = context.partition_key
    try:
        manifest, made_now = make_cut(lake, study, config.name, ENTITIES,
                                      root=cuts.folder(), made_by=made_by(context))
    except (CutError, FileNotFoundError) as err:
        raise dg.Failure(description=f"data cut {config.name!r}: {err}") from None
    folder = cuts.folder() / manifest.name
    context.log.info(f"data cut {manifest.name!r} of study {manifest.study_key!r}: "
                     f"{'made' if made_now else 'already there with identical content'} "
                     f"at {folder}")
    context.log_event(dg.AssetMaterialization(
        asset_key=DATA_CUT_KEY, partition=study,
        metadata=cut_metadata(manifest, folder, made_now)))


@dg.job(partitions_def=study_partitions, description="Freeze one study's lake slices as a named "
        "data cut (run config: the cut's name).")
def data_cut_job() -> None:
    make_data_cut()


def data_cut_defs(root: str | None = None) -> dg.Definitions:
    """The cut asset and where cuts go; the lake IO manager comes from the top level."""
    return dg.Definitions(assets=[data_cut], jobs=[data_cut_job],
                          resources={DATA_CUTS_KEY: DataCuts(root=root)})
