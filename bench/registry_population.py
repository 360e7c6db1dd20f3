#!/usr/bin/env python3
"""Synthetic Guizhou population for bench/registry, as a CSV that `qianyun import residents` reads:

    facility,local_id,name,sex,birth_date,id_number,phone,division

Realistic enough for the matcher's blocking keys to see real fan-out: surnames weighted by
frequency, one or two given-name characters from a few hundred common ones, valid GB 11643
numbers (unique, consistent with birth date and sex), 10% without a number, 10% without a phone.
Deterministic for a given seed; pure standard library; about ten seconds for a million rows.

Usage: registry_population.py [--residents N] [--seed S] [--split K] FILE [REST_FILE]
  With REST_FILE, the first K rows go to FILE and the rest to REST_FILE, so a benchmark can load
  and measure at K residents before loading the rest.

bench/registry_register.py imports Population to make new people that collide with no row here.
"""
import argparse
import datetime
import json
import os
import sys
import time
from array import array
from random import Random

# GB 11643: ISO 7064 MOD 11-2 over the first 17 digits.
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARACTERS = "10X98765432"

# Guizhou counties and districts (GB/T 2260), including those of the demo facilities.
DIVISIONS = (
    "520102", "520103", "520111", "520112", "520113", "520115", "520181", "520201", "520302", "520402",
    "520502", "520602", "522301", "522601", "522634", "522701",
)

FIRST_BIRTH = datetime.date(1930, 1, 1)
LAST_BIRTH = datetime.date(2025, 12, 31)

HEADER = "facility,local_id,name,sex,birth_date,id_number,phone,division\n"

# Surnames with rough shares (per mille) in the national census, Guizhou's 龙/杨/吴/罗 a little
# heavier for its Miao and Dong families; a few compound surnames for the matcher's name split.
SURNAMES = (
    ("王", 71), ("李", 70), ("张", 66), ("刘", 54), ("陈", 45), ("杨", 36), ("黄", 22), ("赵", 21), ("吴", 24),
    ("周", 19), ("徐", 13), ("孙", 12), ("马", 12), ("朱", 11), ("胡", 11), ("郭", 11), ("何", 10), ("林", 10),
    ("高", 10), ("罗", 11), ("郑", 8), ("梁", 8), ("谢", 6), ("宋", 6), ("唐", 6), ("许", 5), ("韩", 5), ("冯", 5),
    ("邓", 5), ("曹", 5), ("彭", 5), ("曾", 5), ("肖", 5), ("田", 5), ("董", 4), ("袁", 4), ("潘", 4), ("于", 4),
    ("蒋", 4), ("蔡", 4), ("余", 4), ("杜", 4), ("叶", 4), ("程", 4), ("苏", 3), ("魏", 3), ("吕", 3), ("丁", 3),
    ("任", 3), ("沈", 3), ("姚", 3), ("卢", 3), ("姜", 3), ("崔", 3), ("钟", 3), ("谭", 3), ("陆", 3), ("汪", 3),
    ("范", 3), ("金", 3), ("石", 4), ("廖", 3), ("贾", 3), ("夏", 3), ("韦", 3), ("付", 3), ("方", 3), ("白", 2),
    ("邹", 2), ("孟", 2), ("熊", 3), ("秦", 2), ("邱", 2), ("江", 2), ("尹", 2), ("薛", 2), ("闫", 2), ("段", 2),
    ("雷", 2), ("侯", 2), ("龙", 6), ("史", 2), ("陶", 2), ("黎", 2), ("贺", 2), ("顾", 2), ("毛", 2), ("郝", 2),
    ("龚", 2), ("邵", 2), ("万", 2), ("钱", 2), ("严", 2), ("覃", 2), ("武", 2), ("戴", 2), ("莫", 2), ("孔", 2),
    ("向", 2), ("汤", 2), ("欧阳", 1), ("司马", 1), ("诸葛", 1), ("上官", 1),
)

