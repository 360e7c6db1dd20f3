#!/usr/bin/env python3
"""ADT^A01 admissions with diagnoses for bench/surveillance, as a HIS sends them: HL7 v2.4 ER7.

Every message admits a new patient (synthetic Guizhou population of registry_population.py: valid
identity numbers, Chinese names) at one of the demo facilities, opens a visit (PV1-19) and carries
one to three DG1 segments with distinct ICD-10 codes. About 30 % of the diagnoses are notifiable
(a mix of the case definitions' common diseases: influenza, infectious diarrhoea, HFMD,
tuberculosis, hepatitis B, syphilis, ...), the rest everyday ones (hypertension, diabetes, URTI,
gastritis, ...); one diagnosis in five is a working diagnosis (DG1-6 'W', suspected), the rest
final ('F'). A message never carries two codes of one disease, so with detection on every
notifiable diagnosis must make exactly one case (each patient is new).

Prints one line for the benchmark: QY_DG1 messages diagnoses notifiable
Usage: hl7_dg1_messages.py --count N --prefix P [--seed S] [--slot K] FILE
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hl7_adt_messages import message as adt_message  # noqa: E402
from registry_population import Population, load_facilities  # noqa: E402

NOTIFIABLE = (
    ("J11.1", "流行性感冒", 30), ("A09.0", "感染性腹泻", 14), ("B08.4", "手足口病", 12), ("A15.0", "肺结核", 8),
    ("B18.1", "慢性乙型病毒性肝炎", 10), ("A51.9", "早期梅毒", 7), ("U07.1", "新型冠状病毒感染", 6),
    ("B26.9", "流行性腮腺炎", 3), ("B18.2", "慢性丙型病毒性肝炎", 3), ("A38", "猩红热", 2), ("A03.9", "细菌性痢疾", 2),
    ("B30.3", "急性出血性结膜炎", 2), ("A37.9", "百日咳", 1),
)
COMMON = (
    ("I10", "原发性高血压", 20), ("E11.9", "2型糖尿病", 9), ("J06.9", "急性上呼吸道感染", 15), ("K29.7", "胃炎", 7),
    ("J20.9", "急性支气管炎", 6), ("M54.5", "腰痛", 5), ("J02.9", "急性咽炎", 4), ("I25.1", "动脉粥样硬化性心脏病", 4),
    ("E78.5", "高脂血症", 4), ("N39.0", "泌尿道感染", 3), ("I63.9", "脑梗死", 3), ("L30.9", "皮炎", 3),
)
NOTIFIABLE_SHARE = 0.30


def expand(table):
    slots = []
    for code, name, weight in table:
        slots += [(code, name)] * weight
    return slots


def message(control, facility, local_id, person, visit, diagnoses):
    """hl7_adt_messages' ADT^A01, with the visit number (PV1-19) and the DG1 segments."""
    segments = adt_message("A01", control, facility, local_id, person).rstrip("\r").split("\r")
    segments[-1] = "PV1|1|O|||||||||||||||||%s" % visit
    for k, (code, display, certainty) in enumerate(diagnoses, start=1):
        segments.append("DG1|%d|ICD10|%s^%s^ICD10||20261201083000|%s|||||||||%s" % (k, code, display, certainty, "1" if k == 1 else ""))
    return "\r".join(segments) + "\r"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--slot", type=int, default=0)
    parser.add_argument("file")
    options = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    facilities = load_facilities(os.path.join(root, "fixtures", "demo", "facilities.json"))
    population = Population(options.seed, facilities, first_slot=options.slot * 8, last_slot=options.slot * 8 + 8)
    random = population.random
    notifiable, common = expand(NOTIFIABLE), expand(COMMON)
    diagnoses_sent = notifiable_sent = 0
    with open(options.file, "w", encoding="utf-8") as out:
        for n in range(options.count):
            facility = facilities[population.facility_table[int(random() * len(population.facility_table))]][0]
            wanted = 1 + int(random() * 3)
            chosen = []
            while len(chosen) < wanted:
                table = notifiable if random() < NOTIFIABLE_SHARE else common
                code, display = table[int(random() * len(table))]
                if any(c == code for c, _, _ in chosen):
                    continue
                chosen.append((code, display, "W" if random() < 0.2 else "F"))
            diagnoses_sent += len(chosen)
            notifiable_sent += sum(1 for c, _, _ in chosen if any(c == code for code, _, _ in NOTIFIABLE))
            out.write(message("%s-%d" % (options.prefix, n), facility, "%s%07d" % (options.prefix, n), population.person(),
                              "%sV%07d" % (options.prefix, n), chosen))
    print("QY_DG1 %d %d %d" % (options.count, diagnoses_sent, notifiable_sent))


if __name__ == "__main__":
    main()
