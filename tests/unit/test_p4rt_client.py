"""The D-MANO's P4Runtime writer against the connector's P4Runtime server (null target,
unix socket): every kind of op is written, and a restarted writer reads back what it
wrote."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connector_p4.p4rt_server import NullTarget, P4RuntimeServer
from connector_p4.target import TargetError
from dmano.config import ConnectorConf
from dmano.connector_state import (
    ConfigOp,
    DesiredState,
    GroupOp,
    MemberKey,
    MemberOp,
    RuleOp,
    SelectOp,
    SffOp,
    TernaryRule,
    apply_ops,
    diff,
)
from dmano.p4rt_client import P4RuntimeConnector

LOCAL = MemberKey("local", port=16, mac="02:00:00:01:01:01")
REMOTE = MemberKey("remote", endpoint="10.2.0.2")
RULE_A = TernaryRule(100, (0x0A016400, 0xFFFFFF00), (0, 0), (17, 0xFF), (0, 0),
                     (5000, 0xFFFE), 10)
RULE_B = TernaryRule(50, (0, 0), (0x0A020000, 0xFFFF0000), (0, 0), (0, 0), (0, 0), 11)


def want_first() -> DesiredState:
    return DesiredState(
        config=("10.1.0.2", "02:00:00:00:00:01", "02:00:00:00:00:02"),
        classifier={RULE_A, RULE_B},
        sff={(10, 255): ("to_service", 1), (10, 254): ("end_of_chain", 0),
             (11, 255): ("drop", 0)},
        groups={1: {LOCAL: 3, REMOTE: 1}, 257: {LOCAL: 3}},
        selects={(1, 0): 1, (1, 1): 257},
    )


@pytest.fixture
def null_server(tmp_path: Path) -> Iterator[P4RuntimeServer]:
    srv = P4RuntimeServer(NullTarget(), socket_path=tmp_path / "p4rt.sock").start()
    try:
        yield srv
    finally:
        srv.stop(grace=None)


def writer(srv: P4RuntimeServer) -> P4RuntimeConnector:
    return P4RuntimeConnector(ConnectorConf(kind="p4runtime",
                                            address=f"unix:{srv.socket_path}"))


def test_every_op_kind_is_written_and_read_back(null_server: P4RuntimeServer) -> None:
    want = want_first()
    first = writer(null_server)
    try:
        ops = diff(first.read_state(), want)
        assert {type(op) for op in ops} == {ConfigOp, RuleOp, SffOp, MemberOp, GroupOp,
                                            SelectOp}
        first.write(ops)
        assert first.state == want and first.writes == len(ops)
    finally:
        first.close()

    # a restarted D-MANO finds what it wrote, member ids included
    second = writer(null_server)
    try:
        assert second.read_state() == want
        assert set(second.member_ids) == {LOCAL, REMOTE}
        # then shrinks it: deletions of every kind, and a group rewritten
        smaller = DesiredState(config=want.config, classifier={RULE_A},
                               sff={(10, 255): ("to_service", 1),
                                    (10, 254): ("end_of_chain", 0)},
                               groups={1: {LOCAL: 2}}, selects={(1, 0): 1, (1, 1): 1})
        ops = diff(second.state, smaller)
        assert {(op.kind, op.action) for op in ops} == {
            ("rule", "delete"), ("sff", "delete"), ("group", "set"), ("select", "set"),
            ("group", "delete"), ("member", "delete")}
        second.write(ops)
        assert apply_ops(want, ops) == smaller
    finally:
        second.close()

    third = writer(null_server)
    try:
        assert third.read_state() == smaller
        assert diff(third.state, smaller) == []
    finally:
        third.close()


def test_op_text() -> None:
    assert str(SffOp((10, 255), ("to_service", 1))) == "set sff (10, 255) = ('to_service', 1)"
    assert str(SffOp((10, 255), None)) == "delete sff (10, 255)"
    assert str(ConfigOp(("10.1.0.2", "a", "b"))) == "set config sff_config = ('10.1.0.2', 'a', 'b')"
    assert str(MemberOp("delete", REMOTE)).startswith("delete member MemberKey(kind='remote'")


def test_draining_member_kept_with_weight_zero(null_server: P4RuntimeServer) -> None:
    """Our P4Runtime server takes weight 0 (a draining member, PIPELINE.md): the member
    stays in its group, so the flows the connector's cache holds on it keep going."""
    first = writer(null_server)
    try:
        first.write(diff(first.read_state(), want_first()))
        draining = want_first()
        draining.groups = {1: {LOCAL: 0, REMOTE: 1}}
        draining.selects = {(1, 0): 1, (1, 1): 1}
        first.write(diff(first.state, draining))
        assert first.zero_weights is True
        assert first.state == draining
    finally:
        first.close()
    second = writer(null_server)
    try:
        held = second.read_state()
        assert held.groups[1] == {LOCAL: 0, REMOTE: 1}
    finally:
        second.close()


class RefusingTarget(NullTarget):
    """A connector that asks for weights >= 1, as P4Runtime and BMv2/PI do."""

    def set_group(self, slot: int, members: list[tuple[int, int]]) -> None:
        if any(w < 1 for _, w in members):
            raise TargetError("INVALID_ARGUMENT", f"slot {slot}: weight 0")
        super().set_group(slot, members)


def test_draining_member_on_a_connector_that_refuses_weight_zero(tmp_path: Path) -> None:
    """The writer learns that once, writes the group without the draining member and
    keeps the member defined."""
    srv = P4RuntimeServer(RefusingTarget(), socket_path=tmp_path / "p4rt.sock").start()
    try:
        first = writer(srv)
        try:
            first.write(diff(first.read_state(), want_first()))
            draining = want_first()
            draining.groups = {1: {LOCAL: 0, REMOTE: 1}}
            draining.selects = {(1, 0): 1, (1, 1): 1}
            first.write(diff(first.state, draining))
            assert first.zero_weights is False
            assert first.state == draining  # what we asked for, as the writer tracks it
        finally:
            first.close()
        second = writer(srv)
        try:
            held = second.read_state()
            assert held.groups[1] == {REMOTE: 1}  # the connector's group: new flows only
            assert LOCAL in second.member_ids  # the member is still defined
        finally:
            second.close()
    finally:
        srv.stop()


def test_duplicate_members_left_by_a_killed_writer_do_not_block_new_ones(
        null_server: P4RuntimeServer) -> None:
    """Two members with the same action (a D-MANO killed between writes can leave that):
    a restarted writer maps the action to one id and never reuses the other id (it used
    to take it for a new member and fail with ALREADY_EXISTS on every retry)."""
    first = writer(null_server)
    try:
        first.write([MemberOp("set", LOCAL)])
        first.member_ids = {REMOTE: 1}  # as if it had lost track: LOCAL gets id 2 too
        first.write([MemberOp("set", LOCAL)])  # the same action, a second id
        assert first.member_ids == {REMOTE: 1, LOCAL: 2}
    finally:
        first.close()
    second = writer(null_server)
    try:
        second.read_state()
        assert second.member_ids == {LOCAL: 1} and second.reserved_ids == {2}
        second.write([MemberOp("set", REMOTE)])
        assert second.member_ids[REMOTE] == 3
    finally:
        second.close()
