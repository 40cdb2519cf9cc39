"""The Dagster UI end to end, the way a user meets it: `imednet-assets dev`, Debian's Chromium.

Dismiss the first-run dialog, open the lineage, materialize one study by clicking (Materialize
all, pick the study's partition, launch), wait for the run to succeed, and check that the asset
page of `duckdb/records_long` shows the row count that is in the DuckDB file. When everything
passed, the lineage and that asset page are saved as the README's screenshots in docs/.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
import pytest
from playwright.sync_api import expect

from imednet_assets_tests.ui.conftest import REPO, DevServer, requires_chromium

pytestmark = [requires_chromium, pytest.mark.timeout(900)]

DOCS = REPO / "docs"
SCREENSHOTS = {"lineage": "ui-lineage.png", "asset": "ui-asset-page.png"}
ASSET = "duckdb/records_long"
TABLE = "records_long"
# the lineage picture: the lake's records and every destination asset fed from them
LINEAGE_SELECTION = 'key:"imednet/records"+'
RUN_TIMEOUT_S = 300.0

_PARTITIONS_QUERY = """
query Partitions($key: AssetKeyInput!) {
  assetNodes(assetKeys: [$key]) { partitionKeysByDimension { partitionKeys } }
}
"""
_RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename ... on Runs { results { runId status tags { key value } } }
  }
}
"""
_TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
# where the graph's nodes are on screen, and the graph's visible area (under its toolbar)
_GRAPH_GEOMETRY = """() => {
  const nodes = [...document.querySelectorAll('svg foreignObject')];
  if (!nodes.length) return null;
  let view = nodes[0].closest('svg').parentElement;
  while (view.parentElement && getComputedStyle(view).overflow !== 'hidden') {
    view = view.parentElement;
  }
  const v = view.getBoundingClientRect();
  const search = document.querySelector('.CodeMirror');
  const top = search ? Math.max(v.top, search.getBoundingClientRect().bottom + 8) : v.top;
  const rects = nodes.map(n => n.getBoundingClientRect());
  const left = Math.min(...rects.map(r => r.left)), right = Math.max(...rects.map(r => r.right));
  const upper = Math.min(...rects.map(r => r.top)), lower = Math.max(...rects.map(r => r.bottom));
  return {area: {x: v.left, y: top, w: v.width, h: v.bottom - top},
          graph: {x: left, y: upper, w: right - left, h: lower - upper}};
}"""


def _first_study(server: DevServer) -> str:
    data = server.graphql(_PARTITIONS_QUERY, {"key": {"path": ASSET.split("/")}})
    keys = data["assetNodes"][0]["partitionKeysByDimension"][0]["partitionKeys"]
    assert len(keys) == 3, f"the simulator serves 3 studies, the UI lists {keys}"
    return sorted(keys)[0]


def _wait_for_run(server: DevServer, study: str) -> dict[str, Any]:
    """The run the UI launched for `study`, once it has finished (polls the GraphQL API)."""
    run_filter = {"tags": [{"key": "dagster/partition", "value": study}]}
    deadline = time.monotonic() + RUN_TIMEOUT_S
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = server.graphql(_RUNS_QUERY, {"filter": run_filter})["runsOrError"]["results"]
        if runs and runs[0]["status"] in _TERMINAL:
            assert len(runs) == 1, f"one click, one run: {runs}"
            return runs[0]
        time.sleep(1.0)
    raise TimeoutError(f"the run for {study} did not finish in {RUN_TIMEOUT_S:.0f} s: {runs}")


def _rows_in_duckdb(server: DevServer, study: str) -> int:
    with duckdb.connect(str(server.data_dir / "imednet.duckdb"), read_only=True) as con:
        row = con.execute(f"SELECT count(*) FROM {TABLE} WHERE study_key = ?", [study]).fetchone()
    assert row is not None
    return int(row[0])


def _dismiss_first_run_dialog(page: Any) -> None:
    # a fresh instance asks to "Join the Dagster community" once
    skip = page.get_by_role("button", name="Skip", exact=True)
    skip.click(timeout=60_000)
    expect(skip).to_be_hidden()


def _launch_study_from_lineage(page: Any, study: str) -> None:
    page.get_by_role("link", name=re.compile(r"\bLineage$")).click()
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    page.get_by_role("button", name=re.compile(r"Materialize all")).click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    expect(dialog).to_be_visible()
    dialog.get_by_text("Select a partition or create one").click()
    # each row of the list is a menu item named after its partition key (twice: the label and a
    # copy used to measure it)
    option = page.get_by_role("menuitem", name=re.compile(rf"^{re.escape(study)}(\s|$)"))
    option.click()
    expect(option.get_by_role("checkbox")).to_be_checked()
    page.keyboard.press("Escape")  # closes the partition list, not the dialog
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Launch 1 run").click()
    # the "Launched run" toast lasts a few seconds only; the run itself is looked up over GraphQL.
    # Launching waits for the webserver to submit the run, which takes longer than expect's
    # default 5 s on a loaded machine (the full suite beside it): a minute is allowed
    expect(dialog).to_be_hidden(timeout=60_000)


