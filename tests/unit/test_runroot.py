"""topologies.runroot: the run folders' root goes on a tmpfs of ours when it is not on
one, only while it holds no run, and the tmpfs goes with the last run. Real mounts on a
folder under tmp_path (root; skipped where tmp_path is itself on a tmpfs)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from topologies import runroot, runstate


def mounts_on(path: Path) -> int:
    where = str(path.resolve())
    return sum(1 for _, point, _ in runroot._mounts() if point == where)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    if runroot.fs_type(tmp_path) == "tmpfs":
        pytest.skip("tmp_path is on a tmpfs already: nothing to mount")
    r = tmp_path / "dsfc"
    monkeypatch.setattr(runroot, "DEFAULT", r)
    monkeypatch.delenv("DSFC_RUN_ROOT", raising=False)
    yield r
    while mounts_on(r):  # whatever a failed test left
        os.system(f"umount {r}")


def test_an_empty_root_goes_on_a_tmpfs_once_and_leaves_with_the_last_run(root: Path) -> None:
    with runroot.locked(root):
        runroot.ensure(root)
    assert runroot.fs_type(root) == "tmpfs" and runroot.ours_mounted(root)
    (root / "run1").mkdir()
    with runroot.locked(root):
        runroot.ensure(root)  # mounted already: not again
    assert mounts_on(root) == 1
    with runroot.locked(root):
        runroot.release(root)  # a run is left: stays
    assert runroot.ours_mounted(root) and (root / "run1").is_dir()
    (root / "run1").rmdir()
    with runroot.locked(root):
        runroot.release(root)
    assert mounts_on(root) == 0 and not root.exists()


def test_a_root_holding_runs_is_not_mounted_over(root: Path) -> None:
    (root / "live-run").mkdir(parents=True)
    with runroot.locked(root):
        runroot.ensure(root)
    assert mounts_on(root) == 0 and (root / "live-run").is_dir()


def test_a_root_chosen_by_the_user_is_used_as_it_is(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSFC_RUN_ROOT", str(root))
    with runroot.locked(root):
        runroot.ensure(root)
    assert root.is_dir() and mounts_on(root) == 0


def test_new_run_and_clean_mount_and_unmount(root: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runstate, "RUN_ROOT", root)
    monkeypatch.setattr(runstate, "BPF_ROOT", root.parent / "bpf")
    monkeypatch.setattr(runstate, "NETNS_DIR", root.parent / "netns")
    reg = runstate.new_run("t.yaml")
    assert runroot.ours_mounted(root) and reg.folder.parent == root
    runstate.clean_run(reg)
    assert mounts_on(root) == 0 and not root.exists()
