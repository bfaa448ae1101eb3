"""The server's lifecycle: a gRPC server on a unix socket and/or TCP, started and stopped
around one pipeline, arbiter and servicer."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from p4.v1 import p4runtime_pb2_grpc

from connector_p4.p4rt_server.arbiter import Arbiter
from connector_p4.p4rt_server.pipeline import Pipeline
from connector_p4.p4rt_server.restore import TargetState
from connector_p4.p4rt_server.schema import DEFAULT_DEVICE_ID, load_p4info
from connector_p4.p4rt_server.servicer import P4RuntimeServicer
from connector_p4.target import ConnectorConfig, Target

log = logging.getLogger("connector_p4.p4rt_server")

SUN_PATH_MAX = 107  # bytes of a unix socket path, without the NUL


class P4RuntimeServer:
    """A P4Runtime server for one connector, listening on a unix socket and/or TCP."""

    def __init__(self, target: Target, *, socket_path: str | os.PathLike[str] | None = None,
                 grpc_addr: str | None = None, device_id: int = DEFAULT_DEVICE_ID,
                 p4info: Any = None, arbitration: str = "live",
                 initial_config: ConnectorConfig | None = None,
                 restore: TargetState | None = None, max_workers: int = 32):
        if socket_path is None and grpc_addr is None:
            raise ValueError("give a unix socket path and/or a host:port")
        self.target = target
        self.socket_path = Path(socket_path) if socket_path is not None else None
        self.grpc_addr = grpc_addr
        self.port: int | None = None
        self.pipeline = Pipeline(target, p4info if p4info is not None else load_p4info(),
                                 initial_config, restore)
        self.arbiter = Arbiter(device_id, arbitration)
        self.servicer = P4RuntimeServicer(self.pipeline, self.arbiter)
        self._server = grpc.server(futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="p4rt"))
        p4runtime_pb2_grpc.add_P4RuntimeServicer_to_server(self.servicer, self._server)
        self._stopped = threading.Event()

    @property
    def addresses(self) -> list[str]:
        out = []
        if self.socket_path is not None:
            out.append(f"unix:{self.socket_path}")
        if self.grpc_addr is not None:
            host = self.grpc_addr.rsplit(":", 1)[0]
            out.append(f"{host}:{self.port}")
        return out

    def _prepare_socket(self, path: Path) -> Path:
        """An absolute path for the socket; a stale socket there is removed."""
        path = path.absolute()
        if len(os.fsencode(path)) > SUN_PATH_MAX:
            raise ValueError(f"unix socket path too long for sun_path: {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise FileExistsError(f"{path} exists and is not a socket")
            path.unlink()
        return path

    def start(self) -> P4RuntimeServer:
        if self.socket_path is not None:
            self.socket_path = self._prepare_socket(self.socket_path)
            self._server.add_insecure_port(f"unix:{self.socket_path}")
        if self.grpc_addr is not None:
            self.port = self._server.add_insecure_port(self.grpc_addr)
            if not self.port:
                raise OSError(f"cannot listen on {self.grpc_addr}")
        self._server.start()
        if self.socket_path is not None:
            os.chmod(self.socket_path, 0o660)
        log.info("P4Runtime server for device %d on %s", self.arbiter.device_id,
                 ", ".join(self.addresses))
        return self

    def stop(self, grace: float | None = 0.5) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._server.stop(grace).wait()
        if self.socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    def wait(self) -> None:
        self._server.wait_for_termination()
