#!/usr/bin/env python3
"""Writes the gRPC request bodies (5-byte prefix + message, as `h2load -d` and `encore bench
--body-file` take them) the whole-server benchmarks send, with the standard library only:

  decide.bin  DecideRequest{surface "cart", customer_id "c000042", slots 2, one-item web/mobile/US
              order of 5,400 cents}: the demo Decide of scripts/bench-auth.sh (a full 2-slot decision
              when the server runs with --holdout-share 0)
  health.bin  HealthCheckRequest{service "encore.v1.Decisions"} (scripts/bench-transport.sh's body)

  scripts/make-bench-bodies.py DIR
"""
import struct
import sys


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, value):
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def frame(message):
    return struct.pack(">BI", 0, len(message)) + message


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make-bench-bodies.py DIR")
    item = field(1, "sku-1") + field(2, "apparel") + field(3, 5400) + field(4, 1)
    order = (field(1, "o-1") + field(2, 5400) + field(3, "USD") + field(4, item) + field(6, "web")
             + field(7, "mobile") + field(8, "US"))
    decide = field(1, "cart") + field(2, "c000042") + field(3, order) + field(4, 2)
    health = field(1, "encore.v1.Decisions")
    for name, message in (("decide.bin", decide), ("health.bin", health)):
        with open(f"{sys.argv[1]}/{name}", "wb") as f:
            f.write(frame(message))


if __name__ == "__main__":
    main()
