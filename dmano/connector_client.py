"""Writers that put the D-MANO's desired state into a connector.

- :class:`DryRunConnector` logs every write and remembers the state (used when no
  connector runs, e.g. a D-MANO on a router with no data plane yet, and in tests);
- :class:`P4RuntimeConnector` (``dmano.p4rt_client``) writes through P4Runtime.

Both take the ordered :class:`~dmano.connector_state.Op` list of
:func:`~dmano.connector_state.diff` and report what the connector holds with
:meth:`read_state`, so a restarted D-MANO resynchronises instead of rewriting.
"""

from __future__ import annotations

import logging
from typing import Protocol

from dmano.config import ConnectorConf
from dmano.connector_state import DesiredState, Op, apply_ops

log = logging.getLogger(__name__)


class ConnectorWriter(Protocol):
    kind: str
    writes: int
    write_bytes: int

    def read_state(self) -> DesiredState: ...

    def write(self, ops: list[Op]) -> None: ...

    def close(self) -> None: ...


class DryRunConnector:
    kind = "dry-run"

    def __init__(self) -> None:
        self.state = DesiredState()
        self.writes = 0
        self.write_bytes = 0  # nothing goes on a wire

    def read_state(self) -> DesiredState:
        return self.state

    def write(self, ops: list[Op]) -> None:
        for op in ops:
            log.info("connector (dry run): %s", op)
        self.state = apply_ops(self.state, ops)
        self.writes += len(ops)

    def close(self) -> None:
        pass


def make_writer(conf: ConnectorConf) -> ConnectorWriter:
    if conf.kind == "dry-run":
        return DryRunConnector()
    from dmano.p4rt_client import P4RuntimeConnector

    return P4RuntimeConnector(conf)
