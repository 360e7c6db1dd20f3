#!/usr/bin/env python3
"""ORU^R01 laboratory results for bench/record-read and bench/oru-ingest, as a LIS sends them:
HL7 v2.5 ER7, one message after another, from the demo facilities, for the synthetic Guizhou
population of registry_population.py (valid identity numbers, Chinese names).

Each message is one order (OBR, filler number in OBR-3) under a visit (PV1-19) with its results
(OBX, LOINC codes, NM values with units, reference ranges and H/L/N flags, OBX-14 times) from
four common panels: 血常规, 肝功能, 肾功能+血糖, 血脂+糖化.

Two kinds of file:

  timeline --orders N --results K [--noise M] FILE
      One resident's long record: N orders of K results each (K <= 10) at one facility over the
      five years up to yesterday (one to three orders a visit, PV1-44 the visit's start), and M
      orders of K results for M other patients at random facilities. The resident's first message
      goes to FILE.first (send it alone: it registers the resident), the rest to FILE, the
      resident's and the others' interleaved at random. Prints `QY_TIMELINE <facility> <local id>
      <codes, comma-separated>` (the codes in the resident's results, most frequent first).

  mix --count N --prefix P --slot S FILE
      N messages of 5 results each: ~70 % orders for patients new to the file (each registers a
      resident through the matcher), ~10 % new orders for patients of earlier messages, ~20 %
      corrections: the same order (OBR-3) resent with one or two results changed and marked 'C'
      after their earlier 'F', the rest resent 'F' unchanged. Earlier patients and corrected orders
      are drawn only from messages at least --lag (256) messages back, so that with round-robin
      sending on up to 32 connections the original has been applied before its correction
      arrives. Prints `QY_MIX <messages> <new patients> <earlier patients> <corrections>
      <corrected results>`.

Control ids, filler numbers, visit numbers and local ids start with the prefix; --slot picks a
disjoint range of identity-number slots, so files never register the same person.
"""
import argparse
import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_population import Population, load_facilities  # noqa: E402

# (panel code, panel name, [(LOINC, name, unit, low, high, decimals)]): ten results each.
PANELS = (
    ("CBC", "血常规", (
        ("6690-2", "白细胞计数", "10*9/L", 3.5, 9.5, 2),
        ("789-8", "红细胞计数", "10*12/L", 4.3, 5.8, 2),
        ("718-7", "血红蛋白", "g/L", 130, 175, 0),
        ("4544-3", "红细胞压积", "%", 40, 50, 1),
        ("777-3", "血小板计数", "10*9/L", 125, 350, 0),
        ("770-8", "中性粒细胞百分比", "%", 40, 75, 1),
        ("736-9", "淋巴细胞百分比", "%", 20, 50, 1),
        ("787-2", "平均红细胞体积", "fL", 82, 100, 1),
        ("785-6", "平均红细胞血红蛋白量", "pg", 27, 34, 1),
        ("786-4", "平均红细胞血红蛋白浓度", "g/L", 316, 354, 0),
    )),
    ("LFT", "肝功能", (
        ("1742-6", "丙氨酸氨基转移酶", "U/L", 9, 50, 0),
        ("1920-8", "天门冬氨酸氨基转移酶", "U/L", 15, 40, 0),
        ("1975-2", "总胆红素", "umol/L", 3.4, 20.5, 1),
        ("1968-7", "直接胆红素", "umol/L", 0, 6.8, 1),
        ("1751-7", "白蛋白", "g/L", 40, 55, 1),
        ("2885-2", "总蛋白", "g/L", 65, 85, 1),
        ("2324-2", "γ-谷氨酰转移酶", "U/L", 10, 60, 0),
        ("6768-6", "碱性磷酸酶", "U/L", 45, 125, 0),
        ("10834-0", "球蛋白", "g/L", 20, 40, 1),
        ("1759-0", "白球比", "", 1.2, 2.4, 2),
    )),
    ("RFT", "肾功能+血糖", (
        ("1558-6", "空腹血糖", "mmol/L", 3.9, 6.1, 2),
        ("2160-0", "肌酐", "umol/L", 57, 111, 0),
        ("3091-6", "尿素", "mmol/L", 3.1, 8.0, 2),
        ("3084-1", "尿酸", "umol/L", 208, 428, 0),
        ("2823-3", "钾", "mmol/L", 3.5, 5.3, 2),
        ("2951-2", "钠", "mmol/L", 137, 147, 1),
        ("2075-0", "氯", "mmol/L", 99, 110, 1),
        ("17861-6", "钙", "mmol/L", 2.11, 2.52, 2),
        ("2028-9", "二氧化碳结合力", "mmol/L", 22, 29, 1),
        ("33914-3", "估算肾小球滤过率", "mL/min/1.73m2", 90, 130, 0),
    )),
    ("LIP", "血脂+糖化", (
        ("2093-3", "总胆固醇", "mmol/L", 2.8, 5.2, 2),
        ("2571-8", "甘油三酯", "mmol/L", 0.45, 1.7, 2),
        ("2085-9", "高密度脂蛋白胆固醇", "mmol/L", 1.04, 1.55, 2),
        ("13457-7", "低密度脂蛋白胆固醇", "mmol/L", 1.5, 3.4, 2),
        ("1869-7", "载脂蛋白A1", "g/L", 1.0, 1.6, 2),
        ("1884-6", "载脂蛋白B", "g/L", 0.6, 1.1, 2),
        ("10835-7", "脂蛋白(a)", "mg/L", 0, 300, 0),
        ("4548-4", "糖化血红蛋白", "%", 4.0, 6.0, 1),
        ("2345-7", "葡萄糖", "mmol/L", 3.9, 6.1, 2),
        ("14749-6", "餐后2小时血糖", "mmol/L", 3.9, 7.8, 2),
    )),
)
# The timeline resident is a diabetic followed closely: glucose panels more often than the rest.
TIMELINE_PANEL_WEIGHTS = (2, 1, 3, 2)


