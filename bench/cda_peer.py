#!/usr/bin/env python3
"""The peer in bench/cda-ingest: Python `lxml` (libxml2 underneath, as in Qianyun) parsing each
document with entity resolution and network access off, and validating it against the same CDA
schema, on exactly the bytes Qianyun was sent; one thread, so one core. The schema is compiled
once, before the clock starts. Whole passes over all documents are timed (at least one, then
more until SECONDS have gone by), each document on its own for the percentiles.

Usage: cda_peer.py XSD SECONDS FOLDER...
Prints one line:
  QY_PEER <documents timed>|<seconds>|<documents/s>|<MB/s>|<p50 ms>|<p99 ms>|<invalid>|<lxml version>|<libxml2 version>
and exits 1 if lxml finds any document invalid (the first few findings on stderr): the two sides
must be doing the same work.
"""
import os
import sys
import time

from lxml import etree


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    xsd, budget, folders = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    documents = []
    for folder in folders:
        for name in sorted(n for n in os.listdir(folder) if n.endswith(".xml")):
            with open(os.path.join(folder, name), "rb") as handle:
                documents.append(handle.read())
    if not documents:
        sys.exit("cda_peer: no documents")
    schema = etree.XMLSchema(etree.parse(xsd, etree.XMLParser(no_network=True)))
    parser = etree.XMLParser(resolve_entities=False, no_network=True)

    # Not timed: the verdicts, so a document lxml refuses is reported rather than measured.
    invalid = 0
    for document in documents:
        if not schema.validate(etree.fromstring(document, parser)):
            invalid += 1
            if invalid <= 3:
                print(f"cda_peer: invalid: {schema.error_log.last_error}", file=sys.stderr)

    size = sum(len(d) for d in documents)
    latencies = []
    clock = time.perf_counter
    count, total_bytes = 0, 0
    started = clock()
    while count == 0 or clock() - started < budget:
        for document in documents:
            t0 = clock()
            schema.validate(etree.fromstring(document, parser))
            t1 = clock()
            latencies.append(t1 - t0)
        count += len(documents)
        total_bytes += size
    elapsed = clock() - started
    latencies.sort()
    print("QY_PEER %d|%.2f|%.1f|%.2f|%.2f|%.2f|%d|%s|%s" % (
        count, elapsed, count / elapsed, total_bytes / elapsed / 1e6, percentile(latencies, 50) * 1000,
        percentile(latencies, 99) * 1000, invalid, etree.__version__, ".".join(map(str, etree.LIBXML_VERSION))))
    sys.exit(1 if invalid else 0)


if __name__ == "__main__":
    main()
