"""The eBPF map layouts without a kernel: what ``EbpfTarget`` writes it reads back."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from connector_p4.ebpf_maps import (
    BANK_SIZE,
    GROUP,
    MEMBER,
    MEMBER_KINDS,
    ROLES,
    make_port,
    pack_group,
    pack_rules,
    unpack_group,
    unpack_member,
    unpack_rules,
)
from connector_p4.target import GROUP_SLOTS, ClassifierRule, Member, TargetError, Ternary

ANY = Ternary(0, 0)


def test_rules_round_trip_in_lookup_order() -> None:
    rules = [ClassifierRule(100, Ternary(0x0A016400, 0xFFFFFF00), ANY, Ternary(17, 0xFF), ANY,
                            Ternary(5000, 0xFFFE), 10),
             ClassifierRule(5, ANY, Ternary(0x0A020000, 0xFFFF0000), ANY, ANY, ANY, 11)]
    bank = pack_rules(rules)
    assert len(bank) == BANK_SIZE
    assert unpack_rules(bank) == rules
    assert unpack_rules(bytes(BANK_SIZE)) == []
    with pytest.raises(TargetError, match="proto does not fit 8 bits"):
        pack_rules([ClassifierRule(1, ANY, ANY, Ternary(256, 0x1FF), ANY, ANY, 1)])
    with pytest.raises(TargetError, match="spi"):
        pack_rules([ClassifierRule(1, ANY, ANY, ANY, ANY, ANY, 1 << 24)])


def test_groups_and_members_round_trip() -> None:
    members = [(7, 3), (2, 1)]
    value = pack_group(members)
    fields = GROUP.unpack(value)
    assert fields[0] == 4  # WCMP slots used: the sum of the weights
    assert list(fields[3:3 + GROUP_SLOTS][:8]) == [7, 7, 7, 2, 7, 7, 7, 2]
    assert unpack_group(value) == members
    assert unpack_group(bytes(GROUP.size)) is None
    local = Member("local", port=16, dmac=bytes.fromhex("020000000001"))
    assert unpack_member(MEMBER.pack(MEMBER_KINDS["local"], 16, 0, local.dmac)) == local
    remote = MEMBER.pack(MEMBER_KINDS["remote"], 0, int(IPv4Address("10.2.0.2")), bytes(6))
    assert unpack_member(remote) == Member("remote", endpoint=IPv4Address("10.2.0.2"))
    assert unpack_member(bytes(MEMBER.size)) is None


def test_port_from_a_full_spec() -> None:
    p = make_port(16, ("v-a", 7, "02:00:00:00:00:01", "vnf", 1600))
    assert (p.ifname, p.ifindex, p.mac, p.role, p.mtu) == ("v-a", 7, bytes([2, 0, 0, 0, 0, 1]),
                                                            ROLES["vnf"], 1600)
    with pytest.raises(ValueError, match="not a MAC address"):
        make_port(16, ("v-a", 7, "02:00:00:00:01", "vnf", 1600))
