"""Message classes and the Curation stub, built at run time from the committed descriptor set.

Protobuf's Python code generators target one runtime each: the protoc in Grpc.Tools writes modules
for a newer runtime than Debian's python3-protobuf 4.21, and Debian's python3-grpc-tools cannot parse
proto3 ``optional``. A descriptor set (``scripts/generate.sh``) is runtime-neutral: any protoc writes
it and every protobuf runtime since 3.x builds classes from it, so that is what this module loads.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

DESCRIPTOR_SET = os.path.join(os.path.dirname(__file__), "descriptors", "jestmesh_v1.binpb")
PACKAGE = "jestmesh.v1"


def _load(path: str = DESCRIPTOR_SET):
    with open(path, "rb") as f:
        files = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    get_class = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22
    factory = None if get_class else message_factory.MessageFactory(pool)
    messages = {}
    enums = {}
    for file in files.file:
        if file.package != PACKAGE:
            continue
        for message in file.message_type:
            desc = pool.FindMessageTypeByName(f"{PACKAGE}.{message.name}")
            messages[message.name] = get_class(desc) if get_class else factory.GetPrototype(desc)
        for enum in file.enum_type:
            desc = pool.FindEnumTypeByName(f"{PACKAGE}.{enum.name}")
            enums[enum.name] = {v.name: v.number for v in desc.values}
    return pool, messages, enums


_pool, _messages, _enums = _load()

#: The jestmesh.v1 message classes by name (pb.CurateRequest, pb.Tensor, ...).
pb = SimpleNamespace(**_messages)
#: The jestmesh.v1 enums as {value name: number} by enum name (enums["Policy"]["POLICY_UNIFORM"]).
enums = _enums


def service_methods(service: str = "Curation"):
    """{method name: (path, request class, response class, client streaming, server streaming)} of a service."""
    desc = _pool.FindServiceByName(f"{PACKAGE}.{service}")
    out = {}
    for method in desc.methods:
        out[method.name] = (
            f"/{desc.full_name}/{method.name}",
            _messages[method.input_type.name],
            _messages[method.output_type.name],
            method.client_streaming,
            method.server_streaming,
        )
    return out


def stub_callable(channel, service: str, method: str):
    """A grpc multi-callable for one method of the descriptor's service (the hand-written stub)."""
    path, request, response, client_streaming, server_streaming = service_methods(service)[method]
    kind = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(client_streaming, server_streaming)]
    return kind(path, request_serializer=request.SerializeToString, response_deserializer=response.FromString)
