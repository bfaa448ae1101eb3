"""Drain / undrain decisions (dmano/drain.py): refusal of the last instance taking new
flows, force, idempotence, unknown names, and the drained set read back after a
restart."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from dmano.config import InstanceConf
from dmano.drain import DrainBook, DrainError, serving_new_flows
from dmano.model import InstanceState
from dmano.service_plane import Candidate

ME = IPv4Address("10.255.0.2")
OTHER = IPv4Address("10.255.0.3")


def cand(adv: IPv4Address, iid: int, name: str,
         state: InstanceState = InstanceState.UP) -> Candidate:
    return Candidate(adv, iid, name, IPv4Address("10.2.0.2"), 0, 10, 10,
                     1 if state == InstanceState.UP else 0, adv == ME, state)


def book() -> DrainBook:
    insts = [InstanceConf("fw_b", 1, 1, 150, Path("a")),
             InstanceConf("ids_b", 2, 2, 150, Path("b"))]
    return DrainBook(insts, ME, {1: "FW", 2: "IDS"})


def test_drain_with_another_instance_up() -> None:
    b = book()
    tables = {1: [cand(ME, 1, "fw_b"), cand(OTHER, 1, "fw_c")]}
    res = b.drain("fw_b", tables)
    assert res.changed and res.state == InstanceState.DRAINING
    assert b.state("fw_b") == InstanceState.DRAINING and b.drained == {"fw_b"}
    again = b.drain("fw_b", tables)
    assert not again.changed and "already draining" in again.message


def test_last_instance_is_refused_unless_forced() -> None:
    b = book()
    tables = {1: [cand(ME, 1, "fw_b"), cand(OTHER, 1, "fw_c", InstanceState.DRAINING)]}
    with pytest.raises(DrainError) as err:
        b.drain("fw_b", tables)
    assert str(err.value) == ("instance fw_b is the last one of service FW serving new "
                              "flows: use --force")
    assert b.drained == set()
    res = b.drain("fw_b", tables, force=True)
    assert res.changed and "forced" in res.message and b.drained == {"fw_b"}


def test_instance_not_serving_may_be_drained() -> None:
    """Down (not in the table) or unreachable: draining it takes nothing away."""
    b = book()
    assert b.drain("ids_b", {}).changed
    assert b.drain("fw_b", {1: [cand(OTHER, 1, "fw_c", InstanceState.DRAINING)]}).changed


def test_undrain_and_unknown() -> None:
    b = book()
    assert not b.undrain("fw_b").changed
    b.drain("fw_b", {})
    res = b.undrain("fw_b")
    assert res.changed and res.state == InstanceState.UP and b.drained == set()
    with pytest.raises(DrainError, match=r"unknown instance 'nat' on this node "
                                         r"\(known: fw_b, ids_b\)"):
        b.drain("nat", {})
    with pytest.raises(DrainError):
        b.undrain("nat")


def test_serving_new_flows_lists_up_instances_but_the_excluded() -> None:
    tables = {1: [cand(ME, 1, "fw_b"), cand(OTHER, 1, ""),
                  cand(OTHER, 2, "x", InstanceState.DRAINING)]}
    assert serving_new_flows(tables, 1) == ["fw_b", "10.255.0.3/1"]
    assert serving_new_flows(tables, 1, exclude=(ME, 1)) == ["10.255.0.3/1"]
    assert serving_new_flows(tables, 9) == []


def test_restore_keeps_configured_names_only() -> None:
    b = book()
    b.restore(Path("s.json"), {"drained": ["fw_b", "gone", 3]})
    assert b.drained == {"fw_b"}
    b.restore(Path("s.json"), {"drained": "fw_b"})
    b.restore(Path("s.json"), None)
    assert b.drained == {"fw_b"}