def hl7_time(moment):
    return moment.strftime("%Y%m%d%H%M%S")


class Results:
    def __init__(self, random):
        self.random = random

    def value(self, test):
        """A value around the reference range: mostly normal, some high or low."""
        _, _, _, low, high, decimals = test
        span = high - low
        x = low + span * (self.random() * 1.4 - 0.2)
        x = max(x, 0.01 if decimals else 1)
        text = "%.*f" % (decimals, x)
        flag = "H" if float(text) > high else "L" if float(text) < low else "N"
        return text, flag

    def obx(self, set_id, test, status, when, value=None):
        code, name, unit, low, high, decimals = test
        text, flag = value or self.value(test)
        reference = "%.*f-%.*f" % (decimals, low, decimals, high)
        return "OBX|%d|NM|%s^%s^LN||%s|%s|%s|%s|||%s|||%s" % (
            set_id, code, name, text, unit, reference, flag, status, hl7_time(when))


def pid(facility, local_id, person):
    name, sex, birth, number, phone, division = person
    ids = "%s^^^%s^PI" % (local_id, facility) + ("~%s^^^CHN^NNCHN" % number if number else "")
    return "PID|1||%s||%s^%s||%s|%s|||^^^^^^H^^%s||%s" % (
        ids, name[0], name[1:], birth.replace("-", ""), sex, division, ("^PRN^CP^^^^" + phone) if phone else "")


def oru(control, facility, local_id, person, visit, admitted, filler, panel, ordered, obx_lines):
    """One ORU^R01: MSH, PID, PV1 (outpatient, visit number in PV1-19, its start in PV1-44), OBR, OBX…"""
    code, name, _ = panel
    sent = ordered + datetime.timedelta(hours=3)
    return "\r".join([
        "MSH|^~\\&|LIS|%s|QIANYUN|GZ|%s||ORU^R01^ORU_R01|%s|P|2.5|||||CHN|UNICODE UTF-8" % (facility, hl7_time(sent), control),
        pid(facility, local_id, person),
        "PV1|1|O|||||||||||||||||%s|||||||||||||||||||||||||%s" % (visit, hl7_time(admitted)),
        "OBR|1|P%s|%s|%s^%s^L|||%s" % (filler, filler, code, name, hl7_time(ordered)),
    ] + obx_lines) + "\r"


