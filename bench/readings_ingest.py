#!/usr/bin/env python3
"""The device backend of bench/readings-ingest: POSTs batches of home-device readings to
/api/v1/readings over CONNECTIONS keep-alive connections (one thread each) for DURATION seconds
(or BATCHES batches), timed on the client (bearer token from QY_TOKEN).

Each batch holds B readings of random enrolled residents (--residents FILE: lines `id|programmes`,
programmes comma-separated), a type drawn from the mix below and a resident whose programmes the
type belongs to:
  65 % blood-pressure (hypertension or coronary heart disease; with heart rate), 30 % glucose-fasting
  (type 2 diabetes; one glucometer in ten reports mg/dL), 2 % heart-rate and 2 % spo2 (coronary
  heart disease), 1 % weight (type 2 diabetes).
Values are mostly normal; about 15 % are out of range (1 % of pressures at or above 180 mmHg,
1 % of glucoses at or above 16.7 mmol/L, 0.5 % hypoglycaemic), so alerts are raised.
Every reading is new: measuredAt lies in the last 48 hours, on a whole minute plus --slot seconds
(one slot per run, so two runs never send the same time) and each thread uses its own minutes and
never a (resident, minute) twice; each resident has one blood-pressure monitor and one glucometer.

With --save FILE every batch sent is written to FILE (one JSON body a line); --resend FILE sends
those bodies again (each once, as a device re-syncing) and expects every reading back as a
duplicate.

Usage: QY_TOKEN=… readings_ingest.py --url URL --residents FILE [--batch B] [--connections C]
           [--duration S | --batches N] [--slot K] [--save FILE] [--errors DIR]
       QY_TOKEN=… readings_ingest.py --url URL --resend FILE [--connections C] [--errors DIR]
Prints one line:
  QY_INGEST <batches>|<seconds>|<batches/s>|<readings sent>|<accepted>|<duplicates>|<rejected>|<p50 ms>|<p99 ms>|
            <new alerts>|<joined alerts>|<errors>|<client CPU ms per batch>|<mix>|<client CPU ms in all>|
            <readings deferred to the monitoring worker (another batch was evaluating the resident)>
The last field is all the CPU time the client used, start-up included (to tell the machine's other
load apart). <errors> counts answers other than 200 (and broken connections); with --resend, also 200 answers
that accepted anything or did not call every reading a duplicate. The first few failing requests
and answers are written to DIR (--errors) and summarised on stderr; exit status 1 if any.
"""
import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

PATH = "/api/v1/readings"
# (type, share): the mix of a device backend of chronic-disease patients.
MIX = (("blood-pressure", 65), ("glucose-fasting", 30), ("heart-rate", 2), ("spo2", 2), ("weight", 1))
# Which programmes' residents send each type.
SENDERS = {
    "blood-pressure": ("hypertension", "coronary-heart-disease"),
    "glucose-fasting": ("type2-diabetes",),
    "heart-rate": ("coronary-heart-disease",),
    "spo2": ("coronary-heart-disease",),
    "weight": ("type2-diabetes",),
}
WINDOW_MINUTES = 48 * 60


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def load_residents(path):
    """Resident ids, and for each reading type the indexes of the residents who send it."""
    ids = []
    pools = {kind: [] for kind in SENDERS}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            resident, _, programmes = line.partition("|")
            index = len(ids)
            ids.append(resident)
            enrolled = set(programmes.split(","))
            for kind, senders in SENDERS.items():
                if enrolled.intersection(senders):
                    pools[kind].append(index)
    empty = [kind for kind, pool in pools.items() if not pool]
    if empty:
        sys.exit(f"readings_ingest: no resident in {path} is enrolled for {', '.join(empty)}")
    return ids, pools