# Given-name characters: mostly men's, mostly women's, and either (a name draws from its sex's
# list and the shared one, so the population has the usual 志强/丽娟 flavour without being rigid).
MALE_CHARACTERS = (
    "伟强磊军勇杰涛超明刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林阳成建国峰亮东海志兵彬博锋坤鸿庆贵福荣祥"
    "德安全永新生力勤军毅刚武胜利江河山松柏栋梁豪杰威振泽洪涛浩瀚铭轩皓晟睿哲昊翔宏达恒广远兴发富贵昌盛"
    "忠孝仁义礼智信诚良友茂才彪虎雄"
)
FEMALE_CHARACTERS = (
    "芳娜敏静丽艳娟霞秀英梅兰红玲燕萍琴雪莉婷琳慧颖倩洁欣怡萱涵月悦妍瑶琪雯蕾晶露凤翠珍芬菊桂香美素雅彤"
    "诗梦蓉薇菲婉娴淑惠贞莲荷蝶黛曼媛姗娅嫣妮琼瑾璐瑜琬馨蕊茜芸芝"
)
SHARED_CHARACTERS = "子雨晓嘉一天文小春秋金玉思佳家俊晨宇清云丹青雪华光明正心安永红艳平黔筑"

# Common leading digits of mainland mobile numbers after the 1 (13x, 15x, 18x dominate).
MOBILE_SECOND = "3333355555888887799964"


def check_character(body):
    """The 18th character of a GB 11643 number from its first 17 digits."""
    return CHECK_CHARACTERS[sum(int(d) * w for d, w in zip(body, WEIGHTS)) % 11]


def load_facilities(path):
    """(code, division, weight) of each demo facility: big hospitals see more patients."""
    with open(path, encoding="utf-8") as handle:
        facilities = json.load(handle)
    weight = {"tertiary": 6, "secondary": 4, "community": 2, "township": 2, "village": 1}
    return [(f["code"], f["division"], weight.get(f.get("level"), 2)) for f in facilities]


