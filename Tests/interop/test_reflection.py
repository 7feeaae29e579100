"""gRPC server reflection (grpc.reflection.v1 and v1alpha) checked with grpcio-reflection, the
client Python's grpc tooling uses: list the services of each plane, describe Decide, then call
Decide through message classes built from nothing but the reflected descriptors."""
from __future__ import annotations

import queue
import threading

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2 as alpha
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

TIMEOUT = 10
REFLECTION = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]
DATA_SERVICES = sorted(["encore.v1.Decisions", "grpc.health.v1.Health"] + REFLECTION)
ADMIN_SERVICES = sorted(["encore.v1.Catalog", "encore.v1.Customers", "encore.v1.Models", "grpc.health.v1.Health"]
                        + REFLECTION)


def test_data_plane_lists_decisions_health_and_reflection_only(plain_server, channel_for):
    db = ProtoReflectionDescriptorDatabase(channel_for(plain_server))
    assert sorted(db.get_services()) == DATA_SERVICES


def test_admin_plane_lists_the_admin_services(plain_server, diag_server, channel_for):
    db = ProtoReflectionDescriptorDatabase(channel_for(plain_server, admin=True))
    assert sorted(db.get_services()) == ADMIN_SERVICES
    # With --diagnostics the admin plane serves (and lists) Diagnostics too.
    db = ProtoReflectionDescriptorDatabase(channel_for(diag_server, admin=True))
    assert sorted(db.get_services()) == sorted(ADMIN_SERVICES + ["encore.v1.Diagnostics"])


def test_describe_decide_and_call_it_through_the_reflected_descriptor(plain_server, channel_for, stubs):
    channel = channel_for(plain_server)
    db = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(db)
    service = pool.FindServiceByName("encore.v1.Decisions")
    decide = service.methods_by_name["Decide"]
    assert decide.input_type.full_name == "encore.v1.DecideRequest"
    assert decide.output_type.full_name == "encore.v1.DecideResponse"
    assert not decide.client_streaming and not decide.server_streaming
    fields = {f.name: f.number for f in decide.input_type.fields}
    assert {"surface": 1, "customer_id": 2, "slots": 4}.items() <= fields.items(), fields
    # The reflected file is the compiled-in one: the descriptor the stubs protoc makes from
    # Protocol/encore/v1/decisions.proto (which leave out the json_name values reflection serves).
    reflected = db.FindFileByName("encore/v1/decisions.proto")
    compiled = descriptor_pb2.FileDescriptorProto.FromString(stubs.decisions_pb2.DESCRIPTOR.serialized_pb)
    assert reflected.message_type[0].field[1].json_name == "customerId"
    assert _without_json_names(reflected) == _without_json_names(compiled)

    request_class = message_factory.GetMessageClass(decide.input_type)
    response_class = message_factory.GetMessageClass(decide.output_type)
    call = channel.unary_unary("/encore.v1.Decisions/Decide", request_serializer=request_class.SerializeToString,
                               response_deserializer=response_class.FromString)
    response = call(request_class(surface="cart", customer_id="c-42", slots=1), timeout=TIMEOUT)
    assert response.decision_id and response.model_version, response
    assert len(response.placements) == (0 if response.holdout else 1)
    if response.placements:
        assert response.placements[0].offer_id
    # A field the server checks, through the reflected class too: an unknown surface is refused.
    with pytest.raises(grpc.RpcError) as e:
        call(request_class(surface="no-such-surface", customer_id="c-42", slots=1), timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _without_json_names(proto):
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(proto)
    pending = list(copy.message_type)
    while pending:
        message = pending.pop()
        for field in message.field:
            field.ClearField("json_name")
        pending.extend(message.nested_type)
    return copy


def test_admin_descriptors_are_not_served_on_the_data_plane(plain_server, channel_for):
    data = ProtoReflectionDescriptorDatabase(channel_for(plain_server))
    for find, key in ((data.FindFileContainingSymbol, "encore.v1.Models"),
                      (data.FindFileByName, "encore/v1/models.proto"),
                      (data.FindFileContainingSymbol, "encore.v1.PushSnapshotResponse")):
        with pytest.raises(KeyError):
            find(key)
    admin = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel_for(plain_server, admin=True)))
    push = admin.FindMethodByName("encore.v1.Models.PushSnapshot")
    assert push.client_streaming and push.input_type.full_name == "encore.v1.SnapshotChunk"
    watch = admin.FindMethodByName("grpc.health.v1.Health.Watch")
    assert watch.server_streaming and not watch.client_streaming


