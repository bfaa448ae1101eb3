"""Traffic tools of the scenario runner: UDP flow generator, sink, report.

* :mod:`~scenarios.traffic.wire`: the 20-byte probe header (magic, flow id, seq, send time).
* :mod:`~scenarios.traffic.plan`: flow plans (explicit flows, Poisson/constant arrivals).
* :mod:`~scenarios.traffic.gen`: :class:`Generator`, many constant-rate flows, one process.
* :mod:`~scenarios.traffic.sink`: :class:`Sink`, per-flow loss/reordering/latency.
* :mod:`~scenarios.traffic.report`: sent (flow log) vs received (sink summary) per flow.
* ``python -m scenarios.traffic gen|sink|report``: the command-line programs.
"""

from scenarios.traffic.gen import Generator
from scenarios.traffic.plan import FlowPlan, FlowSpec, PlanError, load_plan, plan_from_mapping
from scenarios.traffic.sink import FlowStats, Sink

__all__ = ["FlowPlan", "FlowSpec", "FlowStats", "Generator", "PlanError", "Sink", "load_plan",
           "plan_from_mapping"]
