"""The hand-written P4Info against PIPELINE.md and against connector.p4.

p4c is not needed: connector.p4 is read with regular expressions (every P4Runtime object
carries an @id there), so a name, id, key, parameter or size that drifts between the three
files fails here. Where p4c is installed, the last test also compiles connector.p4 and
compares p4c's P4Info with ours.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

from connector_p4 import target
from connector_p4.p4rt_server import P4INFO_PATH, load_p4info, p4info_fingerprint

ROOT = Path(__file__).resolve().parents[2]
PIPELINE_MD = ROOT / "connector_p4" / "PIPELINE.md"
CONNECTOR_P4 = ROOT / "connector_p4" / "connector.p4"

NOACTION_ID = 21257015  # p4c's id for core.p4's NoAction (jenkins hash of the name)
MT = p4info_pb2.MatchField
PREFIX = p4info_pb2.P4Ids

# What PIPELINE.md specifies, spelled out (the test below checks this against the text).
TABLES = {
    "Ingress.classifier": {
        "fields": [("hdr.ipv4.srcAddr", 32, MT.TERNARY), ("hdr.ipv4.dstAddr", 32, MT.TERNARY),
                   ("hdr.ipv4.protocol", 8, MT.TERNARY), ("meta.l4_src", 16, MT.TERNARY),
                   ("meta.l4_dst", 16, MT.TERNARY)],
        "actions": {"Ingress.set_chain", "NoAction"},
        "default": "NoAction",
        "size": target.MAX_CLASSIFIER_RULES,
    },
    "Ingress.sff_next": {
        "fields": [("meta.spi", 24, MT.EXACT), ("meta.si", 8, MT.EXACT)],
        "actions": {"Ingress.to_service", "Ingress.end_of_chain", "Ingress.drop_packet"},
        "default": "Ingress.drop_packet",
        "size": target.MAX_SFF_ENTRIES,
    },
    "Ingress.instance_select": {
        "fields": [("meta.service_id", 8, MT.EXACT), ("meta.from_remote", 1, MT.EXACT)],
        "actions": {"Ingress.to_local_vnf", "Ingress.to_remote", "NoAction"},
        "default": "NoAction",
        "size": target.SELECT_SLOTS,  # one entry per (service id, from_remote)
    },
    "Ingress.sff_config": {
        "fields": [],
        "actions": {"Ingress.set_config"},
        "default": None,  # modifiable: set_config
        "size": None,
    },
    "Ingress.l2_forward": {
        "fields": [("standard_metadata.ingress_port", 9, MT.TERNARY),
                   ("hdr.ethernet.dstAddr", 48, MT.TERNARY)],
        "actions": {"Ingress.l2_out", "Ingress.l2_multicast", "Ingress.drop_packet",
                    "NoAction"},
        "default": None,  # modifiable: NoAction
        "size": None,
    },
}
ACTIONS = {
    "Ingress.set_chain": [("spi", 24)],
    "Ingress.to_service": [("service_id", 8)],
    "Ingress.end_of_chain": [],
    "Ingress.drop_packet": [],
    "Ingress.to_local_vnf": [("port", 9), ("dmac", 48)],
    "Ingress.to_remote": [("endpoint", 32)],
    "Ingress.set_config": [("local_ip", 32), ("router_mac", 48), ("local_mac", 48)],
    "Ingress.l2_out": [("port", 9)],
    "Ingress.l2_multicast": [("group", 16)],
    "NoAction": [],
}
COUNTERS = {"Ingress.member_pkts": target.MAX_MEMBERS, "Ingress.drops": 16,
            "Ingress.classified": 1, "Ingress.end_of_chain": 1}
REGISTERS = {"Ingress.flow_cache_key", "Ingress.flow_cache_val", "Ingress.flow_cache_seen",
             "Ingress.flow_cache_born"}
PROFILES = {"Ingress.instance_selector"}
# how many objects of each kind the P4Info holds: every loop over them (or over what a
# regex finds for them) checks its count first, so a loop over nothing cannot pass
KIND_COUNTS = {"tables": len(TABLES), "actions": len(ACTIONS),
               "action_profiles": len(PROFILES), "counters": len(COUNTERS),
               "registers": len(REGISTERS), "direct_counters": 0, "meters": 0,
               "direct_meters": 0}


@pytest.fixture(scope="module")
def p4info() -> p4info_pb2.P4Info:
    return text_format.Parse(P4INFO_PATH.read_text(), p4info_pb2.P4Info())


@pytest.fixture(scope="module")
def p4src() -> str:
    # comments out, so that names in prose do not count
    text = re.sub(r"/\*.*?\*/", "", CONNECTOR_P4.read_text(), flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def by_name(objs) -> dict:
    return {o.preamble.name: o for o in objs}


def counted(items, expected: int, what: str) -> list:
    """``items`` as a list, after checking that there are exactly ``expected`` of them."""
    items = list(items)
    assert len(items) == expected, (
        f"{what}: {len(items)} found, {expected} expected (a regex that matches nothing?)")
    return items


def of_kind(p4info, kind: str) -> list:
    """The P4Info's objects of one kind, checked against :data:`KIND_COUNTS`."""
    return counted(getattr(p4info, kind), KIND_COUNTS[kind], f"P4Info {kind}")


