#!/usr/bin/env python3
"""The peer in the matching-quality benchmark: Python `recordlinkage`, used as its documentation
shows (blocking index, field comparisons, then the unsupervised ECM classifier and the simple
"sum of agreements" rule), on the same registry and registrations as Qianyun's matcher.
Usage: match_peer.py DIR   (DIR holds registry.csv and incoming.csv from qianyun-match-bench --out)
"""
import sys

import pandas as pd
import recordlinkage

directory = sys.argv[1]
columns = {"name": str, "id": str, "phone": str, "division": str, "birth": str, "address": str}
# Empty cells are read as missing (NaN): they never block together and compare as disagreement.
registry = pd.read_csv(f"{directory}/registry.csv", dtype=columns).set_index("rec_id")
incoming = pd.read_csv(f"{directory}/incoming.csv", dtype=columns).set_index("rec_id")

# Blocking: union of pairs sharing birth date, phone or ID number.
indexer = recordlinkage.Index()
indexer.block("birth")
indexer.block("phone")
indexer.block("id")
pairs = indexer.index(registry, incoming)

compare = recordlinkage.Compare()
compare.string("name", "name", method="jarowinkler", threshold=0.85, label="name")
compare.exact("birth", "birth", label="birth")
compare.exact("sex", "sex", label="sex")
compare.exact("id", "id", label="id")
compare.exact("phone", "phone", label="phone")
compare.exact("division", "division", label="division")
compare.exact("address", "address", label="address")
features = compare.compute(pairs, registry, incoming)
duplicates = int((incoming["kind"] == "duplicate").sum())


def evaluate(name, links):
    # One link per registration: the candidate with the most agreeing fields.
    best = links.groupby(level=1).idxmax() if len(links) else []
    tp = fp = twins = namesakes = 0
    for registration in (best.index if len(links) else []):
        resident = best[registration][0]
        if registry.loc[resident, "truth"] == incoming.loc[registration, "truth"]:
            tp += 1
        else:
            fp += 1
        kind = incoming.loc[registration, "kind"]
        twins += kind == "twin"
        namesakes += kind == "namesake"
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / duplicates
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    print(f"| {name} | {precision:.4f} | {recall:.4f} | {f1:.4f} | {twins} | {namesakes} | – |")


scores = features.sum(axis=1)
evaluate("peer: recordlinkage, sum of agreements ≥ 4 (docs' rule)", scores[scores >= 4])
ecm = recordlinkage.ECMClassifier()
matched = ecm.fit_predict(features)
evaluate("peer: recordlinkage ECM (unsupervised)", scores.loc[matched])
print(f"peer candidate pairs: {len(pairs)} for {len(incoming)} registrations")
