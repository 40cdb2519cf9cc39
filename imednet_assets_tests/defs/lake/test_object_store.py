"""What only the object-store lake has, against S3 on loopback (moto's server, a test double of
S3, with IAM keys enforced): old versions stay readable for the grace period and go after it, a
lost race between writers leaves one writer's whole slice, bad keys give a clear error that names
the slice and never the secret, and the configuration keeps keys as `dg.EnvVar`s."""

import dagster as dg
import pytest

from imednet_assets.defs.lake import object_slices
from imednet_assets.defs.lake.io_manager import LakeIOManager, configured_lake_io_manager
from imednet_assets.defs.lake.object_slices import ObjectStoreSlices
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.lake.version_manifest import SLICE_OBJECT
from imednet_assets_tests.defs.lake.lakes import (
    KEY_ID_ENV,
    SECRET_ENV,
    S3Lake,
    batches_of,
    lake_asset,
    rows,
)


def write(lake: S3Lake, instance, data, **io) -> dg.ExecuteInProcessResult:
    asset = lake_asset("records", {"fn": lambda s: batches_of(data, 2)}, "form_key")
    return dg.materialize([asset], partition_key="S1", instance=instance,
                          resources={"lake_io_manager": lake.io(**io)},
                          raise_on_error=False)


def reader_slices(lake: S3Lake, tmp_path, name: str) -> ObjectStoreSlices:
    """Another machine's view of the lake (its own local copies)."""
    return ObjectStoreSlices(lake.store(), tmp_path / name, grace_s=3600)


def test_a_reader_on_the_old_version_keeps_working_until_the_grace_has_passed(
    s3_lake, instance, tmp_path
):
    first, second = rows("S1", [(1, "A"), (2, "B")]), rows("S1", [(1, "A"), (3, "C")])
    assert write(s3_lake, instance, first).success
    slices = reader_slices(s3_lake, tmp_path, "slow-reader")
    seen = slices.current("records", "S1")  # a reader read the manifest, then dawdled
    assert write(s3_lake, instance, second).success
    assert s3_lake.manifest("records", "S1").retired[-1].version == seen.version

    old = slices.local_copy("records", "S1", seen)  # still there: the grace has not passed
    old_rows = LakeSlice.at(old, "records", "S1", None).dataset().to_table()
    assert old_rows.sort_by("record_id").equals(first)
    # form A did not change: the new version refers to the old version's file
    assert {f.path: f.version for f in s3_lake.manifest("records", "S1").files} == {
        "form_key=A/part-00000.parquet": seen.version,
        "form_key=C/part-00000.parquet": s3_lake.manifest("records", "S1").version,
    }

    # a writer with no grace left (here: an unchanged replay, which commits nothing) sweeps
    result = write(s3_lake, instance, second, version_grace_s=0)
    assert result.success
    manifest = s3_lake.manifest("records", "S1")
    assert sorted(s3_lake.snapshot("records", "S1")) == sorted(
        [SLICE_OBJECT, *(f.key for f in manifest.files)])
    with pytest.raises(FileNotFoundError):
        reader_slices(s3_lake, tmp_path, "late-reader").local_copy("records", "S1", seen)
    assert s3_lake.table("records", "S1").equals(second)


def test_a_lost_race_between_two_writers_leaves_one_whole_slice(s3_lake, tmp_path, monkeypatch):
    """Dagster's run queue keeps one run per study; should two writers race anyway (each on
    its own machine: its own local staging and lock), the one that commits first wins whole and
    the other gives up, even when the winner swept the loser's files (grace 0)."""
    seam = object_slices.before_manifest_put
    old = rows("S1", [(9, "Z")])
    tables = {"first": rows("S1", [(1, "A"), (2, "B")]), "second": rows("S1", [(3, "C")])}
    results: dict[str, dg.ExecuteInProcessResult] = {}

    def writer(name: str, data) -> None:
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("study", ["S1"])
        results[name] = write(s3_lake, instance, data,
                              cache_dir=str(tmp_path / f"machine-{name}"), version_grace_s=0)

    writer("before", old)

    def second_overtakes(url: str) -> None:
        # the first writer has uploaded, not committed: the second writes and commits now
        monkeypatch.setattr(object_slices, "before_manifest_put", seam)
        writer("second", tables["second"])

    monkeypatch.setattr(object_slices, "before_manifest_put", second_overtakes)
    writer("first", tables["first"])
    assert results["second"].success and not results["first"].success
    message = results["first"].get_step_failure_events()[0].step_failure_data.error.cause.message
    assert "LostRace: another writer committed the slice at " in message
    assert s3_lake.table("records", "S1").equals(tables["second"])
    # the next writer sweeps whatever the loser left (grace 0) and ends exact
    writer("next", tables["first"])
    assert results["next"].success
    assert s3_lake.table("records", "S1").equals(tables["first"])
    manifest = s3_lake.manifest("records", "S1")
    assert sorted(s3_lake.snapshot("records", "S1")) == sorted(
        [SLICE_OBJECT, *(f.key for f in manifest.files)])


