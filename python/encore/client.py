"""A small blocking gRPC client for an Encore server (grpcio, stubs shipped in encore._proto).

    from encore import Client
    with Client("127.0.0.1", 50051, admin_port=50052) as c:
        r = c.decide("cart", "c000042", order={"total_cents": 12900, "is_gift": True,
                     "items": [{"sku": "s1", "category": "electronics", "price_cents": 12900, "quantity": 1}]},
                     slots=2)
        c.report_outcome(r.decision_id, r.placements[0].offer_id, "accepted", revenue_cents=500)
        c.push_snapshot("model.snap", activate=True)

Encore serves two planes: `decide`, `report_outcome` and `health` go to the data plane
(`host:port`), the model methods to the admin plane (`admin_host:admin_port`, by default the same
host and port 50052, `encore serve --admin-port`); the admin channel is opened at its first use.

Every method returns the protobuf response message and raises `grpc.RpcError` on a non-OK status
(`e.code()`, `e.details()`).

Routing key: `decide` and `report_outcome` send the customer id as `x-encore-customer` metadata, so
a load balancer that hashes on it (deploy/haproxy/haproxy.cfg, `balance hdr(x-encore-customer)`)
sends every call about one customer to the same replica, the one that holds that customer's rule
counters (caps, declines). `report_outcome` takes the customer from `customer_id=` or, by default,
from the decisions this client made recently (the last `ROUTING_MEMORY` decision ids). The server
decides from the request body only; the header is for the load balancer.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Iterator, Mapping

import grpc

from ._proto.encore.v1 import decisions_pb2, decisions_pb2_grpc, models_pb2, models_pb2_grpc
from ._proto.grpc.health.v1 import health_pb2, health_pb2_grpc

OUTCOME_NAMES = {"shown": decisions_pb2.SHOWN, "accepted": decisions_pb2.ACCEPTED,
                 "declined": decisions_pb2.DECLINED, "ignored": decisions_pb2.IGNORED}
CHUNK_BYTES = 1 << 20  # the server accepts chunks of up to 4 MiB
ROUTING_HEADER = "x-encore-customer"
ROUTING_MEMORY = 65536  # decision id -> customer id pairs kept for report_outcome's routing key


class Client:
    def __init__(self, host: str = "127.0.0.1", port: int = 50051, *, admin_host: str | None = None,
                 admin_port: int = 50052, tls: bool = False, root_certificates: bytes | None = None,
                 timeout: float = 10.0, options: Iterable[tuple[str, Any]] = (), token: str | None = None,
                 metadata: Iterable[tuple[str, str]] = (), private_key: bytes | None = None,
                 certificate_chain: bytes | None = None) -> None:
        """`token` is sent as `authorization: Bearer <token>` (the admin plane's `admin.tokens`),
        `metadata` on every call too. With `tls`, `root_certificates` (PEM) verify the server
        (default: the system's trust store) and `private_key` + `certificate_chain` (PEM) are
        the client certificate for mTLS (`encore serve --client-ca`, config `admin.clients`)."""
        if (private_key is None) != (certificate_chain is None):
            raise ValueError("private_key and certificate_chain go together (the client certificate and its key)")
        if private_key is not None and not tls:
            raise ValueError("a client certificate needs tls=True")
        self._metadata = [*metadata] + ([("authorization", f"Bearer {token}")] if token else [])
        self._customers_by_decision: "OrderedDict[str, str]" = OrderedDict()
        self._opts = [("grpc.max_receive_message_length", 64 << 20), *options]
        self._tls, self._root_certificates = tls, root_certificates
        self._private_key, self._certificate_chain = private_key, certificate_chain
        self.target = f"{host}:{port}"
        self.admin_target = f"{admin_host or host}:{admin_port}"
        self.channel = self._open(self.target)
        self._admin_channel: grpc.Channel | None = None
        self._models_stub: models_pb2_grpc.ModelsStub | None = None
        self.timeout = timeout
        self._decisions = decisions_pb2_grpc.DecisionsStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def _open(self, target: str) -> grpc.Channel:
        if self._tls:
            creds = grpc.ssl_channel_credentials(root_certificates=self._root_certificates,
                                                 private_key=self._private_key,
                                                 certificate_chain=self._certificate_chain)
            return grpc.secure_channel(target, creds, options=self._opts)
        return grpc.insecure_channel(target, options=self._opts)

    @property
    def _md(self) -> list[tuple[str, str]] | None:
        return self._metadata or None

    def _routed(self, customer_id: str) -> list[tuple[str, str]] | None:
        """The metadata plus the routing key (none for an empty customer id, or one that is not
        printable ASCII, which HTTP/2 header values cannot carry as is: the balancer then spreads
        those calls by its fallback)."""
        if not customer_id or not (customer_id.isascii() and customer_id.isprintable()):
            return self._md
        return [*self._metadata, (ROUTING_HEADER, customer_id)]

    @property
    def admin_channel(self) -> grpc.Channel:
        """The channel to the admin plane (Models, Catalog, Customers), opened at first use."""
        if self._admin_channel is None:
            self._admin_channel = self._open(self.admin_target)
        return self._admin_channel

    @property
    def _models(self) -> models_pb2_grpc.ModelsStub:
        if self._models_stub is None:
            self._models_stub = models_pb2_grpc.ModelsStub(self.admin_channel)
        return self._models_stub

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        self.channel.close()
        if self._admin_channel is not None:
            self._admin_channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- Decisions --------------------------------------------------------------------------

    def decide(self, surface: str, customer_id: str = "", order: Mapping[str, Any] | None = None, *,
               slots: int = 1, candidates: Iterable[str] = (), features: Mapping[str, float] | None = None,
               request_id: str = "", timeout: float | None = None) -> decisions_pb2.DecideResponse:
        """`order` is a dict with the Order fields (total_cents, currency, items=[{sku, category,
        price_cents, quantity}], shipping_method, channel, device, country, is_gift, order_id)."""
        req = decisions_pb2.DecideRequest(surface=surface, customer_id=customer_id, slots=slots,
                                          candidate_offer_ids=list(candidates), request_id=request_id)
        if order:
            o = dict(order)
            items = o.pop("items", [])
            req.order.CopyFrom(decisions_pb2.Order(**o))
            for it in items:
                req.order.items.add(**it)
        for k, v in (features or {}).items():
            req.features[k] = float(v)
        response = self._decisions.Decide(req, timeout=timeout or self.timeout, metadata=self._routed(customer_id))
        if customer_id:
            memory = self._customers_by_decision
            memory[response.decision_id] = customer_id
            if len(memory) > ROUTING_MEMORY:
                memory.popitem(last=False)
        return response

    def report_outcome(self, decision_id: str, offer_id: str, outcome: str | int = "accepted",
                       revenue_cents: int = 0, timeout: float | None = None, *,
                       customer_id: str | None = None) -> decisions_pb2.OutcomeResponse:
        """`customer_id` is only the routing key (`x-encore-customer`); by default the customer of
        this client's own `decide` call that returned `decision_id`, if it is still remembered."""
        value = OUTCOME_NAMES[outcome.lower()] if isinstance(outcome, str) else int(outcome)
        req = decisions_pb2.OutcomeRequest(decision_id=decision_id, offer_id=offer_id, outcome=value,
                                           revenue_cents=int(revenue_cents))
        if customer_id is None:
            customer_id = self._customers_by_decision.get(decision_id, "")
        return self._decisions.ReportOutcome(req, timeout=timeout or self.timeout,
                                             metadata=self._routed(customer_id))

    # -- Models -----------------------------------------------------------------------------

    def push_snapshot(self, path_or_bytes: str | bytes, activate: bool = False,
                      timeout: float | None = 120.0) -> models_pb2.PushSnapshotResponse:
        if isinstance(path_or_bytes, (bytes, bytearray)):
            data = bytes(path_or_bytes)
        else:
            with open(path_or_bytes, "rb") as f:
                data = f.read()

        def chunks() -> Iterator[models_pb2.SnapshotChunk]:
            offset = 0
            while True:
                yield models_pb2.SnapshotChunk(data=data[offset:offset + CHUNK_BYTES], activate=activate)
                offset += CHUNK_BYTES
                if offset >= len(data):
                    break

        return self._models.PushSnapshot(chunks(), timeout=timeout, metadata=self._md)

    def list_models(self, timeout: float | None = None) -> models_pb2.ListModelsResponse:
        return self._models.List(models_pb2.ListModelsRequest(), timeout=timeout or self.timeout, metadata=self._md)

    def activate(self, version: str, force: bool = False, timeout: float | None = None) -> models_pb2.ModelInfo:
        return self._models.Activate(models_pb2.ActivateRequest(version=version, force=force),
                                     timeout=timeout or self.timeout, metadata=self._md)

    def rollback(self, timeout: float | None = None) -> models_pb2.ModelInfo:
        return self._models.Rollback(models_pb2.RollbackRequest(), timeout=timeout or self.timeout,
                                     metadata=self._md)

    def get_snapshot(self, version: str = "", timeout: float | None = None) -> tuple[str, bytes] | None:
        """(version, snapshot file bytes) of a loaded snapshot, by default the active one, fetched
        part by part (Models/GetSnapshot; re-encoded by the server without a signature) and checked
        against the SHA-256 the server sends. None when no snapshot is active (the server's policy
        is then uniform over the eligible offers)."""
        import hashlib

        data = bytearray()
        total, name, digest = None, version, ""
        while total is None or len(data) < total:
            try:
                part = self._models.GetSnapshot(models_pb2.GetSnapshotRequest(version=name, offset=len(data)),
                                                timeout=timeout or self.timeout, metadata=self._md)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND and not version and total is None:
                    return None
                raise
            if part.offset != len(data) or (total is not None and (part.total_bytes != total or part.version != name)):
                raise RuntimeError(f"GetSnapshot: the snapshot changed while it was fetched "
                                   f"({part.version} at {part.offset}, expected {name} at {len(data)})")
            if not part.data and len(data) < part.total_bytes:
                raise RuntimeError(f"GetSnapshot: empty part at offset {len(data)} of {part.total_bytes}")
            total, name, digest = part.total_bytes, part.version, part.sha256
            data += part.data
        if hashlib.sha256(data).hexdigest() != digest:
            raise RuntimeError(f"GetSnapshot: {name}: SHA-256 of the {len(data)} bytes received does not match")
        return name, bytes(data)

    # -- Health -----------------------------------------------------------------------------

    def health(self, service: str = "", timeout: float | None = None) -> str:
        """'SERVING', 'NOT_SERVING', ... (grpc.health.v1 Check)."""
        reply = self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout or self.timeout,
                                   metadata=self._md)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
