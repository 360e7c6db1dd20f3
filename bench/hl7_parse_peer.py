#!/usr/bin/env python3
"""The peers in the HL7 v2 parse benchmark: Python `hl7` (hl7.parse) and `hl7apy`
(hl7apy.parser.parse_message, tolerant validation, as its documentation shows), each timed on
exactly the messages qianyun-hl7-bench measured (one per line, `\\r` segment ends).
Usage: hl7_parse_peer.py MESSAGES_FILE SECONDS
Prints one line per peer: QY_PARSE <name>|<messages/s>|<MB/s>|<messages it could not parse>
"""
import sys
import time

import hl7
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

path, budget = sys.argv[1], float(sys.argv[2])
with open(path, "rb") as handle:
    raw = [line for line in handle.read().split(b"\n") if line]
messages = [line.decode("utf-8") for line in raw]


def measure(name, parse):
    usable, failed = [], 0
    for message in messages:
        try:
            parse(message)
            usable.append(message)
        except Exception:
            failed += 1
    if not usable:
        print(f"QY_PARSE {name}|0|0|{failed}")
        return
    size = sum(len(m.encode("utf-8")) for m in usable)
    count, total_bytes, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        for message in usable:
            parse(message)
        count += len(usable)
        total_bytes += size
    elapsed = time.perf_counter() - start
    print(f"QY_PARSE {name}|{count / elapsed:.0f}|{total_bytes / elapsed / 1e6:.2f}|{failed}")


measure(f"python hl7 {getattr(hl7, '__version__', '')}".strip(), hl7.parse)
measure("python hl7apy (tolerant)", lambda m: parse_message(m, validation_level=VALIDATION_LEVEL.TOLERANT))