def all_objects(p4info):
    for kind, prefix in (("tables", PREFIX.TABLE), ("actions", PREFIX.ACTION),
                         ("action_profiles", PREFIX.ACTION_PROFILE),
                         ("counters", PREFIX.COUNTER), ("registers", PREFIX.REGISTER),
                         ("direct_counters", PREFIX.DIRECT_COUNTER), ("meters", PREFIX.METER),
                         ("direct_meters", PREFIX.DIRECT_METER)):
        for obj in of_kind(p4info, kind):
            yield kind, prefix, obj


# --------------------------------------------------------------------------- P4Info alone


def test_p4info_holds_the_expected_objects(p4info):
    for kind in KIND_COUNTS:
        of_kind(p4info, kind)
    assert {t.preamble.name for t in p4info.tables} == set(TABLES)
    assert {a.preamble.name for a in p4info.actions} == set(ACTIONS)
    assert {c.preamble.name for c in p4info.counters} == set(COUNTERS)
    assert {r.preamble.name for r in p4info.registers} == REGISTERS
    assert {p.preamble.name for p in p4info.action_profiles} == PROFILES


def test_ids_are_unique_and_prefixed(p4info):
    ids = []
    for kind, prefix, obj in all_objects(p4info):
        pid = obj.preamble.id
        assert pid >> 24 == prefix, f"{kind} {obj.preamble.name}: id {pid:#x} lacks prefix"
        assert pid & 0xFFFFFF, f"{obj.preamble.name}: id {pid:#x} is only a prefix"
        ids.append(pid)
    assert len(ids) == sum(KIND_COUNTS.values())
    assert len(ids) == len(set(ids))
    assert p4info.pkg_info.arch == "v1model"


def test_names_and_aliases_unique_per_type(p4info):
    for kind in ("tables", "actions", "action_profiles", "counters", "registers"):
        objs = of_kind(p4info, kind)
        names = [o.preamble.name for o in objs]
        aliases = [o.preamble.alias for o in objs]
        assert len(names) == len(set(names)), kind
        assert len(aliases) == len(set(aliases)), kind
        for o in objs:
            assert o.preamble.name.endswith(o.preamble.alias)


def test_references_resolve(p4info):
    actions = {a.preamble.id: a for a in of_kind(p4info, "actions")}
    profiles = {p.preamble.id: p for p in of_kind(p4info, "action_profiles")}
    tables = {t.preamble.id: t for t in of_kind(p4info, "tables")}
    assert len(actions) == len(ACTIONS) and len(tables) == len(TABLES)  # ids distinct
    for t in tables.values():
        refs = {r.id for r in t.action_refs}
        assert refs, t.preamble.name
        assert refs <= set(actions), t.preamble.name
        if t.const_default_action_id:
            assert t.const_default_action_id in refs
        assert [f.id for f in t.match_fields] == list(range(1, len(t.match_fields) + 1))
        if t.implementation_id:
            assert t.preamble.id in profiles[t.implementation_id].table_ids
        for r in t.action_refs:
            scoped = r.scope == p4info_pb2.ActionRef.DEFAULT_ONLY
            assert scoped == ("@defaultonly" in r.annotations)
    for a in actions.values():
        assert [p.id for p in a.params] == list(range(1, len(a.params) + 1))
    for p in profiles.values():
        assert p.table_ids, p.preamble.name
        for tid in p.table_ids:
            assert tables[tid].implementation_id == p.preamble.id
    assert NOACTION_ID in actions and actions[NOACTION_ID].preamble.name == "NoAction"