def _v1_classes():
    """grpc.reflection.v1 message classes: grpcio-reflection's v1alpha file renamed (the two
    versions share every message), in a private pool, so this client shares nothing with ours."""
    proto = descriptor_pb2.FileDescriptorProto.FromString(alpha.DESCRIPTOR.serialized_pb)
    proto.name = "test_reflection_v1/reflection.proto"
    proto.package = "grpc.reflection.v1"
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")
    del proto.service[:]
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    get = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"grpc.reflection.v1.{name}"))
    return get("ServerReflectionRequest"), get("ServerReflectionResponse")


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_one_stream_answers_each_request_before_the_next_is_sent(plain_server, channel_for, version):
    """ServerReflectionInfo is bidirectional: every request is answered while the stream stays
    open (the next request is sent only after the answer arrived), then OK on half-close."""
    Request, Response = _v1_classes() if version == "v1" else (alpha.ServerReflectionRequest,
                                                                alpha.ServerReflectionResponse)
    channel = channel_for(plain_server)
    call_method = channel.stream_stream(f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                                        request_serializer=Request.SerializeToString,
                                        response_deserializer=Response.FromString)
    outbox: queue.Queue = queue.Queue()
    requests = iter(outbox.get, None)
    responses = call_method(requests, timeout=TIMEOUT)

    def ask(**kwargs):
        outbox.put(Request(host="encore", **kwargs))
        return next(responses)

    listed = ask(list_services="")
    assert listed.valid_host == "encore" and listed.original_request.list_services == ""
    assert sorted(s.name for s in listed.list_services_response.service) == DATA_SERVICES
    by_symbol = ask(file_containing_symbol="encore.v1.Decisions.Decide")
    names = [descriptor_pb2.FileDescriptorProto.FromString(b).name
             for b in by_symbol.file_descriptor_response.file_descriptor_proto]
    assert names == ["encore/v1/decisions.proto"], names
    by_name = ask(file_by_filename="grpc/health/v1/health.proto")
    health = descriptor_pb2.FileDescriptorProto.FromString(by_name.file_descriptor_response.file_descriptor_proto[0])
    assert [m.name for m in health.service[0].method] == ["Check", "Watch"]
    own = ask(file_containing_symbol=f"grpc.reflection.{version}.ServerReflection")
    assert own.file_descriptor_response.file_descriptor_proto, own
    missing = ask(file_containing_symbol="encore.v1.NoSuchThing")
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "encore.v1.NoSuchThing" in missing.error_response.error_message
    numbers = ask(all_extension_numbers_of_type="encore.v1.DecideRequest")
    assert numbers.all_extension_numbers_response.base_type_name == "encore.v1.DecideRequest"
    assert list(numbers.all_extension_numbers_response.extension_number) == []
    empty = ask()
    assert empty.error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    outbox.put(None)  # half-close: the server ends the stream with OK
    assert list(responses) == []
    assert responses.code() == grpc.StatusCode.OK


def test_undecodable_request_ends_the_stream_with_invalid_argument(plain_server, channel_for):
    channel = channel_for(plain_server)
    call_method = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                        request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        list(call_method(iter([b"\x0a\x05ab"]), timeout=TIMEOUT))  # a length past the end
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_admin_reflection_needs_the_read_role_when_tokens_are_configured(server_factory, tmp_path, channel_for):
    import hashlib
    import json
    import secrets

    reader, pusher = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    config = tmp_path / "encore.json"
    config.write_text(json.dumps({"admin": {"tokens": [
        {"name": "reader", "sha256": hashlib.sha256(reader.encode()).hexdigest(), "roles": ["read"]},
        {"name": "pusher", "sha256": hashlib.sha256(pusher.encode()).hexdigest(), "roles": ["models.push"]},
    ]}}))
    srv = server_factory("--config", str(config), "--threads", "1")
    channel = channel_for(srv, admin=True)
    method = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                   request_serializer=alpha.ServerReflectionRequest.SerializeToString,
                                   response_deserializer=alpha.ServerReflectionResponse.FromString)
    request = alpha.ServerReflectionRequest(list_services="")
    for token, code in ((None, grpc.StatusCode.UNAUTHENTICATED), (pusher, grpc.StatusCode.PERMISSION_DENIED)):
        metadata = [("authorization", f"Bearer {token}")] if token else None
        with pytest.raises(grpc.RpcError) as e:
            list(method(iter([request]), timeout=TIMEOUT, metadata=metadata))
        assert e.value.code() == code, e.value.details()
        assert "'read'" in e.value.details()
    answers = list(method(iter([request]), timeout=TIMEOUT, metadata=[("authorization", f"Bearer {reader}")]))
    assert sorted(s.name for s in answers[0].list_services_response.service) == ADMIN_SERVICES
    # The data plane's reflection needs no token.
    assert sorted(ProtoReflectionDescriptorDatabase(channel_for(srv)).get_services()) == DATA_SERVICES