class Generator:
    """Batches of new readings for one thread: its own minutes (minute ≡ lane mod lanes), its own
    record of which (resident, minute) it used."""

    def __init__(self, ids, pools, lane, lanes, slot, seed, base):
        self.random = random.Random(seed * 1000003 + slot * 1009 + lane)
        self.ids = ids
        self.pools = pools
        self.lane = lane
        self.lanes = lanes
        self.minutes_per_lane = max(1, (WINDOW_MINUTES - lane + lanes - 1) // lanes)
        self.base = base
        self.slot = slot
        self.used = set()
        self.table = [kind for kind, share in MIX for _ in range(share)]
        self.stamps = {}
        self.counts = {kind: 0 for kind, _ in MIX}
        self.high = 0

    def stamp(self, minute):
        """measuredAt of that minute of the window, in the resident's clock (+08:00)."""
        text = self.stamps.get(minute)
        if text is None:
            text = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(self.base + minute * 60 + 8 * 3600)) + "%02d+08:00" % self.slot
            self.stamps[minute] = text
        return text

    def reading(self):
        r = self.random
        kind = self.table[int(r.random() * len(self.table))]
        pool = self.pools[kind]
        for _ in range(100):
            resident = pool[int(r.random() * len(pool))]
            minute = self.lane + self.lanes * int(r.random() * self.minutes_per_lane)
            if minute < WINDOW_MINUTES and (resident, minute) not in self.used:
                break
        else:
            raise RuntimeError("no unused (resident, minute) left: the run is too long for the window")
        self.used.add((resident, minute))
        self.counts[kind] += 1
        resident_id = self.ids[resident]
        u = r.random()
        high = u < 0.15
        self.high += high
        reading = {"resident": resident_id, "measuredAt": self.stamp(minute), "type": kind}
        if kind == "blood-pressure":
            if u < 0.01:
                systolic, diastolic = r.randint(180, 205), r.randint(95, 118)
            elif high:
                systolic, diastolic = r.randint(140, 178), r.randint(85, 104)
            else:
                systolic, diastolic = r.randint(100, 138), r.randint(60, 88)
            reading.update(deviceId="bp-" + resident_id[:8], systolic=systolic, diastolic=diastolic,
                           heartRate=r.randint(55, 95), unit="mmHg")
        elif kind == "glucose-fasting":
            if u < 0.01:
                value = r.uniform(17.0, 24.0)
            elif u < 0.015:
                value = r.uniform(2.8, 3.7)
            elif high:
                value = r.uniform(7.2, 13.0)
            else:
                value = r.uniform(4.4, 6.8)
            device = "gm-" + resident_id[:8]
            # One glucometer in ten reports mg/dL (by resident, as a device would).
            if int(resident_id[8:10], 16) % 10 == 0:
                reading.update(deviceId=device, value=round(value * 18.016), unit="mg/dL")
            else:
                reading.update(deviceId=device, value=round(value, 1), unit="mmol/L")
        elif kind == "heart-rate":
            value = (r.randint(121, 150) if u < 0.1 else r.randint(40, 49)) if high else r.randint(55, 100)
            reading.update(deviceId="hr-" + resident_id[:8], value=value, unit="/min")
        elif kind == "spo2":
            value = r.randint(85, 89) if high else r.randint(94, 99)
            reading.update(deviceId="ox-" + resident_id[:8], value=value, unit="%")
        else:
            self.high -= high
            reading.update(deviceId="sc-" + resident_id[:8], value=round(r.uniform(48.0, 95.0), 1), unit="kg")
        return reading

    def batch(self, size):
        return json.dumps({"readings": [self.reading() for _ in range(size)]}, ensure_ascii=False,
                          separators=(",", ":")).encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--residents", help="file of id|programmes lines")
    parser.add_argument("--batch", type=int, default=100, help="readings per batch (1-1000)")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--duration", type=float, help="seconds to send for")
    parser.add_argument("--batches", type=int, help="batches to send (instead of --duration)")
    parser.add_argument("--slot", type=int, default=0, help="second of the minute of every measuredAt (0-59), one per run")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--save", help="write every batch sent to this file, one a line")
    parser.add_argument("--resend", help="send the batches of this file again; all must be duplicates")
    parser.add_argument("--errors", help="directory for the first failing requests and answers")
    args = parser.parse_args()
    token = os.environ.get("QY_TOKEN") or parser.error("QY_TOKEN is not set")
    if args.connections < 1:
        parser.error("--connections must be at least 1")
    url = urllib.parse.urlsplit(args.url)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json",
               "Connection": "keep-alive"}

    saved = None
    if args.resend:
        with open(args.resend, "rb") as handle:
            saved = [line.rstrip(b"\n") for line in handle if line.strip()]
        if not saved:
            sys.exit(f"readings_ingest: {args.resend} holds no batches")
    else:
        if not args.residents:
            parser.error("--residents is required (or --resend)")
        if not 1 <= args.batch <= 1000:
            parser.error("--batch must be from 1 to 1000")
        if not 0 <= args.slot <= 59:
            parser.error("--slot must be from 0 to 59")
        if (args.duration is None) == (args.batches is None):
            parser.error("give one of --duration and --batches")
        ids, pools = load_residents(args.residents)
        base = int(time.time()) // 60 * 60 - WINDOW_MINUTES * 60
        generators = [Generator(ids, pools, lane, args.connections, args.slot, args.seed, base)
                      for lane in range(args.connections)]

    lock = threading.Lock()
    next_index = [0]
    # Per batch: (latency s, status, readings, answer or error text)
    outcomes = []
    save_handle = open(args.save, "wb") if args.save else None
    start_barrier = threading.Barrier(args.connections + 1)
    deadline = [0.0]

    def take():
        with lock:
            index = next_index[0]
            next_index[0] += 1
        return index

    def post(connection, body):
        connection.request("POST", PATH, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        if response.will_close:
            connection.close()
        return response.status, answer

    def worker(lane):
        connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=120)
        try:
            connection.connect()
        except OSError:
            # The first request tries again, and counts the failure as an error.
            connection.close()
        generator = None if saved is not None else generators[lane]
        mine = []
        start_barrier.wait()
        while True:
            if saved is not None:
                index = take()
                if index >= len(saved):
                    break
                body = saved[index]
                count = None
            else:
                if args.batches is not None:
                    if take() >= args.batches:
                        break
                elif time.perf_counter() >= deadline[0]:
                    break
                body = generator.batch(args.batch)
                count = args.batch
            started = time.perf_counter()
            try:
                status, answer = post(connection, body)
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                status, answer = 0, repr(error).encode()
            mine.append((time.perf_counter() - started, status, count, body, answer))
        connection.close()
        with lock:
            outcomes.extend(mine)

    threads = [threading.Thread(target=worker, args=(lane,), daemon=True) for lane in range(args.connections)]
    for thread in threads:
        thread.start()
    cpu_before = os.times()
    started = time.perf_counter()
    deadline[0] = started + (args.duration or 0)
    start_barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu_after = os.times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)

    # Answers are read after the clock, so that decoding them is not in the latency.
    sent = accepted = duplicates = rejected = new_alerts = joined_alerts = errors = deferred = 0
    problems = []
    reasons = {}
    for latency, status, count, body, answer in outcomes:
        if save_handle is not None:
            save_handle.write(body + b"\n")
        if count is None:
            count = body.count(b'"resident":')
        sent += count
        problem = None
        if status != 200:
            problem = f"HTTP {status}"
        else:
            try:
                result = json.loads(answer)
                accepted += result["accepted"]
                duplicates += result["duplicates"]
                rejected += result["rejected"]
                deferred += result.get("deferred", 0)
                for alert in result.get("alerts", []):
                    if alert.get("new"):
                        new_alerts += 1
                    else:
                        joined_alerts += 1
                for outcome in result.get("results", []):
                    if outcome.get("status") == "rejected":
                        key = f"{outcome.get('field')}: {outcome.get('reason')}"
                        reasons[key] = reasons.get(key, 0) + 1
                if saved is not None and (result["accepted"] != 0 or result["duplicates"] != count):
                    problem = f"resend: accepted {result['accepted']}, duplicates {result['duplicates']} of {count}"
            except (ValueError, KeyError, TypeError) as error:
                problem = f"HTTP 200 with an unreadable answer ({error!r})"
        if problem:
            errors += 1
            if len(problems) < 3:
                problems.append((problem, body, answer))
    if save_handle is not None:
        save_handle.close()

    for number, (problem, body, answer) in enumerate(problems, 1):
        print(f"readings_ingest: {problem}: {answer[:500].decode('utf-8', 'replace')}", file=sys.stderr)
        if args.errors:
            os.makedirs(args.errors, exist_ok=True)
            with open(os.path.join(args.errors, f"request-{number}.json"), "wb") as out:
                out.write(body)
            with open(os.path.join(args.errors, f"answer-{number}.txt"), "wb") as out:
                out.write(problem.encode() + b"\n" + answer)
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1])[:5]:
        print(f"readings_ingest: {count} readings rejected: {reason}", file=sys.stderr)

    if saved is None:
        counts = {kind: 0 for kind, _ in MIX}
        high = 0
        for generator in generators:
            high += generator.high
            for kind, count in generator.counts.items():
                counts[kind] += count
        total = max(1, sum(counts.values()))
        mix = ", ".join(f"{kind} {100 * count / total:.0f}%" for kind, count in counts.items()) + f"; out of range {100 * high / total:.0f}%"
    else:
        mix = "resend"
    batches = len(outcomes)
    everything = os.times()
    ordered = sorted(latency * 1000 for latency, *_ in outcomes)
    print("QY_INGEST %d|%.2f|%.1f|%d|%d|%d|%d|%.1f|%.1f|%d|%d|%d|%.2f|%s|%.0f|%d" % (
        batches, elapsed, batches / elapsed, sent, accepted, duplicates, rejected, percentile(ordered, 50),
        percentile(ordered, 99), new_alerts, joined_alerts, errors, cpu * 1000 / max(1, batches), mix,
        (everything.user + everything.system) * 1000, deferred))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
