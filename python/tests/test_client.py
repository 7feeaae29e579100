"""encore.Client against an in-process fake server, and (when the binary exists) the real server:
push/list/activate/rollback/health, and the Python policy math against the server's own decisions."""
import math
import os
import tempfile
from concurrent import futures

import grpc
import numpy as np
import pytest

from encore import Client
from encore._proto.encore.v1 import decisions_pb2, decisions_pb2_grpc, models_pb2, models_pb2_grpc
from encore._proto.grpc.health.v1 import health_pb2, health_pb2_grpc
from encore.learn.cli import main
from encore.learn.features import ContextMatrix, record_features
from encore.learn.policy import Flat, distribution, flat_scores, link
from encore.learn.snapshot import Exploration, Snapshot, encode_snapshot, write_snapshot


class FakeModels(models_pb2_grpc.ModelsServicer):
    def __init__(self):
        self.pushed = []
        self.authorization = []  # the authorization metadata of each push

    def PushSnapshot(self, request_iterator, context):
        self.authorization.append(dict(context.invocation_metadata()).get("authorization"))
        chunks = list(request_iterator)
        data = b"".join(c.data for c in chunks)
        self.pushed.append((len(chunks), data, any(c.activate for c in chunks)))
        return models_pb2.PushSnapshotResponse(model=models_pb2.ModelInfo(version="v", size_bytes=len(data)),
                                               activated=any(c.activate for c in chunks))

    def List(self, request, context):
        return models_pb2.ListModelsResponse(active_version="v", models=[models_pb2.ModelInfo(version="v")])

    def Activate(self, request, context):
        if request.version != "v":
            context.abort(grpc.StatusCode.NOT_FOUND, f"no snapshot {request.version}")
        return models_pb2.ModelInfo(version="v", active=True)

    def Rollback(self, request, context):
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "nothing to roll back to")


class FakeDecisions(decisions_pb2_grpc.DecisionsServicer):
    def Decide(self, request, context):
        assert request.order.items[0].category == "toys" and request.features["x"] == 2.5
        return decisions_pb2.DecideResponse(decision_id="d1", model_version="v", placements=[
            decisions_pb2.Placement(offer_id=request.candidate_offer_ids[0], slot=0, propensity=1.0)])

    def ReportOutcome(self, request, context):
        assert request.outcome == decisions_pb2.ACCEPTED and request.revenue_cents == 500
        return decisions_pb2.OutcomeResponse()


