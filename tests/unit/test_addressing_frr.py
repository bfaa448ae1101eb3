"""Address plan and generated FRR configuration (no daemons started)."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from dmano.yamlconf import ConfigError
from topologies import addressing as addr
from topologies.frr import BFD_PROFILE, bfdd_conf, daemons, ospfd_conf
from topologies.spec import load_topology

ROOT = Path(__file__).resolve().parents[2]


def fig3():
    return load_topology(ROOT / "topologies" / "paper_fig3.yaml")


def test_address_plan_is_disjoint_and_follows_design():
    topo = fig3()
    subnets = [addr.link_addressing(lk).subnet for lk in topo.links]
    for n in topo.nodes:
        subnets += [addr.connector_subnet(n.index), addr.host_subnet(n.index),
                    addr.loopback(n.index).network]
    for i, a in enumerate(subnets):
        for b in subnets[i + 1:]:
            assert not a.overlaps(b), (a, b)
    assert addr.nsh_endpoint(2) == IPv4Interface("10.2.0.2/24")
    assert addr.host_addresses(topo)["dst"] == IPv4Interface("10.5.100.10/24")
    la = addr.link_addressing(topo.links[3])
    assert la.subnet == IPv4Network("10.0.0.12/30")
    assert (la.a_addr.ip, la.b_addr.ip) == (la.subnet[1], la.subnet[2])


def test_ospfd_config_has_costs_timers_and_opaque():
    topo = fig3()
    conf = ospfd_conf(topo, "C")
    assert " ospf router-id 10.255.0.3" in conf
    assert " capability opaque" in conf
    # C's links: A-C cost 10 and C-D cost 5
    assert "interface to-A\n" in conf and "interface to-D\n" in conf
    blocks = {b.split("\n")[0]: b for b in conf.split("!\n")}
    assert " ip ospf cost 5" in blocks["interface to-D"]
    assert " ip ospf cost 10" in blocks["interface to-A"]
    assert " ip ospf passive" in blocks["interface conn"]
    assert "interface to-B" not in conf
    assert f" timers throttle lsa all {topo.ospf.lsa_throttle_ms}" in conf


def test_bfd_on_by_default_on_router_links_only():
    topo = fig3()
    assert topo.ospf.bfd is not None
    assert (topo.ospf.bfd.interval_ms, topo.ospf.bfd.multiplier) == (100, 3)
    assert daemons(topo) == ("zebra", "bfdd", "ospfd")
    conf = ospfd_conf(topo, "C")
    blocks = {b.split("\n")[0]: b for b in conf.split("!\n")}
    for iface in ("interface to-A", "interface to-D"):
        assert " ip ospf bfd\n" in blocks[iface]
        assert f" ip ospf bfd profile {BFD_PROFILE}\n" in blocks[iface]
    for iface in ("interface conn", "interface hosts", "interface lo"):
        assert "bfd" not in blocks[iface]
    bfdd = bfdd_conf(topo, "C")
    assert f" profile {BFD_PROFILE}\n  receive-interval 100\n  transmit-interval 100\n" \
           "  detect-multiplier 3\n" in bfdd


def test_bfd_settings_and_off(tmp_path: Path):
    base = (ROOT / "topologies" / "paper_fig3.yaml").read_text()
    f = tmp_path / "t.yaml"
    f.write_text(base + "ospf:\n  bfd: {interval_ms: 50, multiplier: 5}\n")
    topo = load_topology(f)
    assert topo.ospf.bfd is not None and topo.ospf.bfd.detect_ms == 250
    assert "  receive-interval 50\n" in bfdd_conf(topo, "A")
    assert "  detect-multiplier 5\n" in bfdd_conf(topo, "A")
    f.write_text(base + "ospf:\n  bfd: off\n")
    topo = load_topology(f)
    assert topo.ospf.bfd is None
    assert daemons(topo) == ("zebra", "ospfd")
    assert "bfd" not in ospfd_conf(topo, "A")


@pytest.mark.parametrize("value, message", [
    ("maybe", "ospf.bfd: expected off or a mapping {interval_ms, multiplier}, got 'maybe'"),
    ("{interval_ms: 5}", "ospf.bfd.interval_ms: expected an integer in 10..60000, got 5"),
    ("{multiplier: 1}", "ospf.bfd.multiplier: expected an integer in 2..255, got 1"),
    ("{interval: 100}", "ospf.bfd.interval: unknown key (allowed here: interval_ms, "
                        "multiplier)"),
])
def test_bad_bfd_settings_name_file_line_field(tmp_path: Path, value: str, message: str):
    base = (ROOT / "topologies" / "paper_fig3.yaml").read_text()
    f = tmp_path / "t.yaml"
    f.write_text(base + f"ospf:\n  bfd: {value}\n")
    line = len(base.splitlines()) + 2
    with pytest.raises(ConfigError) as err:
        load_topology(f)
    assert str(err.value) == f"{f}:{line}: {message}"
