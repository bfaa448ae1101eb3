"""The gRPC P4Runtime service: Write, Read, Set/GetForwardingPipelineConfig, Capabilities
and StreamChannel, on top of a :class:`Pipeline` and an :class:`Arbiter`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import grpc
from google.rpc import code_pb2, status_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from connector_p4.p4rt_server.arbiter import END, Arbiter, Stream, election_of
from connector_p4.p4rt_server.errors import P4RTError
from connector_p4.p4rt_server.pipeline import Pipeline
from connector_p4.p4rt_server.schema import API_VERSION, p4info_cookie, p4info_fingerprint

log = logging.getLogger("connector_p4.p4rt_server")

READ_CHUNK = 512
SET_CONFIG = p4runtime_pb2.SetForwardingPipelineConfigRequest
GET_CONFIG = p4runtime_pb2.GetForwardingPipelineConfigRequest


def status_details(code: int, message: str, errors: Sequence[P4RTError | None]) -> bytes:
    """``grpc-status-details-bin`` of a failed batch: one p4.v1.Error per update."""
    st = status_pb2.Status(code=code, message=message)
    for e in errors:
        err = e.to_p4_error() if e is not None else p4runtime_pb2.Error(
            canonical_code=code_pb2.OK)
        st.details.add().Pack(err)
    return bytes(st.SerializeToString())


def _stream_error(code: int, message: str, req: Any) -> Any:
    err = p4runtime_pb2.StreamError(canonical_code=code, message=message)
    kind = req.WhichOneof("update")
    if kind == "packet":
        err.packet_out.packet_out.CopyFrom(req.packet)
    elif kind == "digest_ack":
        err.digest_list_ack.digest_list_ack.CopyFrom(req.digest_ack)
    else:
        err.other.SetInParent()
    return p4runtime_pb2.StreamMessageResponse(error=err)


class P4RuntimeServicer(p4runtime_pb2_grpc.P4RuntimeServicer):
    def __init__(self, pipeline: Pipeline, arbiter: Arbiter, cookie: int | None = None):
        self.pipeline = pipeline
        self.arbiter = arbiter
        self.device_config = b""
        self.cookie = cookie if cookie is not None else p4info_cookie(pipeline.p4info)
        self.saved: Any = None  # p4runtime_pb2.ForwardingPipelineConfig of VERIFY_AND_SAVE
        self.fingerprint = p4info_fingerprint(pipeline.p4info)
        self.config_lock = threading.Lock()

    @staticmethod
    def _abort(context: grpc.ServicerContext, e: P4RTError) -> NoReturn:
        context.abort(e.grpc_code, e.message)
        raise AssertionError("context.abort returned")  # it raises

    def _fail_batch(self, context: grpc.ServicerContext, errors: Sequence[P4RTError | None],
                    what: str) -> None:
        bad = [(i, e) for i, e in enumerate(errors) if e is not None]
        i, first = bad[0]
        msg = (f"{what}: {len(bad)} of {len(errors)} failed; first at index {i}: "
               f"{code_pb2.Code.Name(first.code)}: {first.message}")
        context.set_trailing_metadata(
            (("grpc-status-details-bin", status_details(code_pb2.UNKNOWN, msg, errors)),))
        context.set_code(grpc.StatusCode.UNKNOWN)
        context.set_details(msg)

    def _check_device(self, context: grpc.ServicerContext, device_id: int) -> None:
        if device_id != self.arbiter.device_id:
            self._abort(context, P4RTError(code_pb2.NOT_FOUND,
                                           f"unknown device id {device_id}"))

    def Write(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            self.arbiter.check_writer(request.device_id, request.role, election_of(request))
            if request.atomicity != p4runtime_pb2.WriteRequest.CONTINUE_ON_ERROR:
                raise P4RTError(code_pb2.UNIMPLEMENTED,
                                "only CONTINUE_ON_ERROR batches are supported")
        except P4RTError as e:
            self._abort(context, e)
        errors = self.pipeline.write_batch(request.updates)
        if any(e is not None for e in errors):
            self._fail_batch(context, errors, "write")
        return p4runtime_pb2.WriteResponse()

    def Read(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        self._check_device(context, request.device_id)
        if request.role:
            self._abort(context, P4RTError(code_pb2.NOT_FOUND, f"unknown role {request.role!r}"))
        entities, errors = self.pipeline.read_batch(request.entities)
        for i in range(0, len(entities), READ_CHUNK):
            yield p4runtime_pb2.ReadResponse(entities=entities[i:i + READ_CHUNK])
        if any(e is not None for e in errors):
            self._fail_batch(context, errors, "read")

    def SetForwardingPipelineConfig(self, request: Any,  # noqa: N802 (gRPC names)
                                    context: grpc.ServicerContext) -> Any:
        try:
            self.arbiter.check_writer(request.device_id, request.role, election_of(request))
            with self.config_lock:
                self._set_config(request)
        except P4RTError as e:
            self._abort(context, e)
        return p4runtime_pb2.SetForwardingPipelineConfigResponse()

    def _set_config(self, request: Any) -> None:
        action = request.action
        has_config = request.HasField("config")
        if action == SET_CONFIG.COMMIT:
            if has_config:
                raise P4RTError(code_pb2.INVALID_ARGUMENT,
                                "COMMIT takes no config (it commits the saved one)")
            if self.saved is None:
                raise P4RTError(code_pb2.NOT_FOUND, "no saved config to commit")
            self._adopt(self.saved)
            self.saved = None
            return
        if action not in (SET_CONFIG.VERIFY, SET_CONFIG.VERIFY_AND_SAVE,
                          SET_CONFIG.VERIFY_AND_COMMIT, SET_CONFIG.RECONCILE_AND_COMMIT):
            raise P4RTError(code_pb2.INVALID_ARGUMENT, "unspecified config action")
        if not has_config or not request.config.HasField("p4info"):
            raise P4RTError(code_pb2.INVALID_ARGUMENT, "a config with a P4Info is required")
        if p4info_fingerprint(request.config.p4info) != self.fingerprint:
            raise P4RTError(code_pb2.INVALID_ARGUMENT,
                            "this P4Info is not the connector pipeline "
                            "(connector.p4info.txtpb); the pipeline is fixed")
        if action == SET_CONFIG.VERIFY_AND_SAVE:
            self.saved = p4runtime_pb2.ForwardingPipelineConfig()
            self.saved.CopyFrom(request.config)
        elif action == SET_CONFIG.VERIFY_AND_COMMIT:
            self.pipeline.reset()
            self._adopt(request.config)
        elif action == SET_CONFIG.RECONCILE_AND_COMMIT:
            self._adopt(request.config)

    def _adopt(self, config: Any) -> None:
        self.device_config = config.p4_device_config
        if config.HasField("cookie"):
            self.cookie = config.cookie.cookie
        else:
            self.cookie = p4info_cookie(self.pipeline.p4info)
        log.info("pipeline config committed (cookie %#x)", self.cookie)

    def GetForwardingPipelineConfig(self, request: Any,  # noqa: N802 (gRPC names)
                                    context: grpc.ServicerContext) -> Any:
        self._check_device(context, request.device_id)
        cfg = p4runtime_pb2.ForwardingPipelineConfig()
        cfg.cookie.cookie = self.cookie
        if request.response_type in (GET_CONFIG.ALL, GET_CONFIG.P4INFO_AND_COOKIE):
            cfg.p4info.CopyFrom(self.pipeline.p4info)
        if request.response_type in (GET_CONFIG.ALL, GET_CONFIG.DEVICE_CONFIG_AND_COOKIE):
            cfg.p4_device_config = self.device_config
        return p4runtime_pb2.GetForwardingPipelineConfigResponse(config=cfg)

    def Capabilities(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return p4runtime_pb2.CapabilitiesResponse(p4runtime_api_version=API_VERSION)

    def StreamChannel(self, request_iterator: Iterator[Any],  # noqa: N802 (gRPC names)
                      context: grpc.ServicerContext) -> Iterator[Any]:
        stream = Stream(context.peer())

        def reader() -> None:
            try:
                for req in request_iterator:
                    kind = req.WhichOneof("update")
                    if kind == "arbitration":
                        try:
                            self.arbiter.handle(stream, req.arbitration)
                        except P4RTError as e:
                            stream.queue.put(e)
                            return
                    elif not stream.arbitrated:
                        stream.queue.put(_stream_error(
                            code_pb2.FAILED_PRECONDITION,
                            "send a MasterArbitrationUpdate first", req))
                    else:
                        stream.queue.put(_stream_error(
                            code_pb2.UNIMPLEMENTED,
                            f"{kind} is not supported (no packet I/O or digests)", req))
            except Exception as e:  # the client went away (cancelled RPC)
                log.debug("stream %s reader ended: %s", stream.peer, e)
            finally:
                stream.queue.put(END)

        context.add_callback(lambda: stream.queue.put(END))
        threading.Thread(target=reader, name="p4rt-stream", daemon=True).start()
        try:
            while True:
                item = stream.queue.get()
                if item is END:
                    break
                if isinstance(item, P4RTError):
                    self._abort(context, item)
                yield item
        finally:
            self.arbiter.remove(stream)
