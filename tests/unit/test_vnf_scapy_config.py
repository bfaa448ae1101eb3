"""Configuring scapy VNFs: ``python -m vnf`` options, its config file, the topology's
``kind: scapy`` services (validated at load time), the builder's command line, and the
shipped topology and scenario."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from dmano.yamlconf import ConfigError
from scenarios.spec import load_scenario
from topologies.spec import load_topology
from vnf.config import parse_args
from vnf.usermodule import check_source

ROOT = Path(__file__).resolve().parents[2]
BASE = ["--name", "m1", "--iface", "eth0", "--stats", "/run/x/m1.json"]


# -- python -m vnf -------------------------------------------------------------------------

def test_cli_module_and_params() -> None:
    cfg = parse_args([*BASE, "--service", "scapy", "--module", "vnfs/dpi.py",
                      "--params-json", '{"pattern": "x", "n": [1, 2]}'])
    assert cfg.service == "scapy" and cfg.module == Path("vnfs/dpi.py")
    assert cfg.params == {"pattern": "x", "n": [1, 2]}
    assert parse_args([*BASE, "--service", "scapy", "--module", "m.py"]).params == {}
    assert parse_args([*BASE, "--service", "firewall"]).module is None


@pytest.mark.parametrize(("argv", "needle"), [
    (["--service", "scapy"], "--service scapy needs --module PATH"),
    (["--service", "scapy", "--module", "m.py", "--params-json", "{bad"], "not JSON"),
    (["--service", "scapy", "--module", "m.py", "--params-json", "[1]"],
     "expected a mapping (a JSON object), got list"),
    (["--service", "firewall", "--module", "m.py"],
     "--module: only the scapy service runs a module, not firewall"),
    (["--service", "dpi", "--params-json", "{}"], "--params-json: only the scapy service"),
    (["--service", "scapy", "--module", "m.py", "--rule", "drop"],
     "rules are only used by the firewall and dpi services"),
])
def test_cli_errors(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args([*BASE, *argv])
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


def test_config_file_module_is_relative_to_the_file(tmp_path: Path) -> None:
    f = tmp_path / "conf" / "m1.yaml"
    f.parent.mkdir()
    f.write_text("name: m1\niface: eth0\nstats: /run/s.json\nservice: scapy\n"
                 "module: ../vnfs/mark.py\nparams: {dscp: 46, ports: [1, 2]}\n")
    cfg = parse_args(["--config", str(f)])
    assert cfg.module == tmp_path / "conf" / ".." / "vnfs" / "mark.py"
    assert cfg.params == {"dscp": 46, "ports": [1, 2]}
    cfg = parse_args(["--config", str(f), "--params-json", '{"dscp": 10}'])
    assert cfg.params == {"dscp": 10}


@pytest.mark.parametrize(("text", "needle"), [
    ("params: [1]\n", "params: expected a mapping"),
    ("params: {when: 2024-01-01}\n", "params: expected strings, numbers"),
    ("params: {1: a}\n", "params: expected text keys"),
])
def test_config_file_params_errors(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "m1.yaml"
    f.write_text("name: m1\nservice: scapy\nmodule: m.py\n" + text)
    with pytest.raises(ConfigError, match=needle) as info:
        parse_args(["--config", str(f)])
    assert info.value.line == 4


# -- topology files ------------------------------------------------------------------------

TOPO = """\
nodes:
  - name: A
  - name: B
links:
  - {a: A, b: B, cost: 10}
services:
  - {name: FW, id: 1, anycast: 10.254.1.1, kind: firewall}
  - name: MARK
    id: 2
    anycast: 10.254.2.1
    kind: scapy
    module: vnfs/mark.py
    params: {dscp: 46, ports: [5000, 5001], note: "EF"}
instances:
  - {name: fw1, service: FW, node: B, capacity: 150}
  - {name: mark1, service: MARK, node: B, capacity: 150}
hosts:
  - {name: h1, node: A}
chains:
  - {spi: 1, services: [FW, MARK]}