class FakeHealth(health_pb2_grpc.HealthServicer):
    def Check(self, request, context):
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
def fake():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    models = FakeModels()
    models_pb2_grpc.add_ModelsServicer_to_server(models, server)
    decisions_pb2_grpc.add_DecisionsServicer_to_server(FakeDecisions(), server)
    health_pb2_grpc.add_HealthServicer_to_server(FakeHealth(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, models
    server.stop(0)


def test_client_against_fake_server(fake):
    port, models = fake
    with Client("127.0.0.1", port, admin_port=port) as c:
        assert c.health() == "SERVING"
        r = c.decide("cart", "c1", order={"total_cents": 100, "items": [{"sku": "s", "category": "toys",
                                                                          "price_cents": 100, "quantity": 1}]},
                     candidates=["gift_box"], features={"x": 2.5})
        assert r.placements[0].offer_id == "gift_box"
        c.report_outcome("d1", "gift_box", "accepted", revenue_cents=500)
        data = os.urandom(3 * (1 << 20) + 17)
        reply = c.push_snapshot(data, activate=True)
        assert reply.activated and reply.model.size_bytes == len(data)
        assert models.pushed[-1] == (4, data, True)  # 1 MiB chunks
        assert c.list_models().active_version == "v"
        assert c.activate("v").active
        with pytest.raises(grpc.RpcError) as e:
            c.activate("nope")
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as e:
            c.rollback()
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_token_sent_as_bearer_metadata(fake, tmp_path, monkeypatch):
    port, models = fake
    with Client("127.0.0.1", port, admin_port=port, token="s3cret") as c:
        c.push_snapshot(b"abc")
    assert models.authorization[-1] == "Bearer s3cret"
    # encore-learn push: --token-file, else ENCORE_TOKEN, else none.
    path = str(tmp_path / "m.snap")
    write_snapshot(order_only_snapshot(Exploration("squarecb", gamma=10.0)), path)
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert main(["push", "--port", str(port), "--token-file", str(token_file), path]) == 0
    assert models.authorization[-1] == "Bearer from-file"
    monkeypatch.setenv("ENCORE_TOKEN", "from-env")
    assert main(["push", "--port", str(port), path]) == 0
    assert models.authorization[-1] == "Bearer from-env"
    monkeypatch.delenv("ENCORE_TOKEN")
    assert main(["push", "--port", str(port), path]) == 0
    assert models.authorization[-1] is None
    assert main(["push", "--port", str(port), "--token-file", str(tmp_path / "missing"), path]) == 1


# -- the real server -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server():
    from conftest import encore_binary

    binary = encore_binary()
    if binary is None:
        pytest.skip("the encore binary is absent (.build/{release,debug}/encore); live-server checks skipped")
    # The demo with its relevance threshold off: these checks compare the policy's own math with
    # the server's, so every candidate must stay in play (the rules have their own tests).
    config = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    config.write('{"rules": {"min_expected_value": -1000000}}')
    config.close()
    from conftest import start_encore

    proc, port, admin_port = start_encore(binary, ["--threads", "1", "--config", config.name],
                                          config.name + ".log")
    yield port, admin_port
    proc.terminate()
    proc.wait(timeout=20)
    os.unlink(config.name)
    os.unlink(config.name + ".log")


SHOP = ["gift_box", "rush_shipping", "shipping_protection", "extended_warranty"]


def order_only_snapshot(exploration):
    features = ["bias", "order.total_log", "order.items_log", "order.is_gift", "surface=cart",
                "order.category=electronics", "request.session_minutes"]
    rng = np.random.default_rng(3)
    return Snapshot(model_version=f"pytest-{exploration.kind}", created_at_millis=1_764_000_000_000,
                    features=features, interactions=[(3, 5)], offers=SHOP[:3],
                    shared_weights=rng.normal(0, 0.3, 8), offer_weights=rng.normal(0, 0.5, (3, 8)),
                    offer_biases=rng.normal(0, 0.5, 3), exploration=exploration)


@pytest.mark.parametrize("exploration", [Exploration("squarecb", gamma=40.0),
                                         Exploration("epsilon_greedy", epsilon=0.3),
                                         Exploration("softmax", temperature=0.2)])
def test_policy_math_matches_the_server(server, tmp_path, exploration):
    snap = order_only_snapshot(exploration)
    port, admin_port = server
    with Client("127.0.0.1", port, admin_port=admin_port) as c:
        reply = c.push_snapshot(encode_snapshot(snap), activate=True)
        assert reply.activated and reply.model.version == snap.model_version
        order = {"total_cents": 12900, "is_gift": True, "items": [
            {"sku": "s1", "category": "electronics", "price_cents": 12900, "quantity": 2}]}
        for i in range(5):
            r = c.decide("cart", f"nobody-{i}", order=order, slots=2, candidates=SHOP,
                         features={"session_minutes": 3.0 + i})
            assert r.model_version == snap.model_version and len(r.placements) == 2
            rec = {"surface": "cart", "order": order, "request_features": {"session_minutes": 3.0 + i}}
            ctx = ContextMatrix()
            ctx.add(record_features(rec))
            z = ctx.dense(snap.features, snap.interactions)
            flat = Flat.build([SHOP], [SHOP[0]])
            scores = flat_scores(snap, z, flat)
            rewards = link(snap, scores)
            p0 = distribution(rewards, exploration)
            a0 = SHOP.index(r.placements[0].offer_id)
            assert r.placements[0].score == pytest.approx(scores[a0], abs=1e-5)
            assert r.placements[0].propensity == pytest.approx(p0[a0], abs=1e-6)
            # Slot 1: the server swaps slot 0's candidate with the last and draws from the rest.
            order_idx = list(range(len(SHOP)))
            order_idx[a0], order_idx[-1] = order_idx[-1], order_idx[a0]
            rest = order_idx[:-1]
            p1 = distribution([rewards[j] for j in rest], exploration)
            a1 = rest.index(SHOP.index(r.placements[1].offer_id))
            assert r.placements[1].propensity == pytest.approx(p1[a1], abs=1e-6)


def test_push_list_rollback_health_and_refusal(server, tmp_path):
    path = str(tmp_path / "m.snap")
    write_snapshot(order_only_snapshot(Exploration("squarecb", gamma=10.0)), path)
    port, admin_port = server
    assert main(["push", "--port", str(admin_port), "--activate", path]) == 0
    with Client("127.0.0.1", port, admin_port=admin_port) as c:
        assert c.health() == "SERVING"
        models = c.list_models()
        assert models.active_version == "pytest-squarecb" or models.active_version.startswith("pytest-")
        before = models.active_version
        info = c.rollback()
        assert info.version != before
        assert c.activate(before).version == before
        bad = order_only_snapshot(Exploration("squarecb", gamma=10.0))
        bad.features[-1] = "customer.no_such_feature"
        bad.model_version = "pytest-bad"
        with pytest.raises(grpc.RpcError) as e:
            c.push_snapshot(encode_snapshot(bad))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "no_such_feature" in e.value.details()
    write_snapshot(bad, path)
    assert main(["push", "--port", str(admin_port), path]) == 1
    # Models on the data plane are refused with the admin port named.
    with Client("127.0.0.1", port, admin_port=port) as c:
        with pytest.raises(grpc.RpcError) as e:
            c.list_models()
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert str(admin_port) in e.value.details()
