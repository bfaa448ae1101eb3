"""Build outputs replace their target in one step, and only on success."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector_p4.build_output import replaced_on_success


def test_a_file_is_replaced_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "build" / "connector.o"
    with replaced_on_success(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"one")
    assert target.read_bytes() == b"one"
    with pytest.raises(RuntimeError), replaced_on_success(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("compiler failed")
    assert target.read_bytes() == b"one"
    assert sorted(p.name for p in target.parent.iterdir()) == ["connector.o"]


def test_a_folder_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "key"
    target.mkdir()
    (target / "old.json").write_text("old")
    with replaced_on_success(target, directory=True) as tmp:
        (tmp / "new.json").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.json"]
    with pytest.raises(RuntimeError), replaced_on_success(target, directory=True) as tmp:
        raise RuntimeError("p4c failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]
