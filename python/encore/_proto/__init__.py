"""Generated protobuf and grpcio stubs (python/generate_stubs.sh; do not edit)."""