def timeline(options, population, facilities):
    random = population.random
    results = Results(random)
    facility = options.facility
    local_id = "%s0000001" % options.prefix
    person = population.person(with_id=True)
    panel_table = [i for i, w in enumerate(TIMELINE_PANEL_WEIGHTS) for _ in range(w)]
    counts = {}
    # Orders from about five years back to yesterday, one to three per visit.
    now = datetime.datetime.combine(datetime.date.today() - datetime.timedelta(days=1), datetime.time(8))
    span_days = 5 * 365
    visits = []
    remaining = options.orders
    while remaining > 0:
        n = min(remaining, 1 + int(random() * 3))
        visits.append(n)
        remaining -= n
    step = span_days / max(1, len(visits))
    mine, others = [], []
    order = 0
    for v, n in enumerate(visits):
        day = now - datetime.timedelta(days=span_days - v * step)
        day = day.replace(hour=7 + int(random() * 4), minute=int(random() * 60), second=int(random() * 60))
        visit = "%sV%06d" % (options.prefix, v)
        for k in range(n):
            panel = PANELS[panel_table[int(random() * len(panel_table))]]
            ordered = day + datetime.timedelta(minutes=7 * k)
            reported = ordered + datetime.timedelta(minutes=40 + int(random() * 140))
            tests = panel[2][:options.results]
            for test in tests:
                counts[test[0]] = counts.get(test[0], 0) + 1
            lines = [results.obx(i + 1, test, "F", reported) for i, test in enumerate(tests)]
            filler = "%sF%07d" % (options.prefix, order)
            mine.append(oru("%s-%d" % (options.prefix, order), facility, local_id, person, visit, day, filler, panel, ordered,
                            lines))
            order += 1
    # Other patients' results, one order each, at facilities weighted by size.
    for m in range(options.noise):
        other = facilities[population.facility_table[int(random() * len(population.facility_table))]][0]
        panel = PANELS[int(random() * len(PANELS))]
        ordered = now - datetime.timedelta(days=random() * span_days)
        reported = ordered + datetime.timedelta(minutes=40 + int(random() * 140))
        lines = [results.obx(i + 1, test, "F", reported) for i, test in enumerate(panel[2][:options.results])]
        others.append(oru("%sN-%d" % (options.prefix, m), other, "%sN%07d" % (options.prefix, m), population.person(),
                          "%sNV%06d" % (options.prefix, m), ordered, "%sNF%07d" % (options.prefix, m), panel, ordered, lines))
    # The resident's first message alone; then theirs and the others' interleaved at random (each
    # in its own order), so that the resident's rows are spread over the table as they would be.
    with open(options.file + ".first", "w", encoding="utf-8") as alone:
        alone.write(mine[0])
    with open(options.file, "w", encoding="utf-8") as out:
        i, j = 1, 0
        while i < len(mine) or j < len(others):
            left_mine, left_others = len(mine) - i, len(others) - j
            if random() * (left_mine + left_others) < left_mine:
                out.write(mine[i])
                i += 1
            else:
                out.write(others[j])
                j += 1
    codes = sorted(counts, key=lambda c: (-counts[c], c))
    print("QY_TIMELINE %s %s %s" % (facility, local_id, ",".join(codes)))