# --------------------------------------------------------------------------- PIPELINE.md


def test_expectations_are_what_pipeline_md_says():
    md = PIPELINE_MD.read_text()
    tables_md = md.split("## Tables", 1)[1].split("\n## ", 1)[0]
    items = re.split(r"\n(?=\d+\. )", tables_md)
    named = {}
    for item in items:
        m = re.match(r"\d+\. `(Ingress\.\w+)`", item.strip())
        if m:
            named[m.group(1)] = item
    assert set(named) == set(TABLES)
    widths_given = []  # (table, field) whose width PIPELINE.md states
    kinds_given = set()  # tables whose match kind PIPELINE.md states
    for name, item in named.items():
        fields = re.findall(r"`((?:hdr|meta|standard_metadata)\.[\w.]+)`", item)
        assert fields == [f for f, _, _ in TABLES[name]["fields"]], name
        for f, width in re.findall(r"`((?:meta)\.[\w.]+)` \((\d+)\)", item):
            assert (f, int(width)) in [(n, w) for n, w, _ in TABLES[name]["fields"]]
            widths_given.append((name, f))
        for kind in ("ternary", "exact"):
            if re.search(rf"\b{kind} `", item):
                want = MT.TERNARY if kind == "ternary" else MT.EXACT
                assert {t for _, _, t in TABLES[name]["fields"]} == {want}, name
                kinds_given.add(name)
    # sff_next and instance_select give the widths of their four exact meta fields
    counted(widths_given, 4, "meta field widths in PIPELINE.md")
    assert kinds_given == {n for n, t in TABLES.items() if t["fields"]}
    sigs = re.findall(r"`(\w+)\(([^)`]*)\)`", tables_md)
    assert sigs, "no action signatures found in PIPELINE.md"
    checked = set()
    for act, params in sigs:
        if "bit<" not in params and params.strip():
            continue
        want = [(n, int(w)) for w, n in re.findall(r"bit<(\d+)>\s+(\w+)", params)]
        assert ACTIONS[f"Ingress.{act}"] == want, act
        checked.add(f"Ingress.{act}")
    assert checked == set(ACTIONS) - {"NoAction"}  # every action's signature is given
    assert "`NoAction`" in tables_md
    counters_md = md.split("## Counters", 1)[1].split("\n## ", 1)[0]
    found = dict(re.findall(r"`(Ingress\.\w+)\[\w+\]`(?: \((\d+) cells\))?", counters_md))
    assert set(found) == set(COUNTERS)
    sized = {name: int(cells) for name, cells in found.items() if cells}
    assert set(sized) == {"Ingress.member_pkts", "Ingress.drops"}
    for name, cells in sized.items():
        assert COUNTERS[name] == cells
    reasons = counted(re.findall(r"(\d+) `(\w+)`", counters_md), len(target.DROP_REASONS),
                      "drop reasons in PIPELINE.md")
    assert [r for _, r in reasons] == list(target.DROP_REASONS)
    assert [int(i) for i, _ in reasons] == list(range(len(target.DROP_REASONS)))
    assert "`Ingress.instance_selector`" in md


def test_p4info_implements_pipeline_md(p4info):
    tables = by_name(p4info.tables)
    actions = by_name(p4info.actions)
    ids = {a.preamble.id: a.preamble.name for a in p4info.actions}
    for name, want in TABLES.items():
        t = tables[name]
        got = [(f.name, f.bitwidth, f.match_type) for f in t.match_fields]
        assert got == want["fields"], name
        assert {ids[r.id] for r in t.action_refs} == want["actions"], name
        if want["default"] is None:
            assert t.const_default_action_id == 0
        else:
            assert ids[t.const_default_action_id] == want["default"], name
        if want["size"] is not None:
            assert t.size == want["size"], name
    for name, params in ACTIONS.items():
        assert [(p.name, p.bitwidth) for p in actions[name].params] == params, name
    counters = by_name(p4info.counters)
    for name, size in COUNTERS.items():
        assert counters[name].size == size
        assert counters[name].spec.unit == p4info_pb2.CounterSpec.BOTH
    assert counters["Ingress.drops"].size >= len(target.DROP_REASONS)
    prof = by_name(p4info.action_profiles)["Ingress.instance_selector"]
    assert prof.with_selector
    assert prof.size == target.MAX_MEMBERS
    assert prof.max_group_size == target.GROUP_SLOTS
    assert list(prof.table_ids) == [tables["Ingress.instance_select"].preamble.id]
    assert tables["Ingress.instance_select"].implementation_id == prof.preamble.id
    # members may only be bound to the selector table's non-default actions
    sel = tables["Ingress.instance_select"]
    member_actions = {ids[r.id] for r in sel.action_refs
                      if r.scope != p4info_pb2.ActionRef.DEFAULT_ONLY}
    assert member_actions == {"Ingress.to_local_vnf", "Ingress.to_remote"}
    assert load_p4info() == p4info


