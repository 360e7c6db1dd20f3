#!/usr/bin/env python3
"""Synthetic CDA R2 outpatient documents (门诊病历) for bench/cda-ingest, in the XML shape of the
test helper `CDASamples.document(...)` (Tests/QianyunTests/ClinicalXMLTests.swift): the same
header, a lab section with one battery of 3 to 8 results (LOINC codes, PQ values, H/L/N flags,
reference ranges) and a diagnosis section with one or two ICD-10 (国家临床版) codes.

What varies per document: the document id and setId (root 2.16.156.10011.1.1), the times, the
results and diagnoses; per patient: the facility patient id (root 2.16.156.10011.1.12), a valid
and unique GB 11643 identity number (root 2.16.156.10011.1.3, consistent with birth date and
sex), the name, sex, birth date and phone, all from bench/registry_population.py's Population.
About 60 % of a set's documents are for a patient new to that set, the rest for one it already
had (the master patient index then finds the facility's id already linked).

Usage: cda_documents.py [--seed S] [--facility CODE] SET=COUNT... OUTPUT_DIR
  Writes OUTPUT_DIR/SET/000001.xml ... for each SET (its name also prefixes its ids), so each
  set has its own patients and ids, and prints one line per set: SET documents bytes patients.
Deterministic for a given seed; pure standard library.
"""
import argparse
import json
import os
import sys
from random import Random

from registry_population import Population, load_facilities

# (LOINC, display name, unit, low, high, decimals): common outpatient chemistry and blood counts.
LAB_TESTS = (
    ("1558-6", "空腹血糖", "mmol/L", 3.9, 6.1, 1),
    ("4548-4", "糖化血红蛋白", "%", 4.0, 6.0, 1),
    ("2093-3", "总胆固醇", "mmol/L", 2.8, 5.2, 2),
    ("2571-8", "甘油三酯", "mmol/L", 0.56, 1.7, 2),
    ("2085-9", "高密度脂蛋白胆固醇", "mmol/L", 1.04, 1.55, 2),
    ("13457-7", "低密度脂蛋白胆固醇", "mmol/L", 1.5, 3.4, 2),
    ("2160-0", "肌酐", "umol/L", 57, 111, 0),
    ("3091-6", "尿素", "mmol/L", 2.9, 8.2, 1),
    ("3084-1", "尿酸", "umol/L", 208, 428, 0),
    ("1742-6", "丙氨酸氨基转移酶", "U/L", 9, 50, 0),
    ("1920-8", "天门冬氨酸氨基转移酶", "U/L", 15, 40, 0),
    ("718-7", "血红蛋白", "g/L", 130, 175, 0),
    ("6690-2", "白细胞计数", "10*9/L", 3.5, 9.5, 2),
    ("777-3", "血小板计数", "10*9/L", 125, 350, 0),
    ("2823-3", "血钾", "mmol/L", 3.5, 5.3, 2),
    ("2951-2", "血钠", "mmol/L", 137, 147, 0),
)

# ICD-10 codes of the national clinical version, as outpatient diagnoses.
DIAGNOSES = (
    ("E11.9", "2型糖尿病"), ("I10", "原发性高血压"), ("E78.5", "高脂血症"), ("K76.0", "脂肪肝"),
    ("M10.9", "痛风"), ("N18.9", "慢性肾脏病"), ("J06.9", "急性上呼吸道感染"), ("K21.9", "胃食管反流病"),
    ("D64.9", "贫血"), ("E87.6", "低钾血症"),
)

HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="CN"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <id root="2.16.156.10011.1.1" extension="{id}"/>
  <code code="C0032" codeSystem="2.16.156.10011.2.4" displayName="门(急)诊病历"/>
  <title>门诊病历</title>
  <effectiveTime value="{time}"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="zh-CN"/>
  <setId root="2.16.156.10011.1.1" extension="{set_id}"/>
  <versionNumber value="1"/>
  <recordTarget>
    <patientRole>
      <id root="2.16.156.10011.1.3" extension="{id_number}"/>
      <id root="2.16.156.10011.1.12" extension="{mrn}"/>
      <telecom value="tel:{phone}"/>
      <patient>
        <name>{name}</name>
        <administrativeGenderCode code="{sex_code}" codeSystem="2.16.156.10011.2.3.3.4" displayName="{sex_name}"/>
        <birthTime value="{birth}"/>
      </patient>
    </patientRole>
  </recordTarget>
  <author>
    <time value="{time}"/>
    <assignedAuthor>
      <id root="2.16.156.10011.1.4" extension="{doctor}"/>
      <assignedPerson><name>{doctor_name}</name></assignedPerson>
      <representedOrganization><id root="2.16.156.10011.1.5" extension="{facility}"/><name>{facility_name}</name></representedOrganization>
    </assignedAuthor>
  </author>
  <custodian>
    <assignedCustodian>
      <representedCustodianOrganization>
        <id root="2.16.156.10011.1.5" extension="{facility}"/>
        <name>{facility_name}</name>
      </representedCustodianOrganization>
    </assignedCustodian>
  </custodian>
  <component>
    <structuredBody>
      <component>
        <section>
          <code code="30954-2" codeSystem="2.16.840.1.113883.6.1" displayName="检验结果"/>
          <text>{lab_text}</text>
          <entry>
            <organizer classCode="BATTERY" moodCode="EVN">
              <statusCode code="completed"/>
"""

OBSERVATION = """              <component>
                <observation classCode="OBS" moodCode="EVN">
                  <id root="2.16.156.10011.1.6" extension="{lab_id}"/>
                  <code code="{loinc}" codeSystem="2.16.840.1.113883.6.1" displayName="{display}"/>
                  <statusCode code="completed"/>
                  <effectiveTime value="{time}"/>
                  <value xsi:type="PQ" value="{value}" unit="{unit}"/>
                  <interpretationCode code="{flag}" codeSystem="2.16.840.1.113883.5.83"/>
                  <referenceRange><observationRange><value xsi:type="IVL_PQ"><low value="{low}" unit="{unit}"/><high value="{high}" unit="{unit}"/></value></observationRange></referenceRange>
                </observation>
              </component>
"""

MIDDLE = """            </organizer>
          </entry>
        </section>
      </component>
      <component>
        <section>
          <code code="29548-5" codeSystem="2.16.840.1.113883.6.1" displayName="诊断"/>
"""

DIAGNOSIS = """          <entry>
            <observation classCode="OBS" moodCode="EVN">
              <code code="DE05.01.024.00" codeSystem="2.16.156.10011.2.2.1" displayName="诊断代码"/>
              <value xsi:type="CD" code="{code}" codeSystem="2.16.156.10011.2.3.3.11" displayName="{display}"/>
            </observation>
          </entry>
"""

FOOTER = """        </section>
      </component>
    </structuredBody>
  </component>
