"""Watching the D-MANOs' WCMP weights during a run: every change, with its time.

:class:`WeightWatcher` polls each node's status file (``<run folder>/r<node>/dmano.json``,
written by :meth:`dmano.daemon.Daemon.write_status` after every recompute and every
period; in central mode the orchestrator's per-node file of the same form, written after
each write of that node's connector) every ``poll_s`` of wall time; a ``stat`` first, so
an unchanged file costs one system call. When a file changed, the weights of its
``services[].candidates[]`` are
compared with the last ones seen and every (service, instance) whose weight differs is
written to ``weight_changes.csv`` (see :mod:`scenarios.outputs`), with weight 0 for an
instance that is no longer a candidate. The time of a row is the status file's own
``updated`` field (``time.time()`` in the D-MANO, taken right after it wrote its
connector), turned into scenario time, so it does not depend on the poll period; only
two changes within one poll period collapse into the later one.

:func:`weight_changes` is the comparison, a pure function (unit-tested).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from scenarios.outputs import CsvWriter

log = logging.getLogger(__name__)

POLL_S = 0.025  # wall clock

Weights = dict[tuple[str, str], int]  # (service, instance) -> weight


def status_weights(status: Mapping[str, Any], names: Mapping[int, str]) -> Weights:
    """(service name, instance) -> weight from a D-MANO status (``names``: id -> name)."""
    out: Weights = {}
    for svc in status.get("services", []):
        sid = svc.get("service_id")
        service = names.get(sid, str(sid))
        for c in svc.get("candidates", []):
            name = c.get("name") or f"{c.get('adv_router')}#{c.get('instance_id')}"
            out[(service, str(name))] = int(c.get("weight", 0))
    return out


def weight_changes(old: Weights | None, new: Weights) -> list[tuple[str, str, int]]:
    """(service, instance, weight) for every entry of ``new`` that differs from ``old``
    and every entry of ``old`` (weight > 0) absent from ``new`` (weight 0); all of
    ``new`` when ``old`` is None (the first look)."""
    if old is None:
        return sorted((s, i, w) for (s, i), w in new.items())
    out = [(s, i, w) for (s, i), w in new.items() if old.get((s, i)) != w]
    out += [(s, i, 0) for (s, i), w in old.items() if (s, i) not in new and w > 0]
    return sorted(out)


class WeightWatcher:
    """A thread writing ``weight_changes.csv`` while a run plays (see the module doc).

    ``paths``: node -> status file; ``to_scenario``: unix time -> scenario time."""

    def __init__(self, paths: Mapping[str, Path], names: Mapping[int, str], out: Path,
                 to_scenario: Callable[[float], float], poll_s: float = POLL_S) -> None:
        self.paths = dict(paths)
        self.names = dict(names)
        self.to_scenario = to_scenario
        self.poll_s = poll_s
        self.writer = CsvWriter(out)
        self.rows = 0
        self._seen: dict[str, tuple[int, int]] = {}  # node -> (mtime_ns, size)
        self._weights: dict[str, Weights] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="weight-watcher",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=5)
        self.poll_once()  # the last state
        self.writer.close()
        log.info("weight watcher: %d weight change(s) recorded", self.rows)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # never let the measurement kill the run
                log.exception("weight watcher: poll failed")
            self._stop.wait(self.poll_s)

    def poll_once(self) -> int:
        """Look at every status file once; return the rows written."""
        written = 0
        for node, path in sorted(self.paths.items()):
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_mtime_ns, st.st_size)
            if self._seen.get(node) == key:
                continue
            try:
                status = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being replaced: next poll
            self._seen[node] = key
            written += self._record(node, status)
        return written

    def _record(self, node: str, status: Mapping[str, Any]) -> int:
        new = status_weights(status, self.names)
        changes = weight_changes(self._weights.get(node), new)
        self._weights[node] = new
        if not changes:
            return 0
        updated = status.get("updated")
        t = self.to_scenario(float(updated) if isinstance(updated, int | float)
                             else time.time())
        for service, instance, weight in changes:
            self.writer.row(t_s=round(t, 6), node=node, service=service, instance=instance,
                            weight=weight)
        self.rows += len(changes)
        return len(changes)


__all__ = ["POLL_S", "WeightWatcher", "status_weights", "weight_changes"]
