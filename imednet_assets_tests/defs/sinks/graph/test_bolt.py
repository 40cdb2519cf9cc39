"""The Bolt transport (official `neo4j` driver) against FalkorDB's Bolt listener.

No Neo4j server can be installed here, so the Bolt path is smoke-tested against FalkorDB's
experimental listener, which crashes on Bolt messages over ~2 KB and hangs every second new
connection (see test-servers.md): tiny batches, a tiny study, and the Bolt client runs in a child
process under a timeout (retried once, as the hang alternates), so a hang cannot wedge the suite.
What the Bolt path sends is the same Cypher the pure tests in test_cypher.py pin down. The check
reads back through Bolt: after a Bolt session this FalkorDB build stops answering on its native
port (seen here), so the native client cannot be used for it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from imednet_assets_tests.defs.sinks.graph.conftest import (
    FalkorServer,
    free_bolt_port,
    free_port,
    rec,
    small_study,
)

CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from imednet_assets.client.arrow import SCHEMAS
    from imednet_assets.defs.lake.slice import LakeSlice
    from imednet_assets.defs.sinks.common import WriteSettings
    from imednet_assets.defs.sinks.graph.model import ENTITIES, StudyGraph
    from imednet_assets.defs.sinks.graph.transport import BoltTransport
    from imednet_assets.defs.sinks.graph.writer import StudyWriter

    uri, lake = sys.argv[1], Path(sys.argv[2])
    transport = BoltTransport(uri, "default", "", connect_timeout_s=3, dialect="falkordb")
    transport.open()
    try:
        slices = {e: LakeSlice.read(lake, e, "A", SCHEMAS[e]) for e in ENTITIES}
        settings = WriteSettings(batch_size=1, max_retries=0)
        stats = StudyWriter(transport, settings).write(StudyGraph("A", slices))
        print(stats.total("nodes", "written"), stats.total("rels", "written"))
        # read back through Bolt what the server holds for the study
        print(transport.run(
            "MATCH (n {study_key: $s}) RETURN labels(n)[0] AS l, count(n) ORDER BY l", {"s": "A"}))
        print(transport.run("MATCH (c:Record)-[:CHILD_OF]->(p:Record) "
                            "RETURN c.record_id, p.record_id, c.aeterm, p.weight", {}))
    finally:
        transport.close()
""")


def _tiny_study(lake) -> None:
    small_study(lake, "A", [rec(1, "VS", {"weight": "71"}), rec(2, "AE", {"aeterm": "Rash"},
                                                                  visit=0, parent=1)])


def test_bolt_transport_writes_the_same_graph_as_the_native_one(tmp_path) -> None:
    bolt_port = free_bolt_port()
    server = FalkorServer(bolt_port=bolt_port).start()
    try:
        lake = tmp_path / "lake"
        _tiny_study(lake)
        for _attempt in range(2):
            try:
                done = subprocess.run(
                    [sys.executable, "-c", CHILD, f"bolt://127.0.0.1:{bolt_port}", str(lake)],
                    capture_output=True, text=True, timeout=30)
                break
            except subprocess.TimeoutExpired:
                continue  # the listener's alternate-connection hang; the next one answers
        else:
            pytest.fail("FalkorDB's Bolt listener hung on two connections in a row")
        assert done.returncode == 0, done.stderr[-2000:]
        written, landed, child_of = done.stdout.splitlines()[-3:]
        assert written == "17 22"  # nodes, relationships written
        assert landed == ("[['Form', 2], ['Record', 2], ['Site', 2], ['Study', 1], "
                          "['Subject', 3], ['Variable', 4], ['Visit', 3]]")
        assert child_of == "[[2, 1, 'Rash', 71]]"
    finally:
        server.stop()


def test_bolt_server_down_is_a_configuration_error() -> None:
    from imednet_assets.defs.sinks.common import DestinationConfigError
    from imednet_assets.defs.sinks.graph.transport import BoltTransport

    port = free_port()
    transport = BoltTransport(f"bolt://neo4j:secret-pw-93a@127.0.0.1:{port}", "neo4j",
                              "secret-pw-93a", "clinical", connect_timeout_s=2)
    with pytest.raises(DestinationConfigError) as err:
        transport.open()
    message = str(err.value)
    assert message.startswith(
        f"Neo4j at bolt://***@127.0.0.1:{port} (database clinical) cannot be used: ")
    assert "secret-pw" not in message