</ClinicalDocument>
"""

DOCTOR_NAMES = ("李医生", "王医生", "张医生", "刘医生", "陈医生", "杨医生", "吴医生", "罗医生")


def number(value, decimals):
    return "%.*f" % (decimals, value)


def document(rng, prefix, serial, patient, facility, facility_name):
    """One document's text for `patient` = (mrn, name, sex, birth iso, id number, phone)."""
    mrn, name, sex, birth, id_number, phone = patient
    day = 1 + int(rng() * 30)
    hour, minute = 8 + int(rng() * 9), int(rng() * 60)
    time = "202611%02d%02d%02d00+0800" % (day, hour, minute)
    drawn = "202611%02d%02d%02d00+0800" % (day, hour - 1 if hour > 8 else 7, minute)
    tests = rng_sample(rng, LAB_TESTS, 3 + int(rng() * 6))
    observations, summary = [], []
    for k, (loinc, display, unit, low, high, decimals) in enumerate(tests, 1):
        # Mostly within range, a quarter high, a tenth low.
        draw = rng()
        span = high - low
        if draw < 0.25:
            value, flag = high + span * (0.05 + rng() * 0.6), "H"
        elif draw < 0.35:
            value, flag = low * (0.5 + rng() * 0.4), "L"
        else:
            value, flag = low + span * (0.05 + rng() * 0.9), "N"
        text = number(value, decimals)
        summary.append(f"{display} {text} {unit}")
        observations.append(OBSERVATION.format(
            lab_id=f"{prefix}-LAB-{serial:07d}-{k}", loinc=loinc, display=display, time=drawn, value=text, unit=unit,
            flag=flag, low=number(low, decimals), high=number(high, decimals)))
    diagnoses = rng_sample(rng, DIAGNOSES, 1 + (rng() < 0.4))
    male = sex == "M"
    return "".join([
        HEADER.format(
            id=f"{prefix}-DOC-{serial:07d}", set_id=f"{prefix}-SET-{serial:07d}", time=time, id_number=id_number, mrn=mrn,
            phone=phone, name=name, sex_code="1" if male else "2", sex_name="男性" if male else "女性",
            birth=birth.replace("-", ""), doctor="D%03d" % (1 + int(rng() * 40)),
            doctor_name=DOCTOR_NAMES[int(rng() * len(DOCTOR_NAMES))], facility=facility, facility_name=facility_name,
            lab_text="；".join(summary)),
        *observations,
        MIDDLE,
        *(DIAGNOSIS.format(code=code, display=display) for code, display in diagnoses),
        FOOTER,
    ])


def rng_sample(rng, items, count):
    """`count` distinct items in a random order, drawn with the stream's own random()."""
    pool = list(items)
    chosen = []
    for _ in range(min(count, len(pool))):
        chosen.append(pool.pop(int(rng() * len(pool))))
    return chosen


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--facility", default="5201020001", help="the sending facility's code (the HIS client's)")
    parser.add_argument("--facilities", default=os.path.join(here, "..", "fixtures", "demo", "facilities.json"))
    parser.add_argument("--new-patients", type=float, default=0.6, help="share of documents for a patient new to the set")
    parser.add_argument("sets", nargs="+", metavar="SET=COUNT")
    parser.add_argument("output")
    args = parser.parse_args()

    facilities = load_facilities(args.facilities)
    with open(args.facilities, encoding="utf-8") as handle:
        names = {f["code"]: f["name"] for f in json.load(handle)}
    if args.facility not in names:
        parser.error(f"no facility {args.facility} in {args.facilities}")
    home = next(division for code, division, _ in facilities if code == args.facility)
    # One Population for every set: identity numbers are unique across all of them.
    people = Population(args.seed, facilities)
    rng = Random(args.seed + 1).random
    mrn_serial = 0
    for spec in args.sets:
        prefix, _, count_text = spec.partition("=")
        if not prefix or not count_text.isdigit() or int(count_text) < 1:
            parser.error(f"sets are NAME=COUNT, not '{spec}'")
        folder = os.path.join(args.output, prefix)
        os.makedirs(folder, exist_ok=True)
        patients = []
        total = 0
        for serial in range(1, int(count_text) + 1):
            if not patients or rng() < args.new_patients:
                name, sex, birth, id_number, phone, _ = people.person(home, with_id=True)
                mrn_serial += 1
                patients.append(("MRN%08d" % mrn_serial, name, sex, birth, id_number, phone or people.phone()))
                patient = patients[-1]
            else:
                patient = patients[int(rng() * len(patients))]
            data = document(rng, prefix, serial, patient, args.facility, names[args.facility]).encode("utf-8")
            total += len(data)
            with open(os.path.join(folder, "%06d.xml" % serial), "wb") as out:
                out.write(data)
        print(f"{prefix} {count_text} {total} {len(patients)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
