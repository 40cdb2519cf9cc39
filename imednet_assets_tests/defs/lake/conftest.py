"""Fixtures: the lake tests run against a local folder and against S3 on loopback (moto's server,
a test double of S3, with IAM credentials enforced), each test with a bucket of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from imednet_assets.local_servers.object_store import MotoS3Server
from imednet_assets_tests.defs.lake.lakes import KEY_ID_ENV, SECRET_ENV, Lake, LocalLake, S3Lake


@dataclass(frozen=True)
class S3Server:
    """A running moto S3 server, the keys of a user allowed every S3 action and those of a user
    who may only read."""

    server: MotoS3Server
    keys: tuple[str, str]
    read_only_keys: tuple[str, str]

    def bucket(self) -> str:
        name = f"lake-{uuid.uuid4().hex[:12]}"
        self.server.create_bucket(name, aws_access_key_id=self.keys[0],
                                  aws_secret_access_key=self.keys[1])
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with MotoS3Server() as server:
        keys = server.create_credentials()
        read_only = server.create_credentials("reader", ("s3:GetObject", "s3:ListBucket"))
        server.enforce_credentials()
        yield S3Server(server, keys, read_only)


@pytest.fixture
def s3_lake(s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3Lake:
    monkeypatch.setenv(KEY_ID_ENV, s3_server.keys[0])
    monkeypatch.setenv(SECRET_ENV, s3_server.keys[1])
    return S3Lake(s3_server.server.endpoint_url, s3_server.bucket(), tmp_path / "s3-work",
                  s3_server.keys)


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    """The same test on a local lake and on an object-store lake."""
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    return request.getfixturevalue("s3_lake")


@pytest.fixture
def instance() -> dg.DagsterInstance:
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("study", ["S1", "S/2"])
    return inst