def test_instance_select_from_remote_key(p4info):
    """(service id, from_remote): the second key was added with id 2, nothing else moved."""
    sel = by_name(p4info.tables)["Ingress.instance_select"]
    assert sel.preamble.id == 0x02000003
    assert [(f.id, f.name, f.bitwidth, f.match_type) for f in sel.match_fields] == [
        (1, "meta.service_id", 8, MT.EXACT), (2, "meta.from_remote", 1, MT.EXACT)]
    assert sel.size == target.SELECT_SLOTS == 2 * target.MAX_SERVICES
    assert [target.select_slot(s, f) for s, f in ((0, 0), (255, 0), (0, 1), (255, 1))] == [
        0, 255, 256, 511]
    assert all(target.slot_key(target.select_slot(s, f)) == (s, f)
               for s in range(target.MAX_SERVICES) for f in (0, 1))
    for bad in ((256, 0), (0, 2), (-1, 0)):
        with pytest.raises(ValueError):
            target.select_slot(*bad)
    key = by_name(p4info.registers)["Ingress.flow_cache_key"]
    assert key.type_spec.bitstring.bit.bitwidth == 32 + 8 + 1  # ctx1 ++ service ++ from_remote


# --------------------------------------------------------------------------- connector.p4


def _block(src: str, start: int) -> str:
    """The text between the brace at/after ``start`` and its match."""
    i = src.index("{", start)
    depth = 0
    for j in range(i, len(src)):
        if src[j] == "{":
            depth += 1
        elif src[j] == "}":
            depth -= 1
            if depth == 0:
                return src[i + 1:j]
    raise AssertionError("unbalanced braces")


def _widths(src: str) -> dict[str, int]:
    """'hdr.ipv4.srcAddr' / 'meta.spi' / 'standard_metadata.ingress_port' -> bit width."""
    types: dict[str, dict[str, str]] = {}
    for kind, name in re.findall(r"\b(header|struct)\s+(\w+)\s*\{", src):
        body = _block(src, src.index(f"{kind} {name}"))
        types[name] = {f: t for t, f in re.findall(r"([\w<>]+)\s+(\w+)\s*;", body)}
        assert types[name], f"{kind} {name}: no members found"
    assert {"headers_t", "metadata_t"} <= set(types), sorted(types)
    out = {"standard_metadata.ingress_port": 9}
    for prefix, struct in (("hdr", "headers_t"), ("meta", "metadata_t")):
        for member, mtype in types[struct].items():
            m = re.fullmatch(r"bit<(\d+)>", mtype)
            if m:
                out[f"{prefix}.{member}"] = int(m.group(1))
                continue
            for fname, ftype in types[mtype].items():
                out[f"{prefix}.{member}.{fname}"] = int(re.fullmatch(r"bit<(\d+)>",
                                                                     ftype).group(1))
    return out


def _consts(src: str) -> dict[str, int]:
    return {n: int(v, 0) for n, v in
            re.findall(r"const\s+bit<\d+>\s+(\w+)\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*;", src)}


def NAME(local: str) -> str:  # noqa: N802 (reads like the P4 annotation it matches)
    """The absolute control-plane name every P4Runtime object carries in connector.p4:
    the controls cannot be called Ingress/Egress (v1model.p4 declares those type names),
    and the P4Runtime names stay ``Ingress.<object>``."""
    return rf'@name\("\.Ingress\.{local}"\)\s*'


