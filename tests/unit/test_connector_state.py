"""Desired connector state and the diff that writes only differences."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from dmano.config import ChainConf, ConnectorConf, InstanceConf, NodeConfig, RuleConf
from dmano.connector_state import (
    LOCAL_GROUP_BASE,
    DesiredState,
    MemberKey,
    apply_ops,
    classifier_rules,
    desired_state,
    diff,
    port_range_to_ternary,
    sff_entries,
)
from dmano.model import InstanceState
from dmano.service_plane import Candidate


@given(st.integers(0, 65535), st.integers(0, 65535))
def test_port_range_cover_is_exact(a: int, b: int):
    lo, hi = min(a, b), max(a, b)
    entries = port_range_to_ternary(lo, hi)
    covered = set()
    for value, mask in entries:
        assert value & ~mask & 0xFFFF == 0
        size = (~mask & 0xFFFF) + 1
        block = set(range(value, value + size))
        assert not block & covered  # disjoint
        covered |= block
    assert covered == set(range(lo, hi + 1))
    assert len(entries) <= 30


def test_port_range_examples():
    assert port_range_to_ternary(5000, 5000) == [(5000, 0xFFFF)]
    assert port_range_to_ternary(0, 65535) == [(0, 0)]
    assert port_range_to_ternary(1024, 2047) == [(1024, 0xFC00)]


def cfg(**kw) -> NodeConfig:
    base = dict(
        node="A", router_id=IPv4Address("10.255.0.1"), nsh_endpoint=IPv4Address("10.1.0.2"),
        policy=Path("p.yaml"), status_file=Path("s.json"),
        connector=ConnectorConf(router_mac="02:00:00:00:00:01", local_mac="02:00:00:00:00:02"),
        chains=(ChainConf(10, (1, 2)),),
        classifier=(RuleConf(10, 100, IPv4Network("10.1.100.0/24"),
                             IPv4Network("0.0.0.0/0"), 17, None, (5000, 5001)),),
        instances=(InstanceConf("ids1", 1, 1, 100, Path("x"), port=16,
                                mac="02:00:00:01:01:01"),),
    )
    base.update(kw)
    return NodeConfig(**base)


def test_sff_entries_walk_the_chain():
    assert sff_entries(cfg()) == {(10, 255): ("to_service", 1), (10, 254): ("to_service", 2),
                                  (10, 253): ("end_of_chain", 0)}


def test_classifier_rules_expand_ranges():
    rules = classifier_rules(cfg())
    assert {r.dport for r in rules} == {(5000, 0xFFFE)}
    (rule,) = rules
    assert rule.src == (int(IPv4Address("10.1.100.0")), 0xFFFFFF00)
    assert rule.dst == (0, 0) and rule.proto == (17, 0xFF) and rule.spi == 10


def cand(name, adv, iid, weight, local, endpoint):
    return Candidate(IPv4Address(adv), iid, name, IPv4Address(endpoint), 0, 10, 10, weight,
                     local)


def test_groups_local_only_group_for_remote_arrivals():
    tables = {
        1: [cand("ids1", "10.255.0.1", 1, 3, True, "10.1.0.2"),
            cand("ids2", "10.255.0.2", 1, 1, False, "10.2.0.2"),
            cand("ids3", "10.255.0.2", 2, 2, False, "10.2.0.2")],
        2: [cand("fw", "10.255.0.3", 1, 5, False, "10.3.0.2")],
    }
    want = desired_state(cfg(), tables)
    local = MemberKey("local", port=16, mac="02:00:00:01:01:01")
    remote2 = MemberKey("remote", endpoint="10.2.0.2")
    assert want.groups[1] == {local: 3, remote2: 3}  # two instances on one node merged
    assert want.groups[LOCAL_GROUP_BASE + 1] == {local: 3}
    assert want.selects[(1, 0)] == 1 and want.selects[(1, 1)] == LOCAL_GROUP_BASE + 1
    # no local instance of service 2: remote arrivals use the normal group
    assert want.selects[(2, 1)] == 2 and LOCAL_GROUP_BASE + 2 not in want.groups


def test_diff_writes_only_differences_in_a_safe_order():
    tables = {1: [cand("ids1", "10.255.0.1", 1, 3, True, "10.1.0.2"),
                  cand("ids2", "10.255.0.2", 1, 1, False, "10.2.0.2")]}
    want = desired_state(cfg(), tables)
    ops = diff(DesiredState(), want)
    kinds = [o.kind for o in ops]
    assert kinds.index("member") < kinds.index("group") < kinds.index("select")
    have = apply_ops(DesiredState(), ops)
    assert diff(have, want) == []
    # a weight change is one group write
    tables[1][1] = cand("ids2", "10.255.0.2", 1, 2, False, "10.2.0.2")
    ops = diff(have, desired_state(cfg(), tables))
    assert [(o.kind, o.action, o.key) for o in ops] == [("group", "set", 1)]
    # the remote instance goes away: group rewritten before its member is deleted
    ops = diff(have, desired_state(cfg(), {1: tables[1][:1]}))
    assert [(o.kind, o.action) for o in ops][-1] == ("member", "delete")


members = st.sampled_from([MemberKey("local", port=16 + i, mac=f"02:00:00:00:00:{i:02x}")
                           for i in range(3)] +
                          [MemberKey("remote", endpoint=f"10.{i}.0.2") for i in range(1, 4)])
groups = st.dictionaries(st.integers(1, 4), st.dictionaries(members, st.integers(0, 10),
                                                            min_size=1, max_size=4))
states = st.builds(
    DesiredState,
    config=st.sampled_from([None, ("10.1.0.2", "a", "b")]),
    sff=st.dictionaries(st.tuples(st.integers(1, 3), st.integers(250, 255)),
                        st.tuples(st.sampled_from(["to_service", "end_of_chain"]),
                                  st.integers(0, 3)), max_size=5),
    groups=groups,
    selects=st.dictionaries(st.tuples(st.integers(1, 4), st.integers(0, 1)),
                            st.integers(1, 4), max_size=4),
)


@given(states, states)
def test_diff_then_apply_reaches_the_target(have: DesiredState, want: DesiredState):
    if want.config is None:
        want.config = have.config
    assert apply_ops(have, diff(have, want)) == want


def dcand(name, adv, iid, weight, local, endpoint, state=InstanceState.UP):
    return replace(cand(name, adv, iid, weight, local, endpoint), state=state)


LOCAL1 = MemberKey("local", port=16, mac="02:00:00:01:01:01")
REMOTE2 = MemberKey("remote", endpoint="10.2.0.2")
REMOTE3 = MemberKey("remote", endpoint="10.3.0.2")


def test_draining_local_member_kept_with_weight_zero():
    """A draining instance stays a member (weight 0, out of the WCMP slots) so the flows
    the connector pinned to it keep going; it is deleted only once withdrawn."""
    up = [dcand("ids1", "10.255.0.1", 1, 3, True, "10.1.0.2"),
          dcand("ids2", "10.255.0.2", 1, 2, False, "10.2.0.2")]
    have = desired_state(cfg(), {1: up})
    draining = [dcand("ids1", "10.255.0.1", 1, 0, True, "10.1.0.2", InstanceState.DRAINING),
                dcand("ids2", "10.255.0.2", 1, 2, False, "10.2.0.2")]
    want = desired_state(cfg(), {1: draining})
    assert want.groups[1] == {LOCAL1: 0, REMOTE2: 2}
    assert LOCAL1 in want.members()
    # no local instance takes new flows: remote arrivals use the group of all candidates,
    # which still lists the draining local member for its pinned flows
    assert LOCAL_GROUP_BASE + 1 not in want.groups and want.selects[(1, 1)] == 1
    ops = diff(have, want)
    assert not any(o.kind == "member" and o.action == "delete" for o in ops)
    assert [(o.kind, o.key) for o in ops if o.kind == "group" and o.value is not None] == [
        ("group", 1)]
    assert apply_ops(have, ops) == want
    # withdrawn: only now is the member deleted, after the group no longer lists it
    gone = desired_state(cfg(), {1: draining[1:]})
    ops = diff(want, gone)
    assert [(o.kind, o.action) for o in ops][-1] == ("member", "delete")
    assert ops[-1].key == LOCAL1


def test_draining_remote_instances_merge_per_endpoint():
    tables = {1: [
        dcand("a", "10.255.0.2", 1, 0, False, "10.2.0.2", InstanceState.DRAINING),
        dcand("b", "10.255.0.2", 2, 3, False, "10.2.0.2"),  # same node, still up
        dcand("c", "10.255.0.3", 1, 0, False, "10.3.0.2", InstanceState.DRAINING),
        dcand("d", "10.255.0.1", 1, 1, True, "10.1.0.2"),
    ]}
    want = desired_state(cfg(), tables)
    assert want.groups[1] == {REMOTE2: 3, REMOTE3: 0, LOCAL1: 1}
    assert want.groups[LOCAL_GROUP_BASE + 1] == {LOCAL1: 1}


def test_everything_draining_keeps_the_group_for_pinned_flows():
    tables = {1: [dcand("a", "10.255.0.1", 1, 0, True, "10.1.0.2", InstanceState.DRAINING)]}
    want = desired_state(cfg(), tables)
    assert want.groups == {1: {LOCAL1: 0}} and want.selects == {(1, 0): 1, (1, 1): 1}


def test_up_candidate_without_weight_is_not_a_member():
    """Weight 0 of an UP candidate (more live members than the budget) is not draining."""
    tables = {1: [dcand("a", "10.255.0.1", 1, 0, True, "10.1.0.2"),
                  dcand("b", "10.255.0.2", 1, 2, False, "10.2.0.2")]}
    assert desired_state(cfg(), tables).groups[1] == {REMOTE2: 2}


def test_fit_keeps_draining_members():
    from dmano.connector_state import _fit

    members = {MemberKey("remote", endpoint=f"10.{i}.0.2"): 30 for i in range(1, 4)}
    members[LOCAL1] = 0
    fitted = _fit(members)
    assert fitted[LOCAL1] == 0 and sum(fitted.values()) <= 64
    assert all(w >= 1 for k, w in fitted.items() if k != LOCAL1)
