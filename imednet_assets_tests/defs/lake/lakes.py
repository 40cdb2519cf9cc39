"""The two lakes the lake tests run against, behind one interface: a local folder, and a bucket
on moto's S3 server on loopback (moto is a test double of S3, speaking its API and IAM), plus the
rows and assets the tests write (no `from __future__ import annotations`: Dagster reads the
assets' `context` annotation)."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.object_store import ObjectStore
from imednet_assets.defs.lake.slice import LakeSlice, LakeWrite, study_folder_name
from imednet_assets.defs.lake.version_manifest import SLICE_OBJECT, VersionManifest
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.local_servers.object_store import REGION

SCHEMA = pa.schema(
    [("study_key", pa.string()), ("form_key", pa.string()), ("record_id", pa.int64()),
     ("value", pa.string())]
)
Source = Callable[[str], Iterator[pa.RecordBatch]]
KEY_ID_ENV, SECRET_ENV = "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"


def rows(study: str, ids_forms: list[tuple[int, str | None]]) -> pa.Table:
    return pa.table(
        {
            "study_key": [study] * len(ids_forms),
            "form_key": [f for _, f in ids_forms],
            "record_id": [i for i, _ in ids_forms],
            "value": [f"v{i}" for i, _ in ids_forms],
        },
        schema=SCHEMA,
    )


def batches_of(table: pa.Table, size: int) -> Iterator[pa.RecordBatch]:
    yield from table.to_batches(max_chunksize=size)


def lake_asset(entity: str, source: dict[str, Source], split_by: str | None) -> dg.AssetsDefinition:
    """A study-partitioned asset streaming `source[study](study)` to the lake."""

    @dg.asset(key=["imednet", entity], partitions_def=study_partitions,
              io_manager_key="lake_io_manager")
    def _asset(context: dg.AssetExecutionContext):
        writes = {
            s: LakeWrite(entity, s, SCHEMA, source["fn"](s), "record_id", split_by)
            for s in context.partition_keys
        }
        return writes if len(writes) > 1 else writes[context.partition_key]

    return _asset


class Lake:
    """What a test needs of a lake, whatever it is stored on."""

    kind: str

    def io(self, **knobs: Any) -> LakeIOManager:
        """The writer's IO manager."""
        raise NotImplementedError

    def io_config(self) -> dict[str, Any]:
        """The writer's IO manager config for another process (keys from its environment)."""
        raise NotImplementedError

    def sibling(self, name: str) -> "Lake":
        """Another, empty lake of the same kind."""
        raise NotImplementedError

    def reader(self) -> LakeIOManager:
        """An IO manager reading as another machine would (its own local copies)."""
        raise NotImplementedError

    def location(self, entity: str, study: str) -> str:
        raise NotImplementedError

    def snapshot(self, entity: str, study: str | None = None) -> dict[str, tuple[bytes, Any]]:
        """Everything the lake stores for `entity` (one study's slice when given): name ->
        (bytes, modification time); locks and local copies left out."""
        raise NotImplementedError

    def leftovers(self, entity: str) -> list[str]:
        """The entity's live study slices plus anything left in staging or trash."""
        raise NotImplementedError

    def read(self, entity: str, study: str) -> LakeSlice:
        return self.reader().read_slice(entity, study)

    def table(self, entity: str, study: str, sort_by: str = "record_id") -> pa.Table:
        return self.read(entity, study).dataset().to_table().sort_by(sort_by)

    def file_names(self, entity: str, study: str) -> list[str]:
        lake_slice = self.read(entity, study)
        return [f.relative_to(lake_slice.path).as_posix() for f in lake_slice.files]


class LocalLake(Lake):
    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def io(self, **knobs: Any) -> LakeIOManager:
        knobs.pop("version_grace_s", None)  # a local lake keeps no old versions
        return LakeIOManager(root=str(self.root), **knobs)

    def io_config(self) -> dict[str, Any]:
        return {"root": str(self.root)}

    def sibling(self, name: str) -> "LocalLake":
        return LocalLake(self.root.parent / f"{self.root.name}-{name}")

    def reader(self) -> LakeIOManager:
        return self.io()

    def location(self, entity: str, study: str) -> str:
        return str(self.root / entity / study_folder_name(study))

    def snapshot(self, entity: str, study: str | None = None) -> dict[str, tuple[bytes, Any]]:
        folder = self.root / entity
        if study is not None:
            folder = folder / study_folder_name(study)
        return {
            str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and ".locks" not in p.parts
        }

    def leftovers(self, entity: str) -> list[str]:
        folder = self.root / entity
        names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
        for hidden in (".staging", ".trash"):
            if (folder / hidden).exists():
                names += [f"{hidden}/{n}" for n in sorted(os.listdir(folder / hidden))]
        return names


class S3Lake(Lake):
    """A bucket of its own on the moto server; keys from the environment through dg.EnvVar."""

    kind = "s3"

    def __init__(self, endpoint_url: str, bucket: str, work: Path, keys: tuple[str, str],
                 prefix: str = "lake") -> None:
        self.endpoint_url, self.bucket, self.prefix = endpoint_url, bucket, prefix
        self.url, self.work, self.keys = f"s3://{bucket}/{prefix}", work, keys

    def io(self, **knobs: Any) -> LakeIOManager:
        config = {**self.io_config(), **knobs}
        return LakeIOManager(aws_access_key_id=dg.EnvVar(KEY_ID_ENV),
                             aws_secret_access_key=dg.EnvVar(SECRET_ENV), **config)

    def io_config(self) -> dict[str, Any]:
        return {"root": self.url, "s3_endpoint_url": self.endpoint_url, "aws_region": REGION,
                "cache_dir": str(self.work / "writer")}

    def sibling(self, name: str) -> "S3Lake":
        return S3Lake(self.endpoint_url, self.bucket, self.work.parent / f"{self.work.name}-{name}",
                      self.keys, prefix=f"{self.prefix}-{name}")

    def reader(self) -> LakeIOManager:
        return self.io(cache_dir=str(self.work / "reader"))

    def store(self) -> ObjectStore:
        """The bucket with the good keys (whatever the environment says at the moment)."""
        return ObjectStore(self.url, endpoint_url=self.endpoint_url, access_key_id=self.keys[0],
                           secret_access_key=self.keys[1], region=REGION)

    def location(self, entity: str, study: str) -> str:
        return f"{self.url}/{entity}/{study_folder_name(study)}"

    def snapshot(self, entity: str, study: str | None = None) -> dict[str, tuple[bytes, Any]]:
        store = self.store()
        prefix = store.path(entity, *([study_folder_name(study)] if study is not None else []))
        return {
            info.path[len(prefix) + 1:]: (store.get_bytes(info.path), info.mtime)
            for info in sorted(store.list_files(prefix), key=lambda i: i.path)
        }

    def manifest(self, entity: str, study: str) -> VersionManifest:
        store = self.store()
        data = store.get_bytes(store.path(entity, study_folder_name(study), SLICE_OBJECT))
        assert data is not None, f"no manifest of {entity} for {study}"
        return VersionManifest.from_json(data)

    def leftovers(self, entity: str) -> list[str]:
        names = sorted({name.split("/", 1)[0] for name in self.snapshot(entity)
                        if name.endswith("/" + SLICE_OBJECT)})
        staging = self.work / "writer" / entity / ".staging"
        if staging.exists():
            names += [f".staging/{n}" for n in sorted(os.listdir(staging))]
        return names