@pytest.mark.parametrize("keys", ["wrong secret", "read-only user"])
def test_bad_keys_fail_clearly_without_the_secret_and_keep_the_old_slice(
    s3_lake, s3_server, instance, monkeypatch, keys
):
    old = rows("S1", [(1, "A"), (2, "B")])
    assert write(s3_lake, instance, old).success
    key_id, secret = ((s3_server.keys[0], "wrong-secret-Zq81vXr0LpS2mW")
                      if keys == "wrong secret" else s3_server.read_only_keys)
    monkeypatch.setenv(KEY_ID_ENV, key_id)
    monkeypatch.setenv(SECRET_ENV, secret)

    result = write(s3_lake, instance, rows("S1", [(1, "A"), (3, "C")]))
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    message = error.cause.message
    assert message.startswith(
        "imednet_assets.defs.lake.io_manager.LakeWriteError: imednet/records: writing the lake "
        f"slice for study 'S1' (partition 'S1') to {s3_lake.url}/records/study_key=S1 failed, "
        "the previous slice is kept: OSError: "
    )
    assert "ACCESS_DENIED" in message or "SIGNATURE_DOES_NOT_MATCH" in message
    everything = repr(error) + repr(result.all_events) + repr(
        list(instance.all_logs(result.run_id)))
    assert secret not in everything
    if keys == "read-only user":  # the manifest was read; the new version's upload refused
        assert "When uploading object with key 'lake/records/study_key=S1/v-" in message

    monkeypatch.setenv(KEY_ID_ENV, s3_server.keys[0])
    monkeypatch.setenv(SECRET_ENV, s3_server.keys[1])
    assert s3_lake.table("records", "S1").equals(old)


def test_the_configuration_keeps_the_keys_in_the_environment(tmp_path):
    env = {"IMEDNET_ASSETS_LAKE_URL": "s3://bucket/some/prefix",
           "IMEDNET_ASSETS_S3_ENDPOINT_URL": "http://127.0.0.1:9",
           "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
           "AWS_REGION": "eu-west-1", "IMEDNET_ASSETS_LAKE_GRACE_SECONDS": "60"}
    io = configured_lake_io_manager(env)
    assert io.root == "s3://bucket/some/prefix"
    assert io.s3_endpoint_url == "http://127.0.0.1:9" and io.aws_region == "eu-west-1"
    assert isinstance(io.aws_access_key_id, dg.EnvVar)
    assert isinstance(io.aws_secret_access_key, dg.EnvVar)
    assert io.aws_secret_access_key.env_var_name == "AWS_SECRET_ACCESS_KEY"
    assert io.version_grace_s == 60
    resolved = LakeIOManager(root="s3://bucket/p", aws_secret_access_key="s3cr3t-value")
    assert "s3cr3t-value" not in repr(resolved) and "s3cr3t-value" not in repr(
        resolved.slices().store)
    # keys unset: pyarrow's default chain (profile, instance or pod role) finds them
    bare = configured_lake_io_manager({"IMEDNET_ASSETS_LAKE_URL": "s3://bucket/p"})
    assert bare.aws_access_key_id is None and bare.aws_secret_access_key is None
    # unset or a plain path: the local lake, as before
    assert configured_lake_io_manager({}).root is None
    local = configured_lake_io_manager({"IMEDNET_ASSETS_LAKE_URL": str(tmp_path / "lake")})
    assert local.root == str(tmp_path / "lake") and not local.is_object_store()