class Population:
    """A deterministic stream of people.

    Identity numbers are unique by construction: each (division, birth date, sex) has its own
    counter of sequence slots, slot k giving sequence 2k+1 (men) or 2k+2 (women). The population
    uses slots from `first_slot` up to `last_slot`; a later user (the registration driver) takes a
    disjoint range, so its "new" people never collide with a row here.
    """

    def __init__(self, seed, facilities, first_slot=0, last_slot=400):
        self.random = Random(seed).random
        self.first_slot = first_slot
        self.last_slot = last_slot
        self.facilities = facilities
        self.facility_table = [i for i, (_, _, weight) in enumerate(facilities) for _ in range(weight)]
        self.local_counters = [0] * len(facilities)
        self.division_index = {code: i for i, code in enumerate(DIVISIONS)}
        self.surname_table = [name for name, share in SURNAMES for _ in range(share)]
        self.male_characters = MALE_CHARACTERS + SHARED_CHARACTERS
        self.female_characters = FEMALE_CHARACTERS + SHARED_CHARACTERS

        # Everything the check character needs, summed per part once: division, date, sequence.
        self.division_sums = [sum(int(d) * w for d, w in zip(code, WEIGHTS[0:6])) for code in DIVISIONS]
        days = (LAST_BIRTH - FIRST_BIRTH).days + 1
        self.days = days
        self.iso_dates = []
        self.digit_dates = []
        self.date_sums = []
        for offset in range(days):
            day = FIRST_BIRTH + datetime.timedelta(days=offset)
            digits = day.strftime("%Y%m%d")
            self.iso_dates.append(day.isoformat())
            self.digit_dates.append(digits)
            self.date_sums.append(sum(int(d) * w for d, w in zip(digits, WEIGHTS[6:14])))
        self.sequence_text = ["%03d" % n for n in range(1000)]
        self.sequence_sums = [sum(int(d) * w for d, w in zip("%03d" % n, WEIGHTS[14:17])) for n in range(1000)]
        # Slots used so far per (division, day, sex): two bytes each, under 2 MB in all.
        self.slots = array("H", bytes(2 * len(DIVISIONS) * days * 2))

    def name(self, male):
        r = self.random
        table = self.surname_table
        characters = self.male_characters if male else self.female_characters
        n = len(characters)
        given = characters[int(r() * n)]
        # Three in four given names have two characters.
        if r() < 0.75:
            given += characters[int(r() * n)]
        return table[int(r() * len(table))] + given

    def phone(self):
        r = self.random
        return "1" + MOBILE_SECOND[int(r() * len(MOBILE_SECOND))] + "%09d" % int(r() * 1_000_000_000)

    def identity(self, division, day, male):
        """A unique valid number for the person, or None once the slots of that day are used up."""
        index = ((division * self.days + day) << 1) | male
        slot = self.first_slot + self.slots[index]
        if slot >= self.last_slot:
            return None
        self.slots[index] += 1
        sequence = 2 * slot + (1 if male else 2)
        total = self.division_sums[division] + self.date_sums[day] + self.sequence_sums[sequence]
        return DIVISIONS[division] + self.digit_dates[day] + self.sequence_text[sequence] + CHECK_CHARACTERS[total % 11]

    def person(self, home=None, with_id=None):
        """(name, sex M/F, birth date, id number or "", phone or "", division).

        `home`: a division the person lives in with 60% chance (their facility's); `with_id`
        forces a number (True) or its absence (False); by default 10% have none.
        """
        r = self.random
        male = 1 if r() < 0.5 else 0
        if home is not None and home in self.division_index and r() < 0.6:
            division = self.division_index[home]
        else:
            division = int(r() * len(DIVISIONS))
        day = int(r() * self.days)
        has_id = (r() >= 0.10) if with_id is None else with_id
        number = ""
        if has_id:
            # A full day (only reachable at hundreds of millions of rows) moves to another day.
            while (number := self.identity(division, day, male)) is None:
                day = int(r() * self.days)
        phone = self.phone() if r() >= 0.10 else ""
        return self.name(male), "M" if male else "F", self.iso_dates[day], number, phone, DIVISIONS[division]

    def row(self):
        """One CSV line: the person at a facility, with that facility's next local id."""
        r = self.random
        facility = self.facility_table[int(r() * len(self.facility_table))]
        code, home, _ = self.facilities[facility]
        self.local_counters[facility] += 1
        name, sex, birth, number, phone, division = self.person(home)
        return "%s,P%08d,%s,%s,%s,%s,%s,%s\n" % (
            code, self.local_counters[facility], name, sex, birth, number, phone, division)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residents", type=int, default=1_000_000, help="rows in all (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--split", type=int, default=100_000, help="rows in FILE when REST_FILE is given")
    parser.add_argument("--facilities", default=os.path.join(here, "..", "fixtures", "demo", "facilities.json"),
                        help="JSON list of facilities with code, division and level")
    parser.add_argument("file")
    parser.add_argument("rest_file", nargs="?")
    args = parser.parse_args()
    if args.residents < 1 or args.split < 1:
        parser.error("--residents and --split must be positive")

    started = time.monotonic()
    population = Population(args.seed, load_facilities(args.facilities))
    first = min(args.split, args.residents) if args.rest_file else args.residents
    outputs = [(args.file, first)]
    if args.rest_file:
        outputs.append((args.rest_file, args.residents - first))
    row = population.row
    for path, count in outputs:
        with open(path, "w", encoding="utf-8", newline="") as out:
            out.write(HEADER)
            # Chunks of lines: one write per 10,000 rows keeps the loop in Python string joins.
            done = 0
            while done < count:
                chunk = min(10_000, count - done)
                out.write("".join([row() for _ in range(chunk)]))
                done += chunk
    print(f"registry_population: {args.residents:,} rows in {time.monotonic() - started:.1f} s → "
          + ", ".join(f"{path} ({count:,})" for path, count in outputs), file=sys.stderr)


if __name__ == "__main__":
    main()
