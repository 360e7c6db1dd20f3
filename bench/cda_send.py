#!/usr/bin/env python3
"""The sender of bench/cda-ingest: POSTs every document of a folder to /api/v1/documents
(Content-Type application/xml, bearer token from QY_TOKEN) over CONNECTIONS keep-alive connections,
one thread each, taking the next unsent document from a shared counter; timed on the client.

All documents are read into memory before the clock starts. Only the status line and the body
are read inside a request's time; the JSON receipts are looked at after the clock stops.

Usage: QY_TOKEN=… cda_send.py --url URL --connections N FOLDER
Prints one line:
  QY_SEND <documents>|<seconds>|<documents/s>|<MB/s>|<p50 ms>|<p99 ms>|<created>|<patients created/linked/existing>|<reconnects>|<sender CPU ms per document>
and exits 1 if any answer was not `201 created` with schemaValid true (the first few on stderr).
"""
import argparse
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse
from collections import Counter


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("folder")
    args = parser.parse_args()
    token = os.environ.get("QY_TOKEN") or parser.error("QY_TOKEN is not set")
    url = urllib.parse.urlsplit(args.url)

    names = sorted(n for n in os.listdir(args.folder) if n.endswith(".xml"))
    documents = []
    for name in names:
        with open(os.path.join(args.folder, name), "rb") as handle:
            documents.append(handle.read())
    if not documents:
        parser.error(f"no .xml documents in {args.folder}")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml", "Connection": "keep-alive"}

    lock = threading.Lock()
    next_index = [0]
    results = [None] * len(documents)  # (status, body, seconds)
    reconnects = [0]
    start_barrier = threading.Barrier(args.connections + 1)

    def take():
        with lock:
            index = next_index[0]
            next_index[0] += 1
        return index

    def worker():
        connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=120)
        connection.connect()
        opened = 0
        start_barrier.wait()
        while (index := take()) < len(documents):
            body = documents[index]
            started = time.perf_counter()
            try:
                if connection.sock is None:
                    opened += 1
                connection.request("POST", "/api/v1/documents", body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                status = response.status
                if response.will_close:
                    connection.close()
            except (OSError, http.client.HTTPException) as error:
                # A dropped connection is an error for this document; the next request reconnects.
                connection.close()
                status, answer = 0, repr(error).encode()
            results[index] = (status, answer, time.perf_counter() - started)
        connection.close()
        with lock:
            reconnects[0] += opened

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.connections)]
    for thread in threads:
        thread.start()
    cpu_before = os.times()
    start_barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu_after = os.times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)

    latencies = sorted(seconds * 1000 for _, _, seconds in results)
    total_bytes = sum(len(d) for d in documents)
    created = 0
    patients = Counter()
    problems = []
    for index, (status, answer, _) in enumerate(results):
        receipt = None
        if status in (200, 201):
            try:
                receipt = json.loads(answer)
            except ValueError:
                pass
        if (status == 201 and receipt and receipt.get("status") == "created"
                and receipt.get("document", {}).get("schemaValid") is True):
            created += 1
            patients[receipt.get("patient")] += 1
        else:
            problems.append(f"{names[index]}: HTTP {status}: {answer[:300].decode('utf-8', 'replace')}")
    for problem in problems[:5]:
        print(f"cda_send: {problem}", file=sys.stderr)
    outcome = "/".join(str(patients[k]) for k in ("created", "linked", "existing"))
    others = sum(v for k, v in patients.items() if k not in ("created", "linked", "existing"))
    if others:
        outcome += f" (+{others} other)"
    print("QY_SEND %d|%.2f|%.1f|%.2f|%.1f|%.1f|%d|%s|%d|%.2f" % (
        len(documents), elapsed, len(documents) / elapsed, total_bytes / elapsed / 1e6, percentile(latencies, 50),
        percentile(latencies, 99), created, outcome, reconnects[0], cpu * 1000 / len(documents)))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
