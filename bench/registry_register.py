#!/usr/bin/env python3
"""Registration latency for bench/registry: sequential POST /api/v1/residents over one keep-alive
connection, timed on the client, as a HIS registration desk sends them.

The mix (after a short unmeasured warm-up):
  40% new people   valid identity numbers from a sequence range the population never uses
  50% duplicates   a resident already loaded, at this facility under a new local id: as recorded
                   (30%), a homophone in the given name (25%), no identity number (20%), a new
                   phone (15%), a mistyped given-name character (10%)
  10% re-sends     an earlier request of this run again, same local id (answered `existing`)

Usage: QY_TOKEN=… registry_register.py --url URL --phase P --label TEXT [--count N] CSV…
Prints one markdown row:  | label | requests | p50 ms | p95 ms | p99 ms | created | linked | review | existing | errors |
"""
import argparse
import http.client
import json
import os
import sys
import time
import urllib.parse
from random import Random

from registry_population import DIVISIONS, Population, load_facilities

# Characters that share a toneless reading, as a pinyin IME offers them: the desk picks the wrong one.
HOMOPHONES = [
    "伟卫维为", "芳方", "娜纳", "敏民", "明鸣名铭", "静晶精景", "军君均俊", "杰洁捷", "强墙蔷", "磊雷蕾", "艳燕雁",
    "宇雨语玉", "涛桃陶", "浩豪好", "鹏朋", "涵寒韩含", "轩宣萱", "欣新心馨", "怡宜仪依", "子紫梓", "佳家嘉",
    "宏红洪鸿", "志智至", "海", "云芸", "飞菲", "辉慧惠", "成诚城", "波博", "亮良", "龙隆", "庆晴清青", "春纯",
    "琴勤", "秋球", "兵冰彬", "正政", "德得", "福富", "华花", "英莹颖", "贵桂", "丽莉力立利", "婷亭", "琳林霖",
    "梅美", "兰蓝", "玲铃灵", "萍平", "雪", "倩茜", "瑶遥", "琪琦奇", "雯文", "露路", "凤峰锋", "珍真", "芬分",
    "香祥", "雅亚", "彤同", "诗思", "梦蒙", "薇微", "婉宛", "淑书", "贞桢", "莲连", "曼蔓", "瑾锦", "璐鹭", "瑜愉",
    "蕊睿", "芝枝", "勇永", "刚钢", "斌彬", "凯楷", "健建", "帆凡", "旭绪", "宁凝", "阳洋扬", "峰锋丰", "东冬",
    "国果", "毅艺益", "松嵩", "栋东", "威伟", "振震", "泽择", "皓浩", "晟胜", "哲喆", "昊浩", "翔祥", "达答",
    "恒衡", "广光", "远源元", "兴星", "昌常", "盛胜", "忠中", "仁人", "义毅", "礼丽", "信新", "良梁", "友有",
    "茂貌", "才材", "彪标", "虎琥", "雄熊", "晓小", "天添", "丹单", "青清", "光广", "心新",
]
HOMOPHONE_OF = {c: group for group in HOMOPHONES for c in group if len(group) > 1}


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def sample_rows(paths, count, random):
    """`count` rows drawn uniformly from the CSVs already imported (reservoir sampling)."""
    chosen = []
    seen = 0
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            next(handle)
            for line in handle:
                seen += 1
                if len(chosen) < count:
                    chosen.append(line)
                else:
                    j = int(random() * seen)
                    if j < count:
                        chosen[j] = line
    return [line.rstrip("\n").split(",") for line in chosen]


