"""Node keys and node rows as the writer sends them."""

from imednet_assets.defs.sinks.graph.model import node_batch, node_key


def test_node_keys_are_unambiguous_json() -> None:
    assert node_key("S 'x' $1", 7) == '["S \'x\' $1",7]'
    # a separator inside a key cannot make two different keys equal
    assert node_key("A", "a/b", "c") != node_key("A", "a", "b/c")
    assert node_key("A", 1) != node_key("A", "1")


def test_node_batch_lists_values_by_column_with_nulls_for_missing_properties() -> None:
    batch = node_batch([{"node_key": "k1", "row_hash": "h1", "b": 2, "a": 1},
                        {"row_hash": "h2", "node_key": "k2", "c": [1]}])
    assert batch.columns == ("node_key", "row_hash", "a", "b", "c")
    assert batch.rows == [["k1", "h1", 1, 2, None], ["k2", "h2", None, None, [1]]]
