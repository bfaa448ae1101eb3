"""Join the generator's flow log with the sink's summary: sent vs received per flow.

The sink alone cannot see packets lost after a flow's last received one (tail loss); the
generator knows how many it sent. Flows are matched on (flow id, source port), which the
sink sees unless a NAT rewrites the port; then on flow id alone when that is unambiguous.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def load_flow_log(path: str | Path) -> list[dict[str, Any]]:
    """The generator's JSON-lines flow log (a truncated last line is ignored)."""
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def join(gen_flows: Iterable[dict[str, Any]], sink_flows: Iterable[dict[str, Any]]
         ) -> list[dict[str, Any]]:
    """One row per generated flow: sent, received (unique), lost = sent - received, ..."""
    by_key: dict[tuple[int, int], dict[str, Any]] = {}
    by_id: dict[int, list[dict[str, Any]]] = {}
    for f in sink_flows:
        by_key[(f["flow_id"], f["src_port"])] = f
        by_id.setdefault(f["flow_id"], []).append(f)
    rows = []
    for g in gen_flows:
        s = by_key.get((g["flow_id"], g["src_port"]))
        if s is None and len(by_id.get(g["flow_id"], [])) == 1:
            s = by_id[g["flow_id"]][0]
        sent = g["packets_sent"]
        got = s["unique"] if s else 0
        lat = s["latency_us"] if s else {}
        rows.append({
            "flow_id": g["flow_id"], "src_port": g["src_port"], "dst_port": g["dst_port"],
            "status": g["status"], "sent": sent, "received": got, "lost": sent - got,
            "loss_ratio": round((sent - got) / sent, 6) if sent else 0.0,
            "duplicates": s["duplicates"] if s else 0, "reordered": s["reordered"] if s else 0,
            "lat_p50_us": lat.get("p50"), "lat_p99_us": lat.get("p99"),
            "lat_max_us": lat.get("max"),
        })
    return rows


def format_table(rows: list[dict[str, Any]], *, limit: int | None = 50) -> str:
    head = (f"{'flow':>8} {'sport':>6} {'status':>8} {'sent':>8} {'recv':>8} {'lost':>6} "
            f"{'dup':>5} {'reord':>5} {'p50 us':>9} {'p99 us':>9}")
    lines = [head, "-" * len(head)]

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}"

    shown = rows if limit is None else rows[:limit]
    for r in shown:
        lines.append(f"{r['flow_id']:>8} {r['src_port'] or '-':>6} {r['status']:>8} "
                     f"{r['sent']:>8} {r['received']:>8} {r['lost']:>6} {r['duplicates']:>5} "
                     f"{r['reordered']:>5} {num(r['lat_p50_us']):>9} {num(r['lat_p99_us']):>9}")
    if len(shown) < len(rows):
        lines.append(f"... {len(rows) - len(shown)} more flows")
    sent = sum(r["sent"] for r in rows)
    got = sum(r["received"] for r in rows)
    lines.append(f"total: {len(rows)} flows, {sent} sent, {got} received, {sent - got} lost "
                 f"({(sent - got) / sent * 100 if sent else 0:.3f} %), "
                 f"{sum(1 for r in rows if r['lost'])} flows with loss")
    return "\n".join(lines)
