#!/usr/bin/env python3
"""ADT messages for bench/hl7-ingest, as a HIS sends them: HL7 v2.4 ER7, one message after another.

Mostly registrations of new patients (ADT^A04, 70%) and updates of patients registered earlier in
the same file (ADT^A08 with a new phone number, 30%), from the demo facilities, with the synthetic
Guizhou population of registry_population.py (valid identity numbers, Chinese names). Control IDs
start with PREFIX, so runs never resend one another's messages.

Usage: hl7_adt_messages.py --count N --prefix P [--seed S] [--slot K] FILE
  --slot picks a disjoint range of identity-number slots, so runs never register the same person.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_population import Population, load_facilities  # noqa: E402


def message(trigger, control, facility, local_id, person):
    name, sex, birth, number, phone, division = person
    ids = "%s^^^%s^PI" % (local_id, facility) + ("~%s^^^CHN^NNCHN" % number if number else "")
    return "\r".join([
        "MSH|^~\\&|HIS|%s|QIANYUN|GZ|20261125083000||ADT^%s^ADT_A01|%s|P|2.4|||||CHN|UNICODE UTF-8" % (facility, trigger, control),
        "EVN|%s|20261125083000" % trigger,
        "PID|1||%s||%s^%s||%s|%s|||^^^^^^H^^%s||%s" % (
            ids, name[0], name[1:], birth.replace("-", ""), sex, division, ("^PRN^CP^^^^" + phone) if phone else ""),
        "PV1|1|O",
    ]) + "\r"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--slot", type=int, default=0)
    parser.add_argument("file")
    options = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    facilities = load_facilities(os.path.join(root, "fixtures", "demo", "facilities.json"))
    population = Population(options.seed, facilities, first_slot=options.slot * 8, last_slot=options.slot * 8 + 8)
    random = population.random
    registered = []
    with open(options.file, "w", encoding="utf-8") as out:
        for n in range(options.count):
            control = "%s-%d" % (options.prefix, n)
            if registered and random() < 0.3:
                facility, local_id, person = registered[int(random() * len(registered))]
                person = person[:4] + (population.phone(),) + person[5:]
                out.write(message("A08", control, facility, local_id, person))
            else:
                facility = facilities[population.facility_table[int(random() * len(population.facility_table))]][0]
                local_id = "%s%07d" % (options.prefix, n)
                person = population.person()
                registered.append((facility, local_id, person))
                out.write(message("A04", control, facility, local_id, person))


if __name__ == "__main__":
    main()