class Desk:
    """The registrations of one run, built before any is sent so building costs nothing measured."""

    def __init__(self, phase, seed, facilities, existing_rows):
        self.rng = Random(seed * 1000 + phase)
        self.random = self.rng.random
        # Slots 400+ are never used by the population; each phase takes its own 50.
        self.people = Population(seed * 1000 + phase, facilities, first_slot=400 + 50 * (phase - 1),
                                 last_slot=450 + 50 * (phase - 1))
        self.existing = existing_rows
        self.phase = phase
        self.sent = []
        self.serial = 0

    def local_id(self):
        self.serial += 1
        return "bench%d-%05d" % (self.phase, self.serial)

    @staticmethod
    def body(local_id, name, sex, birth, number, phone, division):
        body = {"localId": local_id, "name": name, "sex": "male" if sex == "M" else "female", "birthDate": birth,
                "division": division}
        if number:
            body["idNumber"] = number
        if phone:
            body["phone"] = phone
        return body

    def new_person(self):
        name, sex, birth, number, phone, division = self.people.person(with_id=True)
        return "new", self.body(self.local_id(), name, sex, birth, number, phone, division)

    def duplicate(self):
        _, _, name, sex, birth, number, phone, division = self.existing[int(self.random() * len(self.existing))]
        roll = self.random()
        if roll < 0.30:
            kind = "dup-exact"
        elif roll < 0.55:
            kind = "dup-homophone"
            positions = [i for i in range(1, len(name)) if name[i] in HOMOPHONE_OF]
            if positions:
                i = positions[int(self.random() * len(positions))]
                others = [c for c in HOMOPHONE_OF[name[i]] if c != name[i]]
                name = name[:i] + others[int(self.random() * len(others))] + name[i + 1:]
            else:
                kind = "dup-exact"
        elif roll < 0.75:
            kind = "dup-no-id"
            number = ""
        elif roll < 0.90:
            kind = "dup-new-phone"
            phone = self.people.phone()
        else:
            kind = "dup-typo"
            characters = self.people.male_characters if sex == "M" else self.people.female_characters
            i = len(name) - 1
            name = name[:i] + characters[int(self.random() * len(characters))]
        return kind, self.body(self.local_id(), name, sex, birth, number, phone, division)

    def next(self):
        roll = self.random()
        if roll < 0.10 and self.sent:
            return "resend", self.sent[int(self.random() * len(self.sent))]
        kind, body = self.new_person() if roll < 0.50 else self.duplicate()
        self.sent.append(body)
        return kind, body


def main():
    parser = argparse.ArgumentParser(description="Registration latency through POST /api/v1/residents.")
    parser.add_argument("--url", required=True, help="base URL of the service, e.g. http://127.0.0.1:8080")
    parser.add_argument("--phase", type=int, default=1, choices=range(1, 9),
                        help="run number: local ids and new people differ per phase")
    parser.add_argument("--label", default="", help="first column of the printed row (e.g. the resident count)")
    parser.add_argument("--count", type=int, default=300, help="measured registrations (default 300)")
    parser.add_argument("--warmup", type=int, default=10, help="registrations sent first and not measured")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--facilities", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                             "fixtures", "demo", "facilities.json"))
    parser.add_argument("csv", nargs="+", help="population files already imported (duplicates come from them)")
    args = parser.parse_args()
    token = os.environ.get("QY_TOKEN")
    if not token:
        parser.error("set QY_TOKEN to a bearer token of a HIS client")

    desk = Desk(args.phase, args.seed, load_facilities(args.facilities), sample_rows(args.csv, 2000, Random(args.seed).random))
    requests = [desk.next() for _ in range(args.warmup + args.count)]

    url = urllib.parse.urlsplit(args.url)
    connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json", "Accept": "application/json"}
    latencies = []
    outcomes = {"created": 0, "linked": 0, "review": 0, "existing": 0}
    errors = {}
    by_kind = {}
    for number, (kind, body) in enumerate(requests):
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        started = time.perf_counter()
        try:
            connection.request("POST", "/api/v1/residents", body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            # A dropped connection counts as an error; the next request reconnects.
            connection.close()
            errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
            continue
        elapsed = time.perf_counter() - started
        if number < args.warmup:
            continue
        latencies.append(elapsed * 1000)
        if 200 <= response.status < 300:
            match = json.loads(data).get("match", {}).get("kind", "?")
            outcomes[match] = outcomes.get(match, 0) + 1
            by_kind.setdefault(kind, {}).setdefault(match, 0)
            by_kind[kind][match] += 1
        else:
            try:
                problem = json.loads(data).get("type", "").rsplit(":", 1)[-1]
            except ValueError:
                problem = ""
            key = f"{response.status} {problem}".strip()
            if key not in errors:
                print(f"registry_register: first {key} for a {kind} registration: {data[:300]!r}", file=sys.stderr)
            errors[key] = errors.get(key, 0) + 1
    connection.close()

    latencies.sort()
    p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
    error_count = sum(errors.values())
    print(f"registry_register: {args.label}: {len(latencies)} registrations, p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
          f"p99 {p99:.1f} ms, max {latencies[-1] if latencies else float('nan'):.1f} ms; outcomes {outcomes}"
          + (f"; errors {errors}" if errors else ""), file=sys.stderr)
    print("registry_register: outcome by what was sent: "
          + "; ".join(f"{kind} → {dict(sorted(v.items()))}" for kind, v in sorted(by_kind.items())), file=sys.stderr)
    print(f"| {args.label} | {len(latencies)} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {outcomes['created']} | "
          f"{outcomes['linked']} | {outcomes['review']} | {outcomes['existing']} | {error_count} |")
    # Most requests failing means a broken setup, not a slow service: fail so the caller stops.
    if error_count * 2 > args.count:
        sys.exit(1)


if __name__ == "__main__":
    main()
