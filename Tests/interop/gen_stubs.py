"""Generate the Python protobuf/grpcio stubs for the interop tests.

The stubs are generated from <repo>/Protocol/**/*.proto with grpcio-tools into
Tests/interop/_gen/ (git-ignored). Run directly (`python Tests/interop/gen_stubs.py`) or let
conftest.py call ensure_stubs(); regeneration happens only when a .proto is newer than the stamp.
"""
from __future__ import annotations

import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROTO_DIR = REPO / "Protocol"
GEN_DIR = HERE / "_gen"
STAMP = GEN_DIR / ".stamp"


def proto_files() -> list[pathlib.Path]:
    # The reflection protos are compiled into the server as descriptors only; the tests use
    # grpcio-reflection's own client (whose messages share their names).
    return sorted(p for p in PROTO_DIR.rglob("*.proto") if "reflection" not in p.relative_to(PROTO_DIR).parts)


def _stamp_text() -> str:
    """The stamp names every .proto it was generated from, so an added or removed file (whatever
    its mtime, e.g. after a checkout) also triggers regeneration."""
    names = [str(p.relative_to(PROTO_DIR)) for p in proto_files()]
    return "generated from Protocol/**/*.proto:\n" + "".join(f"{n}\n" for n in names)


def _expected_modules() -> list[pathlib.Path]:
    return [GEN_DIR / p.relative_to(PROTO_DIR).with_name(p.stem + "_pb2.py") for p in proto_files()]


def _stale() -> bool:
    if not STAMP.exists() or STAMP.read_text() != _stamp_text():
        return True
    if any(not m.exists() for m in _expected_modules()):
        return True
    stamp = STAMP.stat().st_mtime
    return any(p.stat().st_mtime > stamp for p in proto_files())


def ensure_stubs(force: bool = False) -> pathlib.Path:
    if force or _stale():
        from grpc_tools import protoc  # imported lazily: only needed when (re)generating
        import importlib.resources

        protos = proto_files()
        if not protos:
            raise RuntimeError(f"no .proto files under {PROTO_DIR}")
        GEN_DIR.mkdir(parents=True, exist_ok=True)
        well_known = str(importlib.resources.files("grpc_tools") / "_proto")
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{well_known}",
            f"--python_out={GEN_DIR}",
            f"--grpc_python_out={GEN_DIR}",
        ] + [str(p.relative_to(PROTO_DIR)) for p in protos]
        cwd = os.getcwd()
        try:
            os.chdir(PROTO_DIR)
            rc = protoc.main(args)
        finally:
            os.chdir(cwd)
        if rc != 0:
            raise RuntimeError(f"grpc_tools.protoc failed with exit code {rc}")
        STAMP.write_text(_stamp_text())
    return GEN_DIR


def import_stubs():
    """Make the generated modules importable and return them as a namespace.

    The health proto lives in package grpc.health.v1, so its generated module path is
    grpc/health/v1/health_pb2.py, which would be shadowed by the real `grpc` package. We
    extend grpc.__path__ with _gen/grpc so `grpc.health.v1` resolves to the generated code.
    """
    gen = ensure_stubs()
    if str(gen) not in sys.path:
        sys.path.append(str(gen))
    import grpc

    gen_grpc = str(gen / "grpc")
    if gen_grpc not in list(grpc.__path__):
        grpc.__path__.append(gen_grpc)
    import types

    from encore.v1 import (
        catalog_pb2,
        catalog_pb2_grpc,
        decisions_pb2,
        decisions_pb2_grpc,
        diagnostics_pb2,
        diagnostics_pb2_grpc,
        models_pb2,
        models_pb2_grpc,
    )
    from grpc.health.v1 import health_pb2, health_pb2_grpc

    return types.SimpleNamespace(
        catalog_pb2=catalog_pb2,
        catalog_pb2_grpc=catalog_pb2_grpc,
        decisions_pb2=decisions_pb2,
        decisions_pb2_grpc=decisions_pb2_grpc,
        diagnostics_pb2=diagnostics_pb2,
        diagnostics_pb2_grpc=diagnostics_pb2_grpc,
        health_pb2=health_pb2,
        health_pb2_grpc=health_pb2_grpc,
        models_pb2=models_pb2,
        models_pb2_grpc=models_pb2_grpc,
    )


if __name__ == "__main__":
    out = ensure_stubs(force="--force" in sys.argv)
    print(f"stubs in {out}")
