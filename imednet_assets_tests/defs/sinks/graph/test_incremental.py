"""Simulator -> incremental lake refresh -> FalkorDB (native protocol): changed records, subjects
and visits are merged by key, an unchanged lake is skipped without reading it, a purge rewrites,
and the graph always equals a fresh full refresh into an empty graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.modes import FULL, INCREMENTAL, mode_tags
from imednet_assets.defs.sinks.graph import writer
from imednet_assets.defs.sinks.graph.assets import build_graph_asset
from imednet_assets.defs.sinks.graph.cypher import SYNC_STATE
from imednet_assets.defs.sinks.graph.io_manager import GraphIOManager
from imednet_assets.defs.sinks.graph.model import ENTITIES
from imednet_assets.defs.sinks.graph.resources import GraphDestination
from imednet_assets_tests.defs.ingest.conftest import imednet_resource
from imednet_assets_tests.defs.sinks.graph.conftest import (
    FalkorServer,
    GraphSink,
    rec,
    small_study,
    snapshot,
)
from imednet_assets_tests.defs.sinks.mongodb.conftest import stamp_manifest, write_logged

pytestmark = pytest.mark.usefixtures("imednet_env")
#: Only the lake entities the graph reads are ingested (keeps the test short).
INGEST = [dg.AssetKey(["imednet", e]) for e in ENTITIES]


def _sink(lake: Path, server: FalkorServer, graph: str, upsert: bool = True) -> GraphSink:
    return GraphSink(lake, GraphDestination(falkordb_url=server.url, falkordb_graph=graph,
                                            batch_size=50, upsert=upsert))


def refresh(sink: GraphSink, study: str, mode: str) -> dict[str, Any]:
    """Ingest the study into the sink's lake (`mode`), then write its graph; the metadata."""
    if study not in sink.instance.get_dynamic_partitions("study"):
        sink.instance.add_dynamic_partitions("study", [study])
    result = dg.materialize(
        [*ingest_assets, build_graph_asset("falkordb")],
        selection=[*INGEST, dg.AssetKey(["graph", "study_graph"])], partition_key=study,
        instance=sink.instance, tags=mode_tags(mode),
        resources={"imednet": imednet_resource(),
                   "lake_io_manager": LakeIOManager(root=str(sink.lake)),
                   "graph_io_manager": GraphIOManager(destination=sink.destination)})
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey(["graph", "study_graph"])]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def sync_states(server: FalkorServer, graph: str) -> list[list]:
    g = server.client().select_graph(graph)
    return g.query(f"MATCH (s:{SYNC_STATE}) RETURN s.sync_key, s.tokens ORDER BY s.sync_key"
                   ).result_set


def assert_like_a_fresh_full_refresh(sink: GraphSink, server: FalkorServer, graph: str,
                                     study: str, tmp_path: Path) -> None:
    """A new lake and an empty graph, one full refresh: the same nodes and relationships (all
    properties but the load stamp; sync state left out, it names the lake's lineage)."""
    n = len(list(tmp_path.glob("fresh-*")))
    fresh = _sink(tmp_path / f"fresh-{n}", server, f"{graph}_fresh{n}")
    assert refresh(fresh, study, FULL)["mode"] == "rewrite"
    assert snapshot(server, graph, study, sync_state=False) == snapshot(
        server, f"{graph}_fresh{n}", study, sync_state=False)