def mix(options, population, facilities):
    random = population.random
    results = Results(random)
    now = datetime.datetime.combine(datetime.date.today() - datetime.timedelta(days=1), datetime.time(8))
    patients = []  # (facility, local id, person, message index of first appearance)
    orders = []  # (message index, patient, visit, filler, panel, ordered, [(test, value)], corrected)
    new = earlier = corrections = corrected_results = 0
    eligible_orders = eligible_patients = 0
    with open(options.file, "w", encoding="utf-8") as out:
        for n in range(options.count):
            control = "%s-%d" % (options.prefix, n)
            while eligible_orders < len(orders) and orders[eligible_orders][0] <= n - options.lag:
                eligible_orders += 1
            draw = random()
            if draw < 0.2 and eligible_orders:
                # A correction: a not yet corrected order, resent whole; one or two results 'C'.
                for _ in range(20):
                    index = int(random() * eligible_orders)
                    if not orders[index][7]:
                        break
                else:
                    index = None
                if index is not None:
                    _, patient, visit, filler, panel, ordered, tested, _ = orders[index]
                    orders[index] = orders[index][:7] + (True,)
                    changed = set()
                    while len(changed) < 1 + int(random() * 2):
                        changed.add(int(random() * len(tested)))
                    reported = ordered + datetime.timedelta(hours=5 + random() * 20)
                    lines = []
                    for i, (test, value) in enumerate(tested):
                        if i in changed:
                            new_value = results.value(test)
                            while new_value[0] == value[0]:
                                new_value = results.value(test)
                            lines.append(results.obx(i + 1, test, "C", reported, new_value))
                        else:
                            lines.append(results.obx(i + 1, test, "F", ordered + datetime.timedelta(hours=1), value))
                    facility, local_id, person, _ = patient
                    out.write(oru(control, facility, local_id, person, visit, ordered, filler, panel, ordered, lines))
                    corrections += 1
                    corrected_results += len(changed)
                    continue
            while eligible_patients < len(patients) and patients[eligible_patients][3] <= n - options.lag:
                eligible_patients += 1
            if draw < 0.3 and eligible_patients:
                patient = patients[int(random() * eligible_patients)]
                earlier += 1
            else:
                facility = facilities[population.facility_table[int(random() * len(population.facility_table))]][0]
                patient = (facility, "%s%07d" % (options.prefix, n), population.person(), n)
                patients.append(patient)
                new += 1
            facility, local_id, person, _ = patient
            panel = PANELS[int(random() * len(PANELS))]
            # Five of the panel's ten results, in panel order.
            chosen = sorted(range(len(panel[2])), key=lambda _: random())[:5]
            tested = [(panel[2][i], results.value(panel[2][i])) for i in sorted(chosen)]
            ordered = now - datetime.timedelta(days=random() * 30, minutes=int(random() * 600))
            visit = "%sV%07d" % (options.prefix, n)
            filler = "%sF%07d" % (options.prefix, n)
            lines = [results.obx(i + 1, test, "F", ordered + datetime.timedelta(hours=1), value)
                     for i, (test, value) in enumerate(tested)]
            out.write(oru(control, facility, local_id, person, visit, ordered, filler, panel, ordered, lines))
            orders.append((n, patient, visit, filler, panel, ordered, tested, False))
    print("QY_MIX %d %d %d %d %d" % (options.count, new, earlier, corrections, corrected_results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    one = sub.add_parser("timeline")
    one.add_argument("--orders", type=int, required=True)
    one.add_argument("--results", type=int, default=10)
    one.add_argument("--noise", type=int, default=0)
    one.add_argument("--facility", default="5201020001")
    one.add_argument("--prefix", default="TL")
    one.add_argument("--seed", type=int, default=20261201)
    one.add_argument("file")
    many = sub.add_parser("mix")
    many.add_argument("--count", type=int, required=True)
    many.add_argument("--prefix", required=True)
    many.add_argument("--slot", type=int, default=0)
    many.add_argument("--lag", type=int, default=256)
    many.add_argument("--seed", type=int, default=20261201)
    many.add_argument("file")
    options = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    facilities = load_facilities(os.path.join(root, "fixtures", "demo", "facilities.json"))
    if options.mode == "timeline":
        if not 1 <= options.results <= 10:
            parser.error("--results must be from 1 to 10")
        population = Population(options.seed, facilities, first_slot=0, last_slot=8)
        timeline(options, population, facilities)
    else:
        population = Population(options.seed + options.slot, facilities,
                                first_slot=8 + options.slot * 8, last_slot=16 + options.slot * 8)
        mix(options, population, facilities)


if __name__ == "__main__":
    main()
