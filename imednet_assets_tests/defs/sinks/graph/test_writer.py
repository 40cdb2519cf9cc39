"""The graph asset against a real FalkorDB: replays are exact, source changes land everywhere,
hostile names and values arrive intact, and failures are clear and lose nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from imednet_assets.defs.sinks.graph import writer
from imednet_assets.defs.sinks.graph.properties import property_name
from imednet_assets.defs.sinks.graph.resources import GraphDestination
from imednet_assets_tests.defs.sinks.duckdb.conftest import variable
from imednet_assets_tests.defs.sinks.graph.conftest import (
    FalkorServer,
    GraphSink,
    counts,
    failure_message,
    free_port,
    rec,
    small_study,
    snapshot,
)


def _records_a() -> list[dict]:
    return [
        rec(1, "VS", {"weight": "71.5", "vsdt": "2024-04-09"}, subject=0),
        rec(2, "VS", {"weight": "ND", "vsdt": ""}, subject=1),
        rec(3, "AE", {"aeterm": "Headache", "aeongo": "true"}, subject=0, visit=0),
        rec(4, "AE", {"aeterm": "Nausea", "aeongo": "false"}, subject=0, visit=0, parent=3),
        rec(5, "AE", {"aeterm": "Rash", "aeongo": "false"}, subject=2, visit=0),
    ]


def _sink(tmp_path: Path, server: FalkorServer, graph: str, **settings) -> GraphSink:
    return GraphSink(tmp_path / "lake",
                     GraphDestination(falkordb_url=server.url, falkordb_graph=graph, **settings))


def _clean_run(tmp_path: Path, server: FalkorServer, graph: str, studies: list[str],
               lake: Path, **settings) -> dict[str, list]:
    """The graph a single clean materialization of `studies` gives, in a fresh graph."""
    sink = GraphSink(lake, GraphDestination(falkordb_url=server.url, falkordb_graph=graph,
                                            **settings))
    for study in studies:
        sink.run(study)
    return snapshot(server, graph)


def test_replay_of_one_study_equals_a_clean_run(tmp_path, falkordb_server, graph_name) -> None:
    sink = _sink(tmp_path, falkordb_server, graph_name, batch_size=2)
    small_study(sink.lake, "A", _records_a())
    small_study(sink.lake, "B", _records_a()[:3])
    sink.run("A")
    sink.run("B")
    first = snapshot(falkordb_server, graph_name)
    meta = sink.metadata(sink.run("A"))
    assert snapshot(falkordb_server, graph_name) == first
    # the replay found every node and relationship as it was
    assert meta["nodes_written"] == meta["nodes_unchanged"] == 1 + 2 + 2 + 4 + 3 + 3 + 5
    assert (meta["nodes_created"], meta["nodes_deleted"], meta["relationships_created"],
            meta["relationships_deleted"]) == (0, 0, 0, 0)
    assert meta["relationships_written"] == 2 + 2 + 4 + 3 + 3 + 3 + 2 + 3 + 5 + 1
    assert first == _clean_run(tmp_path, falkordb_server, f"{graph_name}_clean", ["A", "B"],
                               sink.lake)
    assert counts(falkordb_server, graph_name, "A") == {
        "Study": 1, "Site": 2, "Form": 2, "Variable": 4, "Subject": 3, "Visit": 3, "Record": 5}


def test_graph_shape(tmp_path, falkordb_server, graph_name) -> None:
    sink = _sink(tmp_path, falkordb_server, graph_name)
    small_study(sink.lake, "A", _records_a())
    sink.run("A")
    g = falkordb_server.client().select_graph(graph_name)

    def ids(query: str) -> list:
        return sorted(tuple(r) for r in g.query(query).result_set)

    assert ids("MATCH (:Study {study_key: 'A'})-[:HAS_SUBJECT]->(s:Subject)-[:ENROLLED_AT]->"
               "(t:Site) RETURN s.subject_key, t.site_id") == [
        ("S-0", 101), ("S-1", 102), ("S-2", 101)]
    assert ids("MATCH (s:Subject)-[:HAS_VISIT]->(v:Visit)-[:HAS_RECORD]->(r:Record) "
               "RETURN s.subject_key, v.visit_id, r.record_id") == [
        ("S-0", 10, 1), ("S-1", 11, 2)]
    # records outside any visit (visit_id 0) hang off their subject
    assert ids("MATCH (s:Subject)-[:HAS_RECORD]->(r:Record) RETURN s.subject_key, "
               "r.record_id") == [("S-0", 3), ("S-0", 4), ("S-2", 5)]
    assert ids("MATCH (r:Record)-[:INSTANCE_OF]->(f:Form)-[:HAS_VARIABLE]->(v:Variable) "
               "WHERE r.record_id = 1 RETURN f.form_key, v.variable_name") == [
        ("VS", "vsdt"), ("VS", "weight")]
    assert ids("MATCH (c:Record)-[:CHILD_OF]->(p:Record) RETURN c.record_id, p.record_id") == [
        (4, 3)]
    [[props]] = g.query("MATCH (r:Record {record_id: 1}) RETURN properties(r)").result_set
    assert {k: props[k] for k in ("weight", "vsdt", "date_modified", "form_key")} == {
        "weight": 71.5, "vsdt": "2024-04-09", "date_modified": "2024-04-10T07:12:48",
        "form_key": "VS"}
    [[props]] = g.query("MATCH (r:Record {record_id: 2}) RETURN properties(r)").result_set
    assert (props["weight"], props["vsdt"]) == ("ND", "")  # unparsable and blank: text kept


def test_source_changes_land_and_other_study_is_untouched(
    tmp_path, falkordb_server, graph_name
) -> None:
    sink = _sink(tmp_path, falkordb_server, graph_name, batch_size=2)
    small_study(sink.lake, "A", _records_a())
    small_study(sink.lake, "B", _records_a())
    sink.run("A")
    sink.run("B")
    b_before = snapshot(falkordb_server, graph_name, "B")

    changed = _records_a()
    changed[0] = rec(1, "VS", {"weight": "80"}, subject=0)  # modified, `vsdt` dropped
    changed[2] = rec(3, "AE", {"aeterm": "Headache", "aeongo": "true"}, subject=0, visit=0,
                     deleted=True)  # soft-deleted upstream
    del changed[4]  # record 5 purged upstream
    changed.append(rec(6, "VS", {"weight": "66"}, subject=1, parent=2))  # new, child of 2
    subjects = [{"subject_id": 0, "subject_key": "S-0", "site_id": 102, "deleted": False},
                {"subject_id": 1, "subject_key": "S-1", "site_id": 102, "deleted": False},
                {"subject_id": 2, "subject_key": "S-2", "site_id": 101, "deleted": True}]
    small_study(sink.lake, "A", changed, subjects=subjects)
    meta = sink.metadata(sink.run("A"))

    assert snapshot(falkordb_server, graph_name, "B") == b_before
    clean = tmp_path / "clean"
    small_study(clean, "A", changed, subjects=subjects)
    small_study(clean, "B", _records_a())
    assert snapshot(falkordb_server, graph_name) == _clean_run(
        tmp_path, falkordb_server, f"{graph_name}_clean", ["A", "B"], clean)
    g = falkordb_server.client().select_graph(graph_name)
    records = g.query("MATCH (r:Record {study_key: 'A'}) RETURN r.record_id, r.weight, r.vsdt "
                      "ORDER BY r.record_id").result_set
    assert records == [[1, 80, None], [2, "ND", ""], [4, None, None], [6, 66, None]]
    assert counts(falkordb_server, graph_name, "A")["Subject"] == 2
    assert meta["nodes"]["Record"] == {"written": 4, "created": 1, "unchanged": 2, "deleted": 2}
    assert meta["nodes"]["Subject"]["deleted"] == 1
    # S-0 moved from site 101 to 102: the old ENROLLED_AT is gone, the new one is there
    assert meta["relationships"]["Subject-ENROLLED_AT->Site"] == {
        "written": 2, "created": 1, "unchanged": 1, "deleted": 2}


CONTROL = "".join(chr(i) for i in range(1, 32)) + "\x7f"
HOSTILE_KEYS = {
    "patient weight": ("NUMBER", "72.5", 72.5),
    "cost$usd": ("NUMBER", "12.30", 12.3),
    "$where": ("TEXT", "x", "x"),
    "lab.value": ("TEXT", "a.b", "a.b"),
    'say "hi"': ("TEXT", 'he said "hi" \\ `tick`', 'he said "hi" \\ `tick`'),
    "it's": ("TEXT", "O'Brien\nline two\ttab", "O'Brien\nline two\ttab"),
    "select": ("TEXT", "DROP TABLE x; MATCH (n) DETACH DELETE n", (
        "DROP TABLE x; MATCH (n) DETACH DELETE n")),
    "体重": ("NUMBER", "70", 70),
    "température": ("TEXT", "résumé 体重 🙂", "résumé 体重 🙂"),
    "record_id": ("TEXT", "not the id", "not the id"),
    "nested": ("TEXT", '{"a": {"b": [1, 2]}}', '{"a": {"b": [1, 2]}}'),
    "choices": ("CHECKBOX", '["red", "green"]', ["red", "green"]),
    "notes": ("MEMO", "x" * 100_000, "x" * 100_000),
    "blank": ("NUMBER", None, None),
    # every control character but NUL, raw over FalkorDB's text parameters
    "ctrl\x01key": ("TEXT", CONTROL, CONTROL),
    "escapes": ("TEXT", "\\u0041 \\n \\ \\\\", "\\u0041 \\n \\ \\\\"),
    "node_key": ("TEXT", "not the key", "not the key"),
}


def test_hostile_names_and_values_arrive_exact(tmp_path, falkordb_server, graph_name) -> None:
    sink = _sink(tmp_path, falkordb_server, graph_name)
    variables = [variable(i, "ODD FORM$1", k, t) for i, (k, (t, _, _)) in
                 enumerate(HOSTILE_KEYS.items())]
    data = {k: text for k, (_, text, _) in HOSTILE_KEYS.items()}
    small_study(sink.lake, "S 'x' $1", [rec(1, "ODD FORM$1", data)], variables=variables,
                forms=("ODD FORM$1",))
    sink.run("S 'x' $1")
    sink.run("S 'x' $1")  # a replay changes nothing either
    g = falkordb_server.client().select_graph(graph_name)
    [[props]] = g.query("MATCH (r:Record) RETURN properties(r)").result_set
    expected = {property_name(k): v for k, (_, _, v) in HOSTILE_KEYS.items() if v is not None}
    assert {k: props[k] for k in expected} == expected
    assert props["record_id"] == 1 and props["study_key"] == "S 'x' $1"
    assert "blank" not in props  # a JSON null is no property
    assert all(k.isidentifier() and k.isascii() for k in props)
    mapping = dict(g.query("MATCH (:Form {form_key: 'ODD FORM$1'})-[:HAS_VARIABLE]->(v) "
                           "RETURN v.variable_name, v.property_name").result_set)
    assert mapping == {k: property_name(k) for k in HOSTILE_KEYS}
    assert counts(falkordb_server, graph_name, "S 'x' $1")["Record"] == 1


def test_insert_mode_replay_is_exact_too(tmp_path, falkordb_server, graph_name) -> None:
    sink = _sink(tmp_path, falkordb_server, graph_name, upsert=False, batch_size=2)
    small_study(sink.lake, "A", _records_a())
    sink.run("A")
    first = snapshot(falkordb_server, graph_name)
    meta = sink.metadata(sink.run("A"))
    assert snapshot(falkordb_server, graph_name) == first
    assert meta["nodes_created"] == meta["nodes_deleted"] == meta["nodes_written"] == 20


def test_server_down_is_a_configuration_error(tmp_path) -> None:
    port = free_port()
    sink = GraphSink(tmp_path / "lake", GraphDestination(
        falkordb_url=f"redis://127.0.0.1:{port}", falkordb_graph="g", connect_timeout_s=2))
    small_study(sink.lake, "A", _records_a())
    result = sink.run("A", raise_on_error=False)
    assert not result.success
    assert not result.get_asset_materialization_events()
    message = failure_message(result)
    assert message.startswith(
        f"FalkorDB at redis://127.0.0.1:{port} (graph g) cannot be used: ConnectionError: ")
    assert "Connection refused" in message


def test_bad_password_is_a_configuration_error_without_the_password(tmp_path) -> None:
    server = FalkorServer(password="right-pass-4d1c").start()
    try:
        url = f"redis://:wrong-pass-77e2@127.0.0.1:{server.port}"
        sink = GraphSink(tmp_path / "lake", GraphDestination(falkordb_url=url))
        small_study(sink.lake, "A", _records_a())
        result = sink.run("A", raise_on_error=False)
        message = failure_message(result)
        assert message.startswith(
            f"FalkorDB at redis://***@127.0.0.1:{server.port} (graph imednet) cannot be used: "
            "AuthenticationError: ")
        assert "wrong-pass" not in str([e for e in result.all_events])
        assert server.client().list_graphs() == []  # nothing moved
    finally:
        server.stop()


def test_server_killed_mid_partition_then_back(tmp_path, falkordb_server, graph_name,
                                                monkeypatch) -> None:
    server = FalkorServer(persistent=True).start()
    try:
        sink = GraphSink(tmp_path / "lake", GraphDestination(
            falkordb_url=server.url, falkordb_graph="g", batch_size=2, max_retries=2,
            retry_backoff_s=0.01, connect_timeout_s=2))
        small_study(sink.lake, "A", _records_a())
        small_study(sink.lake, "B", _records_a())
        sink.run("A")
        sink.run("B")
        b_before = snapshot(server, "g", "B")
        changed = [rec(r, "VS", {"weight": str(r)}, subject=r % 3) for r in range(3, 12)]
        small_study(sink.lake, "A", changed)

        def kill_after_second_record_batch(step: str, batch: int) -> None:
            if step == "Record" and batch == 2:
                server.kill()

        monkeypatch.setattr(writer, "after_batch", kill_after_second_record_batch)
        result = sink.run("A", raise_on_error=False)
        assert not result.success and not result.get_asset_materialization_events()
        assert failure_message(result).startswith(
            f"FalkorDB at {server.url} (graph g): study A, Record nodes batch 3 (2 rows) failed "
            "after 3 attempt(s): ConnectionError: ")

        monkeypatch.setattr(writer, "after_batch", lambda step, batch: None)
        server.start()  # same port, same append-only file: the half-written replay is there
        g = server.client().select_graph("g")
        ids = "MATCH (r:Record {study_key: 'A'}) RETURN r.record_id ORDER BY r.record_id"
        # old records 1-5 and the two batches of the new ones (3-6) written before the kill
        assert [r for [r] in g.query(ids).result_set] == [1, 2, 3, 4, 5, 6]
        sink.run("A")
        clean = tmp_path / "clean"
        small_study(clean, "A", changed)
        small_study(clean, "B", _records_a())
        assert snapshot(server, "g") == _clean_run(
            tmp_path, falkordb_server, graph_name, ["A", "B"], clean)
        assert snapshot(server, "g", "B") == b_before
        assert g.query("MATCH (r:Record {study_key: 'A'}) RETURN count(r), "
                       "count(DISTINCT r.record_id)").result_set == [[9, 9]]
    finally:
        server.stop()


@pytest.mark.parametrize("upsert", [True, False])
def test_failed_batch_names_study_batch_and_destination(tmp_path, falkordb_server, graph_name,
                                                        monkeypatch, upsert) -> None:
    """A batch the server refuses for good (not transient) fails the step at once, clearly."""
    sink = _sink(tmp_path, falkordb_server, graph_name, upsert=upsert)
    small_study(sink.lake, "A", _records_a())
    real = writer.c.write_rels_query
    monkeypatch.setattr(writer.c, "write_rels_query",
                        lambda spec, up=True: real(spec, up) + " BROKEN")
    result = sink.run("A", raise_on_error=False)
    assert failure_message(result).startswith(
        f"FalkorDB at {falkordb_server.url} (graph {graph_name}): study A, "
        "Study-HAS_SITE->Site relationships batch 1 (2 rows) failed: ResponseError: ")


def test_nul_is_refused_before_anything_moves(tmp_path, falkordb_server, graph_name) -> None:
    """FalkorDB's query text is a C string: a NUL cannot reach it by any escape, so the study is
    refused whole, naming record and variable, and the graph keeps the previous replay."""
    sink = _sink(tmp_path, falkordb_server, graph_name)
    small_study(sink.lake, "A", _records_a())
    sink.run("A")
    before = snapshot(falkordb_server, graph_name)
    records = _records_a()
    records[3] = rec(4, "AE", {"aeterm": "Nau\x00sea", "aeongo": "false"}, subject=0, visit=0)
    small_study(sink.lake, "A", records + [rec(7, "VS", {"weight": "1"})])
    result = sink.run("A", raise_on_error=False)
    assert not result.success and not result.get_asset_materialization_events()
    assert failure_message(result) == (
        f"FalkorDB at {falkordb_server.url} (graph {graph_name}): study A, record 4, variable "
        "'aeterm' (value): holds a NUL character (\\x00), which this server cannot store; "
        "nothing was written")
    assert snapshot(falkordb_server, graph_name) == before

    small_study(sink.lake, "B", [rec(1, "VS", {"we\x00ight": "1"})])
    assert failure_message(sink.run("B", raise_on_error=False)).endswith(
        "study B, record 1, variable 'we\\x00ight' (key): holds a NUL character (\\x00), which "
        "this server cannot store; nothing was written")
    subjects = [{"subject_id": 0, "subject_key": "S-\x000", "site_id": 101, "deleted": False}]
    small_study(sink.lake, "C", [], subjects=subjects)
    assert failure_message(sink.run("C", raise_on_error=False)).endswith(
        "study C, subjects row 'S-\\x000', column 'subject_key': holds a NUL character (\\x00), "
        "which this server cannot store; nothing was written")
    assert counts(falkordb_server, graph_name, "B") == {}
    assert counts(falkordb_server, graph_name, "C") == {}
    # a NUL in a record deleted upstream is never sent, so it does not block the study
    small_study(sink.lake, "B", [rec(1, "VS", {"we\x00ight": "1"}, deleted=True)])
    assert sink.run("B").success


def test_record_data_keys_outside_the_dictionary_keep_their_mapping(
    tmp_path, falkordb_server, graph_name
) -> None:
    """Undeclared keys get a Variable node (`in_dictionary: false`) under their form holding the
    safe name; when the key leaves the data, a replay removes it."""
    sink = _sink(tmp_path, falkordb_server, graph_name)
    records = _records_a()
    records[0] = rec(1, "VS", {"weight": "71.5", "odd key$": "a", "extra": "b"}, subject=0)
    records.append(rec(6, "AE", {"odd key$": "c"}, subject=1))
    small_study(sink.lake, "A", records)
    sink.run("A")
    g = falkordb_server.client().select_graph(graph_name)
    query = ("MATCH (f:Form {study_key: 'A'})-[:HAS_VARIABLE]->(v:Variable) RETURN f.form_key, "
             "v.variable_name, v.property_name, v.in_dictionary ORDER BY f.form_key, "
             "v.variable_name")
    assert g.query(query).result_set == [
        ["AE", "aeongo", "aeongo", True], ["AE", "aeterm", "aeterm", True],
        ["AE", "odd key$", property_name("odd key$"), False],
        # `extra` is also a record envelope column, so its answer gets a safe name too
        ["VS", "extra", "extra_b43c4b82", False],
        ["VS", "odd key$", property_name("odd key$"), False],
        ["VS", "vsdt", "vsdt", True], ["VS", "weight", "weight", True]]
    [[props]] = g.query("MATCH (r:Record {record_id: 1}) RETURN properties(r)").result_set
    assert (props[property_name("odd key$")], props["extra_b43c4b82"]) == ("a", "b")

    small_study(sink.lake, "A", _records_a())
    sink.run("A")
    assert [row for row in g.query(query).result_set if not row[3]] == []
    assert snapshot(falkordb_server, graph_name) == _clean_run(
        tmp_path, falkordb_server, f"{graph_name}_clean", ["A"], sink.lake)
