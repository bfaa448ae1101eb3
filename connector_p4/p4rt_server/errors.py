"""P4Runtime errors (google.rpc codes) and the checked decoding of P4Runtime byte strings."""

from __future__ import annotations

import grpc
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2

_GRPC_BY_CODE = {sc.value[0]: sc for sc in grpc.StatusCode}


class P4RTError(Exception):
    """A P4Runtime error: ``code`` is a google.rpc code (int)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return _GRPC_BY_CODE.get(self.code, grpc.StatusCode.UNKNOWN)

    def to_p4_error(self) -> p4runtime_pb2.Error:
        return p4runtime_pb2.Error(canonical_code=self.code, message=self.message)


def code_from_name(name: str) -> int:
    """google.rpc code of a gRPC status name (``TargetError.code``); UNKNOWN if none."""
    try:
        return int(code_pb2.Code.Value(name))
    except ValueError:
        return int(code_pb2.UNKNOWN)


def decode_value(value: bytes, bitwidth: int, what: str) -> int:
    """P4Runtime byte string -> int (leading zero bytes accepted); empty or wider than
    ``bitwidth``: OUT_OF_RANGE."""
    if len(value) == 0:
        raise P4RTError(code_pb2.OUT_OF_RANGE, f"{what}: empty byte string")
    v = int.from_bytes(value, "big")
    if v >> bitwidth:
        raise P4RTError(code_pb2.OUT_OF_RANGE,
                        f"{what}: value 0x{v:x} does not fit in {bitwidth} bits")
    return v
