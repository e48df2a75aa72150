#!/usr/bin/env python3
"""The report of scripts/bench: medians of the samples one run measured, one
table row per measure (Rapport, its baseline from the same run, the ratio,
the goal, met or not), and the same as JSON for comparing commits.

usage: report.py SAMPLES.tsv META.json OUT.json [--json]

SAMPLES.tsv holds one line per repetition: KEY, SIDE (rapport | baseline),
VALUE, tab-separated (warm-up runs are not in it). Only the measures with
samples are reported. Nothing here is estimated: a number printed is the
median of numbers measured (the lower middle one when there is an even
count, so that it is one of them), and a ratio is the ratio of the two.
"""

import json
import statistics
import sys

# key: (workload, what is measured, unit, goal). A goal is (kind, value,
# scales): kind "ratio<=" / "ratio>=" compares Rapport / baseline, "<=" and
# ">=" Rapport's own value; a goal that scales is multiplied by --scale (a
# time for a million rows takes a tenth at 0.1).
MEASURES = {
    "import.customers": ("import", "rapport import customers (CSV) vs. bare CSV insert loop", "s",
                         ("<=", 60.0, True)),
    "import.events": ("import", "rapport import events (JSON Lines) vs. bare insert loop", "s", None),
    "dispatch.events": ("dispatch", "events to one Lua handler writing a row vs. bare insert loop",
                        "s", None),
    "dispatch.import_and_dispatch": ("dispatch", "import + dispatch vs. bare insert loop", "s",
                                     ("ratio<=", 2.0, False)),
    "ingest.rate": ("ingest", "POST /v1/batch, events accepted/s vs. bare insert loop rows/s",
                    "/s", ("ratio>=", 0.5, False)),
    "ingest.rate_abs": ("ingest", "POST /v1/batch, events accepted/s", "/s", (">=", 200000, False)),
    "ingest.handled": ("ingest", "... and handled by the Lua handler, events/s", "/s", None),
    "read.rps": ("read", "GET /v1/customers/{id} requests/s vs. nginx static file", "/s",
                 ("ratio>=", 0.6, False)),
    "read.p99": ("read", "GET /v1/customers/{id} p99 vs. nginx", "ms", ("<=", 5.0, False)),
    "read.uncached_rps": ("read", "... view cache off, requests/s vs. nginx", "/s", None),
    "segments.eval": ("segments", "4-predicate segment, full evaluation vs. hand-written SQL", "ms",
                      ("ratio<=", 1.5, False)),
    "segments.incremental": ("segments", "incremental re-evaluation, customers/s", "/s",
                             (">=", 100000, False)),
    "segments.rebuild": ("segments", "rebuild (define), customers/s", "/s", None),
    "segments.per_event": ("segments", "purchases re-evaluated one by one, events/s", "/s", None),
    "segments.scores": ("segments", "nightly scores (facts, RFM, stages)", "s", None),
    "loyalty.nightly": ("loyalty", "nightly expire + tiers jobs vs. bare UPDATE of the members", "s",
                        ("<=", 2.0, True)),
    "loyalty.nightly_wall": ("loyalty", "... wall time of the two `rapport jobs run`", "s", None),
    "loyalty.awards": ("loyalty", "purchases through a Lua earning rule, events/s", "/s",
                       (">=", 100000, False)),
    "scheduler.fire": ("scheduler", "one-shot jobs due at once, fired and recorded (serve) vs. bare loop",
                       "s", ("<=", 10.0, True)),
    "footprint.rss": ("footprint", "idle RSS of rapport serve, all bundled plugins vs. bare server",
                      "MB", ("<=", 20.0, False)),
    "footprint.startup": ("footprint", "start to first served request vs. bare server", "ms",
                          ("<=", 100.0, False)),
    "responsiveness.p99": ("responsiveness",
                           "GET /v1/customers/{id} p99 during the nightly loyalty jobs vs. idle",
                           "ms", ("<=", 20.0, False)),
    "responsiveness.during": ("responsiveness", "... share of the reads' time the jobs ran", "%",
                              None),
    "responsiveness.rps": ("responsiveness", "... requests/s during the jobs vs. idle", "/s", None),
}


def fmt(v, unit):
    if v is None:
        return ""
    if unit == "/s":
        return "{:,.0f}".format(v)
    if abs(v) >= 100:
        return "{:,.0f}".format(v)
    return "{:.3g}".format(v) if abs(v) < 10 else "{:.1f}".format(v)


def goal_text(goal, scale):
    if not goal:
        return ""
    kind, value, scales = goal
    if scales:
        value = value * scale
    if kind.startswith("ratio"):
        return "ratio %s %g" % (kind[5:], value)
    return "%s %s" % (kind, "{:,}".format(value) if value >= 1000 else "%g" % value)


def met(goal, scale, rapport, ratio):
    if not goal or rapport is None:
        return None
    kind, value, scales = goal
    if scales:
        value = value * scale
    x = ratio if kind.startswith("ratio") else rapport
    if x is None:
        return None
    return x <= value if kind.endswith("<=") else x >= value


def main():
    samples_path, meta_path, out_path = sys.argv[1:4]
    as_json = "--json" in sys.argv[4:]
    meta = json.load(open(meta_path))
    scale = float(meta.get("scale", 1))
    samples = {}
    for line in open(samples_path):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 3:
            continue
        key, side, value = parts
        samples.setdefault(key, {}).setdefault(side, []).append(float(value))
    rows = []
    for key, (workload, what, unit, goal) in MEASURES.items():
        s = samples.get(key)
        if not s:
            continue
        r = statistics.median_low(s["rapport"]) if s.get("rapport") else None
        b = statistics.median_low(s["baseline"]) if s.get("baseline") else None
        ratio = r / b if r is not None and b else None
        rows.append({"key": key, "workload": workload, "measure": what, "unit": unit,
                     "rapport": r, "baseline": b, "ratio": ratio,
                     "rapport_samples": s.get("rapport", []),
                     "baseline_samples": s.get("baseline", []),
                     "goal": goal_text(goal, scale), "met": met(goal, scale, r, ratio)})
    result = dict(meta, results=rows)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    if as_json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
        return
    print()
    print("scripts/bench, scale %g, median of %s run(s) after a warm-up, %s, %s"
          % (scale, meta.get("runs"), meta.get("commit", "?"), meta.get("date", "?")))
    head = ("workload", "measure", "Rapport", "baseline", "ratio", "goal", "")
    widths = [14, 72, 12, 12, 7, 16, 6]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for row in rows:
        verdict = {True: "met", False: "MISSED", None: ""}[row["met"]]
        unit = row["unit"]
        cells = (row["workload"], row["measure"] + " (%s)" % unit,
                 fmt(row["rapport"], unit), fmt(row["baseline"], unit),
                 "%.2f" % row["ratio"] if row["ratio"] is not None else "",
                 row["goal"], verdict)
        print("  ".join(str(c).ljust(w) if i < 2 or i >= 5 else str(c).rjust(w)
                        for i, (c, w) in enumerate(zip(cells, widths))))
    print("\nresults: %s" % out_path)


if __name__ == "__main__":
    main()
