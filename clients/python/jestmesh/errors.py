"""Exceptions of the client: every one carries a gRPC status code and a message naming the problem."""

from __future__ import annotations

import grpc


class JestMeshError(Exception):
    """A call to the Selection service failed, or the client refused to send something wrong.

    ``code`` is the ``grpc.StatusCode`` (the service's, or the one the service would have answered
    for a problem the client caught first) and ``details`` the service's message (or the client's).
    """

    def __init__(self, code: grpc.StatusCode, details: str, *, local: bool = False):
        self.code = code
        self.details = details
        #: True when the client raised it before sending (the service never saw the request).
        self.local = local
        super().__init__(f"{code.name}: {details}")


class ScoreError(JestMeshError, ValueError):
    """The caller's ``score`` function returned something the service would refuse (shape, dtype, NaN, norms)."""

    def __init__(self, details: str):
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, details, local=True)


class ProtocolError(JestMeshError):
    """The service broke the protocol's promise (a gap or a repeat in the batch sequence, a foreign session)."""

    def __init__(self, details: str):
        super().__init__(grpc.StatusCode.INTERNAL, details, local=True)


def from_rpc_error(error: grpc.RpcError) -> JestMeshError:
    """The JestMeshError for a grpc.RpcError raised by a call."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return JestMeshError(code or grpc.StatusCode.UNKNOWN, details or "")