def test_changes_merge_by_key_then_skip_then_purge_rewrites(
    sim, tmp_path: Path, falkordb_server: FalkorServer, graph_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = _sink(tmp_path / "lake", falkordb_server, graph_name)
    one, other = sorted(sim.stats())
    for study in (one, other):
        assert refresh(sink, study, FULL)["mode"] == "rewrite"
    theirs = snapshot(falkordb_server, graph_name, other)
    states = sync_states(falkordb_server, graph_name)

    changed = sim.advance(study_key=one, modify=2, add=1, delete=1, delete_subjects=1)
    meta = refresh(sink, one, INCREMENTAL)

    assert (meta["mode"], meta["keys_changed"]) == ("apply", {"records": 4, "subjects": 1})
    assert meta["mode_reason"] == "4 changed records, 1 changed subjects"
    per_label = meta["nodes"]
    # the added record created, the modified ones updated; the deleted record and subject gone
    assert (per_label["Record"]["created"], per_label["Record"]["deleted"]) == (1, 1)
    assert per_label["Record"]["written"] == 3  # modified 2 + added 1 (the deleted one is not)
    assert per_label["Subject"]["deleted"] == 1
    assert meta["dagster/row_count"] == sum(meta["node_counts"].values())
    g = falkordb_server.client().select_graph(graph_name)
    live = {r for [r] in g.query("MATCH (r:Record {study_key: $s}) RETURN r.record_id",
                                 {"s": one}).result_set}
    assert set(changed["added"]) <= live and not set(changed["deleted"]) & live
    assert_like_a_fresh_full_refresh(sink, falkordb_server, graph_name, one, tmp_path)

    # nothing changed: skipped without opening a lake file, nothing written
    before = snapshot(falkordb_server, graph_name)

    def no_reading(self: LakeSlice) -> None:
        raise AssertionError(f"the lake slice of {self.entity} was read")

    with monkeypatch.context() as patched:
        patched.setattr(LakeSlice, "dataset", no_reading)
        again = sink.metadata(sink.run(one))
    assert (again["mode"], again["nodes_written"], again["relationships_written"]) == (
        "skip", 0, 0)
    assert snapshot(falkordb_server, graph_name) == before

    # a purge makes the lake refresh the slice whole: the graph rewrites the study
    purged = sim.advance(study_key=one, purge=1)["purged"]
    meta = refresh(sink, one, INCREMENTAL)
    assert meta["mode"] == "rewrite" and "does not reach back" in meta["mode_reason"]
    assert not g.query("MATCH (r:Record {study_key: $s, record_id: $r}) RETURN r",
                       {"s": one, "r": purged[0]}).result_set
    assert_like_a_fresh_full_refresh(sink, falkordb_server, graph_name, one, tmp_path)

    # the other study: not a node or relationship moved, its sync state neither
    assert snapshot(falkordb_server, graph_name, other) == theirs
    key = f"study_graph/{other}"
    assert [s for s in sync_states(falkordb_server, graph_name) if s[0] == key] == [
        s for s in states if s[0] == key]


def _study(root: Path, *, subjects: list[dict], visits: list[dict], records: list[dict],
           changed: dict[str, list] | None = None) -> None:
    """Study A in the lake with manifests: a first full write of every slice, or (`changed`)
    an incremental merge of those keys into the records, subjects and visits slices."""
    changed = changed or {}
    rows = {"subjects": subjects, "visits": visits, "records": records}
    if not changed:
        small_study(root, "A", records, subjects=subjects, visits=visits)
        for entity in ENTITIES:
            stamp_manifest(root, entity, "A")
        return
    for entity, keys in changed.items():
        write_logged(root, entity, "A", rows[entity], keys=keys)


def _fail(step: str, batch: int) -> None:
    raise RuntimeError(f"killed after {step} batch {batch}")


@pytest.mark.parametrize("upsert", [True, False])
def test_moved_revived_renamed_and_undeclared_changes_merge_exactly(
    tmp_path: Path, falkordb_server: FalkorServer, graph_name: str, upsert: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the simulator does not make: a visit moving to another subject, a subject coming
    back from deleted and one whose key changed, a record moving visit, a parent record coming
    back (its child's CHILD_OF returns) and one deleted (it goes), and a record-data key the
    dictionary lacks going away while another comes. The merged graph equals a clean rewrite
    of the same lake, sync state included; also after a rewrite in insert mode (`CREATE`)."""
    sink = _sink(tmp_path / "lake", falkordb_server, graph_name, upsert)
    subjects = [{"subject_id": i, "subject_key": f"S-{i}", "site_id": 101 + i % 2,
                 "deleted": i == 2} for i in range(3)]
    visits = [{"visit_id": 10 + i, "subject_key": f"S-{i}", "deleted": False} for i in range(3)]
    records = [
        rec(1, "VS", {"weight": "70"}, subject=0),
        rec(2, "VS", {"weight": "80", "extra_q": "x"}, subject=1),
        rec(3, "AE", {"aeterm": "Headache"}, subject=0, visit=0),
        rec(4, "AE", {"aeterm": "Nausea"}, subject=0, visit=0, parent=3),
        rec(5, "AE", {"aeterm": "Rash"}, subject=2, visit=0),
        rec(6, "AE", {"aeterm": "Cough"}, subject=1, visit=0, parent=7),
        rec(7, "AE", {"aeterm": "Cold"}, subject=1, visit=0, deleted=True),
    ]
    _study(sink.lake, subjects=subjects, visits=visits, records=records)
    assert sink.metadata(sink.run("A"))["mode"] == "rewrite"

    subjects[1]["subject_key"] = "S-9"  # renamed: the old node goes, its visit loses its subject
    subjects[2]["deleted"] = False  # back: its visits and subject-level record hang off it again
    visits[0]["subject_key"] = "S-2"  # visit 10 moved from S-0 to S-2
    records[0] = rec(1, "VS", {"weight": "71"}, subject=1, visit=11)
    records[1] = rec(2, "VS", {"weight": "80", "new_q": "y"}, subject=1)
    records[2] = rec(3, "AE", {"aeterm": "Headache"}, subject=0, visit=0, deleted=True)
    records[6] = rec(7, "AE", {"aeterm": "Cold"}, subject=1, visit=0)
    _study(sink.lake, subjects=subjects, visits=visits, records=records,
           changed={"subjects": [1, 2], "visits": [10], "records": [1, 2, 3, 7]})
    # an apply dying half way keeps the old sync state: the next run applies it all again
    with monkeypatch.context() as patched:
        patched.setattr(writer, "after_batch", _fail)
        assert not sink.run("A", raise_on_error=False).success
    meta = sink.metadata(sink.run("A"))
    assert (meta["mode"], meta["keys_changed"]) == (
        "apply", {"records": 4, "subjects": 2, "visits": 1})
    assert meta["nodes"]["Variable"]["deleted"] == 1  # `extra_q`: no live record has it now

    clean = _sink(tmp_path / "lake", falkordb_server, f"{graph_name}_clean", upsert)
    assert clean.metadata(clean.run("A"))["mode"] == "rewrite"
    assert snapshot(falkordb_server, graph_name) == snapshot(falkordb_server,
                                                             f"{graph_name}_clean")
    assert sink.metadata(sink.run("A"))["mode"] == "skip"