def test_p4_source_matches_p4info(p4info, p4src):
    widths = _widths(p4src)
    consts = _consts(p4src)
    assert consts.get("FLOW_CACHE_SLOTS") == 65536, "const declarations not found"
    ids_in_source = {int(x, 16) for x in re.findall(r"@id\((0x[0-9a-fA-F]+)\)", p4src)}
    ids_in_p4info = {o.preamble.id for _, _, o in all_objects(p4info)} - {NOACTION_ID}
    counted(ids_in_p4info, sum(KIND_COUNTS.values()) - 1, "P4Info ids but NoAction's")
    assert ids_in_source == ids_in_p4info
    action_local = {a.preamble.id: a.preamble.name.rsplit(".", 1)[-1] for a in p4info.actions}

    for a in of_kind(p4info, "actions"):
        if a.preamble.id == NOACTION_ID:
            continue
        local = a.preamble.name.removeprefix("Ingress.")
        m = re.search(rf"@id\((0x[0-9a-fA-F]+)\)\s*{NAME(local)}action\s+{local}\s*"
                      rf"\(([^)]*)\)", p4src)
        assert m, f"action {local} not declared with an @id in connector.p4"
        assert int(m.group(1), 16) == a.preamble.id
        params = [(n, int(w)) for w, n in re.findall(r"bit<(\d+)>\s+(\w+)", m.group(2))]
        assert params == [(p.name, p.bitwidth) for p in a.params], local

    for t in of_kind(p4info, "tables"):
        local = t.preamble.name.removeprefix("Ingress.")
        m = re.search(rf"@id\((0x[0-9a-fA-F]+)\)\s*{NAME(local)}table\s+{local}\s*\{{", p4src)
        assert m, f"table {local} not declared with an @id in connector.p4"
        assert int(m.group(1), 16) == t.preamble.id
        body = _block(p4src, m.start())
        key_m = re.search(r"key\s*=\s*\{([^}]*)\}", body)
        keys = re.findall(r"([\w.]+)\s*:\s*(\w+)\s*;", key_m.group(1)) if key_m else []
        keys = [(e, k) for e, k in keys if k != "selector"]
        kinds = {"exact": MT.EXACT, "ternary": MT.TERNARY, "lpm": MT.LPM}
        assert [(e, widths[e], kinds[k]) for e, k in keys] == \
            [(f.name, f.bitwidth, f.match_type) for f in t.match_fields], local
        acts_m = re.search(r"actions\s*=\s*\{([^}]*)\}", body)
        assert acts_m, f"table {local}: no actions list"
        acts = acts_m.group(1)
        listed = {}
        for item in filter(None, (x.strip() for x in acts.split(";"))):
            listed[item.split()[-1]] = item.startswith("@defaultonly")
        want = {action_local[r.id]: r.scope == p4info_pb2.ActionRef.DEFAULT_ONLY
                for r in t.action_refs}
        assert listed == want, local
        const = re.search(r"const\s+default_action\s*=\s*(\w+)\s*\(", body)
        if t.const_default_action_id:
            assert const and const.group(1) == action_local[t.const_default_action_id], local
        else:
            assert const is None, local
        size = re.search(r"\bsize\s*=\s*(\d+)\s*;", body)
        assert t.size == (int(size.group(1)) if size else 1024), local
        impl = re.search(r"implementation\s*=\s*(\w+)\s*;", body)
        if t.implementation_id:
            prof = {p.preamble.id: p for p in p4info.action_profiles}[t.implementation_id]
            assert impl and impl.group(1) == prof.preamble.name.removeprefix("Ingress.")
        else:
            assert impl is None

    pat = (r"@id\((0x[0-9a-fA-F]+)\)\s*@name\(\"\.Ingress\.(\w+)\"\)\s*counter\(32w(\d+),\s*"
           r"CounterType\.(\w+)\)\s*(\w+)\s*;")
    declared = counted(re.finditer(pat, p4src), len(COUNTERS), "counters in connector.p4")
    for c in of_kind(p4info, "counters"):
        local = c.preamble.name.removeprefix("Ingress.")
        found = [m for m in declared if m.group(2) == local]
        assert len(found) == 1, f"counter {local} not declared once in connector.p4"
        m = found[0]
        assert int(m.group(1), 16) == c.preamble.id
        assert int(m.group(3)) == c.size
        assert m.group(4) == "packets_and_bytes"

    for r in of_kind(p4info, "registers"):
        local = r.preamble.name.removeprefix("Ingress.")
        m = re.search(rf"@id\((0x[0-9a-fA-F]+)\)\s*{NAME(local)}register<bit<(\d+)>>"
                      rf"\((\w+)\)\s*{local}\s*;", p4src)
        assert m, f"register {local} not declared with an @id in connector.p4"
        assert int(m.group(1), 16) == r.preamble.id
        assert int(m.group(2)) == r.type_spec.bitstring.bit.bitwidth
        size = m.group(3)
        assert (consts[size] if size in consts else int(size)) == r.size

    for p in of_kind(p4info, "action_profiles"):
        local = p.preamble.name.removeprefix("Ingress.")
        m = re.search(rf"@id\((0x[0-9a-fA-F]+)\)\s*{NAME(local)}@max_group_size\((\d+)\)\s*"
                      rf"action_selector\(HashAlgorithm\.(\w+),\s*32w(\d+),\s*32w(\d+)\)\s*"
                      rf"{local}\s*;", p4src)
        assert m, f"action selector {local} not declared in connector.p4"
        assert int(m.group(1), 16) == p.preamble.id
        assert int(m.group(2)) == p.max_group_size
        assert int(m.group(4)) == p.size
        assert p.with_selector