"""
MODULE = "def process(pkt, ctx):\n    return pkt\n"


def topo_file(tmp_path: Path, text: str = TOPO, module: str | None = MODULE) -> Path:
    (tmp_path / "topo").mkdir(exist_ok=True)
    if module is not None:
        (tmp_path / "topo" / "vnfs").mkdir(exist_ok=True)
        (tmp_path / "topo" / "vnfs" / "mark.py").write_text(module)
    path = tmp_path / "topo" / "t.yaml"
    path.write_text(text)
    return path


def test_scapy_service_module_path_is_relative_to_the_topology_file(tmp_path: Path) -> None:
    topo = load_topology(topo_file(tmp_path))
    fw, mark = topo.services
    assert (fw.kind, fw.module, fw.params) == ("firewall", None, {})
    assert mark.kind == "scapy"
    assert mark.module == tmp_path / "topo" / "vnfs" / "mark.py" and mark.module.is_absolute()
    assert mark.params == {"dscp": 46, "ports": [5000, 5001], "note": "EF"}
    assert type(mark.params) is dict
    hash(mark)  # specs stay hashable


def test_module_paths_may_go_up_or_be_absolute(tmp_path: Path) -> None:
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "m.py").write_text(MODULE)
    up = topo_file(tmp_path, TOPO.replace("vnfs/mark.py", "../mods/m.py"), module=None)
    assert load_topology(up).services[1].module == tmp_path / "mods" / "m.py"
    absolute = topo_file(tmp_path, TOPO.replace("vnfs/mark.py", str(tmp_path / "mods/m.py")),
                         module=None)
    assert load_topology(absolute).services[1].module == tmp_path / "mods" / "m.py"


@pytest.mark.parametrize(("old", "new", "module", "expected"), [
    ("module: vnfs/mark.py", "module: vnfs/nope.py", MODULE,
     "t.yaml:12: services[1].module: no such file: {dir}/vnfs/nope.py (module paths are "
     "relative to the topology file)"),
    ("", "", "def process(pkt, ctx)\n    return pkt\n",
     "t.yaml:12: services[1].module: {dir}/vnfs/mark.py:1: syntax error: expected ':'"),
    ("", "", "def handle(pkt, ctx):\n    return pkt\n",
     "t.yaml:12: services[1].module: {dir}/vnfs/mark.py defines no process(pkt, ctx) "
     "function at module level"),
    ("    module: vnfs/mark.py\n", "", MODULE,
     "t.yaml:8: services[1].module: kind scapy needs a module: the path of a Python file "
     "defining process(pkt, ctx), relative to the topology file"),
    ("params: {dscp: 46, ports: [5000, 5001], note: \"EF\"}", "params: [1, 2]", MODULE,
     "t.yaml:13: services[1].params: expected a mapping with text keys, got [1, 2]"),
    ("params: {dscp: 46, ports: [5000, 5001], note: \"EF\"}", "params: {day: 2024-01-01}",
     MODULE, "t.yaml:13: services[1].params: expected strings, numbers, booleans, lists and "
             "mappings only"),
    ("kind: firewall}", "kind: firewall, module: vnfs/mark.py}", MODULE,
     "t.yaml:7: services[0].module: only kind scapy has module, not firewall"),
    ("kind: firewall}", "kind: ids, params: {a: 1}}", MODULE,
     "t.yaml:7: services[0].params: only kind scapy has params, not ids"),
    ("    module: vnfs/mark.py\n", "    module: 5\n", MODULE,
     "t.yaml:12: services[1].module: expected a non-empty string, got int 5"),
])
def test_topology_errors_name_file_line_and_field(tmp_path: Path, old: str, new: str,
                                                  module: str, expected: str) -> None:
    path = topo_file(tmp_path, TOPO.replace(old, new) if old else TOPO, module)
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    message = str(info.value)
    assert message.startswith(str(path.parent / expected.format(dir=path.parent))), message


def test_check_source_accepts_process_bound_in_other_ways(tmp_path: Path) -> None:
    cases = ["from helpers import process\n", "process = lambda pkt, ctx: pkt\n",
             "try:\n    import fast\nexcept ImportError:\n"
             "    def process(pkt, ctx):\n        return pkt\n",
             "class process:\n    pass\n"]
    for i, text in enumerate(cases):
        path = tmp_path / f"m{i}.py"
        path.write_text(text)
        assert check_source(path) is None, text
    (tmp_path / "inner.py").write_text("def f():\n    def process(pkt, ctx):\n"
                                       "        return pkt\n")
    assert "defines no process" in (check_source(tmp_path / "inner.py") or "")


def test_start_vnf_passes_module_and_params(tmp_path: Path, monkeypatch) -> None:
    """The builder's VNF command line (start_process replaced: no namespace) is one that
    python -m vnf accepts, with the module's absolute path and the params as JSON."""
    from topologies.network import Network

    net = Network(load_topology(topo_file(tmp_path)))
    net.registry = SimpleNamespace(folder=tmp_path)  # type: ignore[assignment]
    started: dict[str, list[str]] = {}
    monkeypatch.setattr(net, "start_process",
                        lambda name, node, args, log, *_: started.setdefault(name, args))
    net.start_vnf("mark1")
    net.start_vnf("fw1")
    args = started["vnf-mark1"]
    module = str(tmp_path / "topo" / "vnfs" / "mark.py")
    assert args[args.index("--module") + 1] == module
    assert json.loads(args[args.index("--params-json") + 1]) == {
        "dscp": 46, "ports": [5000, 5001], "note": "EF"}
    cfg = parse_args(args[3:])
    assert (cfg.service, cfg.module, cfg.params["dscp"]) == ("scapy", Path(module), 46)
    assert "--module" not in started["vnf-fw1"]


# -- the shipped topology and scenario -------------------------------------------------------

def test_shipped_scapy_chain_topology() -> None:
    topo = load_topology(ROOT / "topologies" / "scapy_chain.yaml")
    kinds = {s.name: (s.kind, s.module, s.params) for s in topo.services}
    assert kinds == {
        "FW": ("firewall", None, {}),
        "MARK": ("scapy", ROOT / "vnfs" / "dscp_marker.py", {"dscp": 46}),
        "METER": ("scapy", ROOT / "vnfs" / "rate_meter.py", {"period_s": 2}),
    }
    assert [c.services for c in topo.chains] == [("FW", "MARK", "METER")]


def test_shipped_scapy_chain_scenario_is_short() -> None:
    s = load_scenario(ROOT / "scenarios" / "scapy_chain.yaml")
    assert s.topology.name == "scapy_chain"
    assert s.wall_duration_s <= 30  # under a minute with bring-up and teardown
    assert s.traffic[0].chain == 10


@pytest.mark.parametrize("name", ["passthrough.py", "dscp_marker.py", "dpi.py",
                                  "rate_meter.py"])
def test_shipped_examples_pass_the_load_time_check(name: str) -> None:
    assert check_source(ROOT / "vnfs" / name) is None