def _zoom_out(page: Any, at: tuple[float, float]) -> None:
    """One notch out (x0.8) around `at`: Ctrl and the wheel, as on a desktop."""
    page.mouse.move(*at)
    page.keyboard.down("Control")
    page.mouse.wheel(0, 20)
    page.keyboard.up("Control")
    page.wait_for_timeout(300)


def _graph_geometry(page: Any, timeout_s: float = 30.0) -> dict[str, Any]:
    # polled from here: the UI's content security policy forbids wait_for_function's eval
    deadline = time.monotonic() + timeout_s
    while (geometry := page.evaluate(_GRAPH_GEOMETRY)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError("the lineage graph did not render")
        page.wait_for_timeout(200)
    return geometry


def _show_lineage(page: Any, server: DevServer) -> None:
    """The lineage of the lake's records into DuckDB and the bundles, groups open, the whole
    graph in view and centred."""
    # the address the search box leads to (typing it races the box's completions)
    page.goto(f"{server.base_url}/asset-groups~{quote(LINEAGE_SELECTION, safe='')}/")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    area = _graph_geometry(page)["area"]
    # the canvas's context menu opens every group (or closes them, when they are open already)
    toggle = page.get_by_role("menuitem", name=re.compile(r"(Expand|Collapse) all groups"))
    for attempt in range(3):
        page.mouse.click(area["x"] + 30, area["y"] + 30, button="right")  # empty canvas
        try:
            expect(toggle).to_be_visible(timeout=5_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
    if "Expand" in toggle.inner_text():
        toggle.click()
    else:
        page.keyboard.press("Escape")
    expect(page.get_by_text("records_long", exact=True)).to_be_visible()
    centre = (area["x"] + area["w"] / 2, area["y"] + area["h"] / 2)
    # zoom out until the graph fits, but not below x0.64: further out, nodes lose their details
    for _ in range(2):
        graph = _graph_geometry(page)["graph"]
        if graph["w"] <= area["w"] - 16 and graph["h"] <= area["h"] - 16:
            break
        _zoom_out(page, centre)
    graph = _graph_geometry(page)["graph"]
    dx = centre[0] - (graph["x"] + graph["w"] / 2)
    dy = centre[1] - (graph["y"] + graph["h"] / 2)
    page.mouse.move(*centre)
    page.mouse.wheel(-dx, -dy)  # a plain wheel pans the canvas
    page.wait_for_timeout(1000)
    # full nodes (not outlines), their statuses loaded
    expect(page.get_by_text(re.compile(r"\d+ / \d+ Passed")).first).to_be_visible()


def test_materialize_one_study_from_the_ui(dagster_dev: DevServer, page: Any) -> None:
    started = time.monotonic()
    shots = Path(tempfile.mkdtemp(prefix="imednet-ui-shots-"))
    keep_shots = False
    try:
        study = _first_study(dagster_dev)
        page.goto(dagster_dev.base_url)
        _dismiss_first_run_dialog(page)

        _launch_study_from_lineage(page, study)
        run = _wait_for_run(dagster_dev, study)
        assert run["status"] == "SUCCESS", (
            f"run {run['runId']} for {study}: {run['status']}\n{dagster_dev.log_tail()}")
        assert {"key": "dagster/from_ui", "value": "true"} in run["tags"]
        run_done = time.monotonic()

        _show_lineage(page, dagster_dev)
        page.screenshot(path=str(shots / SCREENSHOTS["lineage"]))

        rows = _rows_in_duckdb(dagster_dev, study)
        assert rows > 0
        page.goto(f"{dagster_dev.base_url}/assets/{ASSET}")
        expect(page.get_by_text(study, exact=True).first).to_be_visible()  # latest partition
        row_count = page.get_by_text("Row count", exact=True).locator("..")
        expect(row_count).to_have_text(re.compile(rf"^\s*Row count\s*{rows:,}\s*$"))
        page.wait_for_timeout(500)
        page.screenshot(path=str(shots / SCREENSHOTS["asset"]))

        for name in SCREENSHOTS.values():  # only a passing test updates the README's pictures
            shutil.copyfile(shots / name, DOCS / name)
        print(f"\n{study}: {rows:,} rows in {TABLE}; run done after "
              f"{run_done - started:.0f} s, test {time.monotonic() - started:.0f} s "
              f"(server start-up not counted)")
    except BaseException:
        keep_shots = True
        try:
            page.screenshot(path=str(shots / "failure.png"))
        except Exception as exc:  # the browser may be what failed
            print(f"no failure screenshot: {exc!r}")
        print(f"\nscreenshots kept in {shots}\n--- imednet-assets dev log (tail) ---\n"
              f"{dagster_dev.log_tail()}")
        raise
    finally:
        if not keep_shots:
            shutil.rmtree(shots, ignore_errors=True)
