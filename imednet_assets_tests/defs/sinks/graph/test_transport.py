"""The FalkorDB parameter header: what `falkordb_params` sends is exactly what arrives."""

import orjson
import pytest

from imednet_assets.defs.sinks.graph.transport import ParameterError, falkordb_params

HOSTILE = [
    'he said "hi"', "back\\slash", "ends with \\", '\\"', "\\u0041 stays text", "O'Brien",
    "line\nbreak\ttab\rcr\bbs\fff", "\x01\x1b\x1f\x7f", "résumé 体重 🙂", ',"key": 1}',
    "`tick`", "{}", "x" * 100_000,
]


def test_header_is_json_literals_with_control_characters_raw() -> None:
    header = falkordb_params({"study_key": "S 'x' $1", "rows": [[1, 2.5, True, None, ["a"]]],
                              "limit": 3})
    assert header == (
        'CYPHER study_key="S \'x\' $1" rows=[[1,2.5,true,null,["a"]]] limit=3 ')
    # FalkorDB knows \\n \\t \\r \\b \\f but not \\u00XX: those go raw, escaped backslashes stay
    assert falkordb_params({"s": "a\x01b\\u0001c\n"}) == 'CYPHER s="a\x01b\\\\u0001c\\n" '


def test_every_hostile_string_is_one_literal() -> None:
    """The header's string is JSON apart from the raw control characters: decoding it after
    re-escaping those gives back exactly the strings sent."""
    header = falkordb_params({"rows": HOSTILE})
    assert header.startswith("CYPHER rows=[") and header.endswith("] ")
    text = header[len("CYPHER rows="):-1]
    rescaped = "".join(f"\\u{ord(ch):04x}" if ord(ch) < 0x20 else ch for ch in text)
    assert orjson.loads(rescaped) == HOSTILE


def test_nul_and_maps_are_refused() -> None:
    with pytest.raises(ParameterError, match="a string holds a NUL character"):
        falkordb_params({"rows": [["a\x00b"]]})
    with pytest.raises(ParameterError, match="parameter 'rows' holds a map; send lists"):
        falkordb_params({"rows": [{"a": 1}]})
    with pytest.raises(ParameterError, match="parameter name 'a b' is not an identifier"):
        falkordb_params({"a b": 1})
