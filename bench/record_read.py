#!/usr/bin/env python3
"""The reader of bench/record-read: GETs one timeline page (/api/v1/residents/{id}/record with a
query) REQUESTS times over CONNECTIONS keep-alive connections, one thread each, taking the next
request from a shared counter; timed on the client (bearer token from QY_TOKEN).

With --page K the measured page is the K-th: pages 1 to K-1 are fetched first, each with the
previous page's nextCursor, and the cursor that leads to page K is the one timed. Each connection
first sends --warmup requests of its own, not timed. Every answer must be 200 with as many items
as the first one had (and the same nextCursor): a page that changes under load is an error.

Usage: QY_TOKEN=… record_read.py --url URL --path PATH [--page K] --requests M --connections C
Prints one line:
  QY_READ <requests>|<seconds>|<requests/s>|<p50 ms>|<p99 ms>|<items>|<scope>|<basis>|<first item time>|<errors>|<reader CPU ms per request>
and exits 1 if any answer was wrong (the first few on stderr).
"""
import argparse
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--path", required=True, help="path and query of the first page")
    parser.add_argument("--page", type=int, default=1)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per connection")
    args = parser.parse_args()
    token = os.environ.get("QY_TOKEN") or parser.error("QY_TOKEN is not set")
    url = urllib.parse.urlsplit(args.url)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "Connection": "keep-alive"}

    def get(connection, path):
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.will_close:
            connection.close()
        return response.status, body

    # Follow the cursors to the page to measure, and take its answer as the expected one.
    path = args.path
    probe = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
    for page in range(1, args.page + 1):
        status, body = get(probe, path)
        if status != 200:
            sys.exit(f"record_read: page {page} of {path}: HTTP {status}: {body[:300].decode('utf-8', 'replace')}")
        answer = json.loads(body)
        if page < args.page:
            cursor = answer.get("nextCursor")
            if not cursor:
                sys.exit(f"record_read: the timeline ends at page {page}, before page {args.page}")
            separator = "&" if "?" in args.path else "?"
            path = args.path + separator + "cursor=" + urllib.parse.quote(cursor, safe="")
    probe.close()
    expected_items = len(answer.get("items", []))
    expected_cursor = answer.get("nextCursor")
    first_time = answer["items"][0].get("time", "-") if expected_items else "-"

    lock = threading.Lock()
    next_index = [0]
    latencies = [0.0] * args.requests
    problems = []
    start_barrier = threading.Barrier(args.connections + 1)

    def take():
        with lock:
            index = next_index[0]
            next_index[0] += 1
        return index

    def check(status, body):
        if status != 200:
            return f"HTTP {status}: {body[:300].decode('utf-8', 'replace')}"
        answer = json.loads(body)
        if len(answer.get("items", [])) != expected_items or answer.get("nextCursor") != expected_cursor:
            return f"{len(answer.get('items', []))} items (expected {expected_items}) or another nextCursor"
        return None

    answers = []

    def worker():
        connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
        connection.connect()
        try:
            for _ in range(args.warmup):
                get(connection, path)
        except (OSError, http.client.HTTPException) as error:
            with lock:
                problems.append(f"warm-up: {error!r}")
        mine = []
        start_barrier.wait()
        while (index := take()) < args.requests:
            started = time.perf_counter()
            try:
                status, body = get(connection, path)
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                status, body = 0, repr(error).encode()
            latencies[index] = time.perf_counter() - started
            mine.append((status, body))
        connection.close()
        with lock:
            answers.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.connections)]
    for thread in threads:
        thread.start()
    start_barrier.wait()
    cpu_before = os.times()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu_after = os.times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    # Answers are checked after the clock, so that JSON decoding is not in the latency.
    for status, body in answers:
        problem = check(status, body)
        if problem:
            problems.append(problem)

    for problem in problems[:5]:
        print(f"record_read: {problem}", file=sys.stderr)
    ordered = sorted(seconds * 1000 for seconds in latencies)
    print("QY_READ %d|%.2f|%.0f|%.2f|%.2f|%d|%s|%s|%s|%d|%.2f" % (
        args.requests, elapsed, args.requests / elapsed, percentile(ordered, 50), percentile(ordered, 99), expected_items,
        answer.get("scope", "-"), answer.get("basis", "-"), first_time, len(problems), cpu * 1000 / args.requests))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
