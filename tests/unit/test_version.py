"""``python -m topologies version``: the tree hash over the source files."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from topologies import cli
from topologies.version import source_files, tree_hash, version_line

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small copy of the project's layout: a few real source files."""
    root = tmp_path / "tree"
    for rel in ("topologies/spec.py", "topologies/paper_fig3.yaml", "connector_p4/connector.p4",
                "connector_p4/ebpf/connector.c", "dmano/yamlconf.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, root / rel)
    (root / "pyproject.toml").write_text('[project]\nname = "dsfc"\nversion = "9.8.7"\n')
    return root


def test_hash_is_stable_and_short(tree: Path):
    first = tree_hash(tree)
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    assert tree_hash(tree) == first
    copy = tree.parent / "copy"
    shutil.copytree(tree, copy)
    assert tree_hash(copy) == first  # only relative paths count


def test_hash_changes_with_a_source_file(tree: Path):
    before = tree_hash(tree)
    spec = tree / "topologies" / "spec.py"
    spec.write_text(spec.read_text() + "\n# changed\n")
    assert tree_hash(tree) != before


def test_hash_changes_with_a_new_or_renamed_file(tree: Path):
    before = tree_hash(tree)
    (tree / "vnf").mkdir()
    (tree / "vnf" / "new.py").write_text("")
    added = tree_hash(tree)
    assert added != before
    (tree / "vnf" / "new.py").rename(tree / "vnf" / "other.py")
    assert tree_hash(tree) != added


def test_caches_builds_and_other_files_are_ignored(tree: Path):
    before = tree_hash(tree)
    for rel in ("topologies/__pycache__/spec.cpython-311.pyc",
                "topologies/__pycache__/x.py",
                "connector_p4/ebpf/build/connector.o", "connector_p4/ebpf/build/x.h",
                "connector_p4/bmv2_build/abc/connector.json", "dmano/.mypy_cache/x.py",
                "topologies/notes.txt", "tests/unit/test_x.py", "benchmarks/b.py",
                ".venv/lib/x.py", "dsfc.egg-info/x.py", "README.md"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("x")
    assert tree_hash(tree) == before
    assert [p.as_posix() for p in source_files(tree)] == [
        "connector_p4/connector.p4", "connector_p4/ebpf/connector.c", "dmano/yamlconf.py",
        "topologies/paper_fig3.yaml", "topologies/spec.py"]


def test_version_line(tree: Path, capsys: pytest.CaptureFixture[str]):
    assert version_line(tree) == f"dsfc 9.8.7 {tree_hash(tree)}"
    assert cli.main(["version"]) == 0
    out = capsys.readouterr().out.strip()
    assert re.fullmatch(r"dsfc \S+ [0-9a-f]{12}", out)
    assert out == version_line()
