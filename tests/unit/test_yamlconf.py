"""dmano.yamlconf, the project's config library: the helpers shared by the file readers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dmano.yamlconf import ConfigError, Fields, load_json, loads_yaml

TEXT = """\
items:
  - {name: a, node: A}
  - {name: b, node: B}
  - {name: a, node: C}
"""


def _read(text: str, reader: Any) -> Any:
    with Fields(loads_yaml(text, "t.yaml"), "t.yaml", "") as top:
        return reader(top)


def test_unique_names_the_second_item_and_the_first() -> None:
    def names(top: Fields) -> None:
        items = top.indexed_items("items", lambda f, i: (i, f.str("name"), f.str("node")))
        assert [i for i, _, _ in items] == [0, 1, 2]
        top.unique("items", [n for _, n, _ in items], item_field="name")

    with pytest.raises(ConfigError) as info:
        _read(TEXT, names)
    assert str(info.value) == "t.yaml:4: items[2].name: duplicate name a (first at items[0])"

    def pairs(top: Fields) -> None:
        items = top.items("items", lambda f: (f.str("name"), f.str("node")))
        top.unique("items", [(n, "x") for n, _ in items], what="pair")

    with pytest.raises(ConfigError, match=r"t\.yaml:4: items\[2\]: duplicate pair a - x"):
        _read(TEXT, pairs)


def test_ref_lists_the_known_names() -> None:
    def ref(top: Fields) -> list[str]:
        return top.items("items", lambda f: (f.ref("node", {"A", "B"}, "node"), f.raw("name"))[0])

    with pytest.raises(ConfigError) as info:
        _read(TEXT, ref)
    assert (info.value.line, info.value.field, info.value.detail) == (
        4, "items[2].node", "unknown node 'C' (known: A, B)")


def test_load_json_has_lines_and_json_values(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"a": 1e20, "b": [{"c": True}, {"d": None}]}, indent=1))
    data = load_json(path)
    assert data == {"a": 1e20, "b": [{"c": True}, {"d": None}]}
    assert isinstance(data["a"], float)  # YAML would read 1e+20 as a string
    assert data.key_lines == {"a": 2, "b": 3} and data["b"].item_lines == [4, 7]
    assert data["b"][1].key_lines == {"d": 8}
    path.write_text('{"a": 1,\n "a": 2}')
    assert load_json(path) == {"a": 2}  # JSON's rule; the YAML reading only gives lines
    path.write_text('{"a": [1,\n 2,,]}')
    with pytest.raises(ConfigError, match=r"c\.json:2: invalid JSON"):
        load_json(path)
    with pytest.raises(ConfigError, match="cannot read file"):
        load_json(tmp_path / "missing.json")