def test_p4_sets_from_remote_only_when_decapsulating(p4src):
    apply_at = p4src.index("apply {", p4src.index("table l2_forward"))
    assigns = re.findall(r"meta\.from_remote\s*=\s*(\d+)\s*;", p4src)
    assert sorted(assigns) == ["0", "1"]
    reset = p4src.index("meta.from_remote = 0;")
    decap = p4src.index("meta.from_remote = 1;")
    assert apply_at < reset < p4src.index("sff_config.apply()")  # reset for every packet
    # set in the router-port branch, right where VXLAN-GPE is stripped
    branch = p4src[p4src.index("ingress_port == PORT_ROUTER", apply_at):decap]
    assert "hdr.gpe.setInvalid();" in branch and "nsh_in = true" not in branch
    # the flow-cache slot (and key) of a decapsulated packet differ from a local one's
    assert re.search(r"bit<32> slot = [^;]*meta\.from_remote[^;]*;", p4src)


def test_p4_source_uses_every_declared_object(p4src):
    """Every table is applied and every counter counts (else p4c drops or warns)."""
    tables = re.findall(r"\btable\s+(\w+)\s*\{", p4src)
    assert {f"Ingress.{t}" for t in counted(tables, len(TABLES), "tables in connector.p4")} \
        == set(TABLES)
    for t in tables:
        assert re.search(rf"\b{t}\.apply\(\)", p4src), t
    # the counter variables are not all named like their P4Runtime objects (end_of_chain_pkts)
    counters = re.findall(r"counter\([^)]*\)\s*(\w+)\s*;", p4src)
    for c in counted(counters, len(COUNTERS), "counters in connector.p4"):
        assert re.search(rf"\b{c}\.count\(", p4src), c
    registers = re.findall(r"register<[^;]*\)\s*(\w+)\s*;", p4src)
    assert {f"Ingress.{r}" for r in counted(registers, len(REGISTERS),
                                            "registers in connector.p4")} == REGISTERS
    for r in registers:
        assert re.search(rf"\b{r}\.read\(", p4src) and re.search(rf"\b{r}\.write\(", p4src), r


# --------------------------------------------------------------------------- p4c, if present


def _p4c() -> str | None:
    return shutil.which("p4c-bm2-ss") or shutil.which("p4c")


@pytest.mark.skipif(_p4c() is None, reason="p4c is not installed (it builds from source on a "
                    "developer machine, see DESIGN.md section 7); the regex tests above "
                    "cover the P4Info without it")
def test_p4c_generates_the_same_p4info(tmp_path, p4info):
    compiler = _p4c()
    out = tmp_path / "p4info.txt"
    cmd = [compiler, "--p4runtime-files", str(out), "-o", str(tmp_path / "connector.json"),
           str(CONNECTOR_P4)]
    if Path(compiler).name == "p4c":
        cmd[1:1] = ["--target", "bmv2", "--arch", "v1model"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    generated = text_format.Parse(out.read_text(), p4info_pb2.P4Info(),
                                  allow_unknown_field=True)
    assert p4info_fingerprint(generated) == p4info_fingerprint(p4info)
    for kind in ("tables", "actions", "action_profiles", "counters", "registers"):
        of_kind(p4info, kind)
        assert {o.preamble.name: o.preamble.alias for o in getattr(generated, kind)} == \
            {o.preamble.name: o.preamble.alias for o in getattr(p4info, kind)}, kind
