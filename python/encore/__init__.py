"""Encore: the Python side of the next-best-offer engine.

- `encore.Client`: a grpcio client for a running server (Decide, ReportOutcome, Models, health).
- `encore.learn`: read decision/outcome logs, learn a policy, evaluate it offline (IPS, SNIPS,
  DR), write snapshots; the `encore-learn` command.
"""

__version__ = "0.1.0"
__all__ = ["Client", "__version__"]


def __getattr__(name: str):
    # Imported lazily so `encore.learn` works without loading grpc.
    if name == "Client":
        from .client import Client

        return Client
    raise AttributeError(name)
