"""The real imednet SDK 0.5.0 runs unchanged against the simulator; its counts equal the store's."""

from __future__ import annotations

import pytest
from imednet import ImednetSDK
from imednet.workflows.record_mapper import RecordMapper

from imednet_assets.simulator import SimulatorConfig, SimulatorServer

STUDY = "CARDIO-01"


@pytest.fixture(scope="module")
def sdk_sim():
    with SimulatorServer(SimulatorConfig(seed=9, studies=2, subjects=5)) as s:
        sdk = ImednetSDK(api_key="sim-key", security_key="sim-secret", base_url=s.base_url,
                         retries=1, backoff_factor=0)
        with sdk:
            yield s, sdk


def test_sdk_lists_every_entity(sdk_sim):
    sim, sdk = sdk_sim
    stats = sim.stats()
    assert sorted(s.study_key for s in sdk.studies.list()) == sorted(stats)
    st = stats[STUDY]
    assert len(sdk.sites.list(STUDY)) == st["sites"]
    assert len(sdk.subjects.list(STUDY)) == st["subjects"]
    assert len(sdk.intervals.list(STUDY)) == st["intervals"]
    assert len(sdk.forms.list(STUDY)) == st["forms"]
    assert len(sdk.variables.list(STUDY)) == st["variables"]
    assert len(sdk.visits.list(STUDY)) == st["visits"]
    records = sdk.records.list(STUDY)  # pages of 100 with filter=studyKey==CARDIO-01
    assert len(records) == st["records"] > 100
    assert len({r.record_id for r in records}) == st["records"]
    assert sum(r.deleted for r in records) == st["records_deleted"]
    assert len(sdk.record_revisions.list(STUDY)) == st["record_revisions"]
    assert len(sdk.queries.list(STUDY)) == st["queries"]
    assert len(sdk.codings.list(STUDY)) == st["codings"]


def test_sdk_filters_and_get(sdk_sim):
    sim, sdk = sdk_sim
    st = sim.stats()[STUDY]
    ae = sdk.records.list(STUDY, form_key="AELOG")
    assert len(ae) == st["records_by_form"]["AELOG"]
    since = sdk.records.list(STUDY, date_modified=(">=", "2024-01-01T00:00:00Z"))
    assert 0 < len(since) < st["records"]
    subject = sdk.subjects.list(STUDY)[2]
    assert sdk.subjects.get(STUDY, subject.subject_key).subject_id == subject.subject_id
    assert sdk.records.get(STUDY, ae[0].record_id).form_key == "AELOG"


def test_record_mapper_dataframe(sdk_sim):
    sim, sdk = sdk_sim
    st = sim.stats()[STUDY]
    df = RecordMapper(sdk).dataframe(STUDY, use_labels_as_columns=False)
    assert len(df) == st["records"]
    variables = sdk.variables.list(STUDY)
    assert list(df.columns) == ["recordId", "subjectKey", "visitId", "formId", "recordStatus",
                                "dateCreated"] + [v.variable_name for v in variables]
    vs = df[df["formId"] == next(f.form_id for f in sdk.forms.list(STUDY) if f.form_key == "VS")]
    assert len(vs) == st["records_by_form"]["VS"] and vs["sysbp"].notna().all()


def test_record_mapper_whitelists_are_honoured(sdk_sim):
    sim, sdk = sdk_sim
    st = sim.stats()[STUDY]
    vs_id = next(f.form_id for f in sdk.forms.list(STUDY) if f.form_key == "VS")
    df = RecordMapper(sdk).dataframe(STUDY, use_labels_as_columns=False,
                                     variable_whitelist=["sysbp", "diabp"],
                                     form_whitelist=[vs_id])
    assert list(df.columns)[6:] == ["sysbp", "diabp"]  # variables honour the whitelists
    # 0.5.0 fetches records without the form whitelist: every record, only VS ones filled
    assert len(df) == st["records"]
    assert df["sysbp"].notna().sum() == st["records_by_form"]["VS"]
