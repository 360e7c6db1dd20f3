#!/usr/bin/env python3
"""The HTTP side of bench/surveillance (standard library only, one keep-alive connection).

  surveillance_http.py counts URL TOKEN --runs N QUERY
      GET /api/v1/surveillance/counts?QUERY once to warm up, then N times, timed; prints
      QY_COUNTS p50_ms p99_ms min_ms max_ms bytes cells suppressed_cells margins_suppressed total
      and, after one more request with Accept: text/csv, QY_CSV bytes rows.
  surveillance_http.py signals URL TOKEN DATE
      POST /api/v1/surveillance/signals/run {"date": DATE}; prints
      QY_SIGNALS wall_seconds seconds series evaluations alarms signalsRaised
"""
import http.client
import json
import sys
import time
import urllib.parse


def connect(url):
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=900)


def request(connection, method, path, token, body=None, accept="application/json"):
    headers = {"Authorization": "Bearer " + token, "Accept": accept}
    if body is not None:
        headers["Content-Type"] = "application/json"
    started = time.perf_counter()
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        sys.exit("%s %s: HTTP %d %s" % (method, path.split("?")[0], response.status, data[:300].decode("utf-8", "replace")))
    return data, elapsed


def percentile(values, p):
    ordered = sorted(values)
    # Nearest rank: with 20 runs p99 is the slowest.
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def counts(url, token, runs, query):
    connection = connect(url)
    path = "/api/v1/surveillance/counts?" + query
    request(connection, "GET", path, token)
    times = []
    data = b""
    for _ in range(runs):
        data, elapsed = request(connection, "GET", path, token)
        times.append(elapsed * 1000)
    table = json.loads(data)
    cells = table["cells"]
    suppressed = sum(1 for cell in cells if cell["suppressed"])
    margins = sum(1 for values in table["margins"].values() for value in values if value["suppressed"])
    total = table["total"]["count"]
    print("QY_COUNTS %.1f %.1f %.1f %.1f %d %d %d %d %s" % (
        percentile(times, 50), percentile(times, 99), min(times), max(times), len(data), len(cells), suppressed, margins,
        total if total is not None else "suppressed"))
    csv, elapsed = request(connection, "GET", path, token, accept="text/csv")
    print("QY_CSV %d %d %.1f" % (len(csv), csv.count(b"\r\n") - 1, elapsed * 1000))


def signals(url, token, day):
    connection = connect(url)
    data, elapsed = request(connection, "POST", "/api/v1/surveillance/signals/run", token, body=json.dumps({"date": day}))
    run = json.loads(data)
    print("QY_SIGNALS %.2f %s %d %d %d %d" % (
        elapsed, run["seconds"], run["series"], run["evaluations"], run["alarms"], run["signalsRaised"]))


def main():
    if len(sys.argv) == 7 and sys.argv[1] == "counts" and sys.argv[4] == "--runs":
        counts(sys.argv[2], sys.argv[3], int(sys.argv[5]), sys.argv[6])
    elif len(sys.argv) == 5 and sys.argv[1] == "signals":
        signals(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
