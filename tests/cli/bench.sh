# bench.sh: scripts/bench at a tiny scale with the binaries of this build,
# every workload, so that the harness of the speed targets cannot rot: each
# workload runs (warm-up and one run), its checks hold (events handled,
# jobs recorded, answers 200) and the report gives a number for every
# measure, with its baseline where it has one. The sizes are too small for
# the numbers to mean anything: scripts/bench is the real run.
. "$(dirname "$0")/lib.sh" "$@"

ROOT=${RP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=$(dirname "$RAPPORT")
command -v wrk >/dev/null && command -v nginx >/dev/null \
  || fail "wrk and nginx are needed (scripts/setup installs them)"
out=$(TMPDIR="$TMP" "$ROOT/scripts/bench" --build "$BUILD" --scale 0.0004 --runs 1 --seconds 1 \
        --out "$TMP/report.json" --json 2>"$TMP/bench.err") \
  || { ERR=$(tail -30 "$TMP/bench.err"); fail "scripts/bench failed"; }
python3 - "$TMP/report.json" <<'PY' || fail "scripts/bench report: $(cat "$TMP/report.json")"
import json, sys
r = json.load(open(sys.argv[1]))
rows = {row["key"]: row for row in r["results"]}
with_baseline = ["import.customers", "import.events", "dispatch.events",
                 "dispatch.import_and_dispatch", "ingest.rate", "read.rps", "read.p99",
                 "read.uncached_rps", "segments.eval", "loyalty.nightly", "scheduler.fire",
                 "footprint.rss", "footprint.startup", "responsiveness.p99",
                 "responsiveness.rps"]
alone = ["ingest.rate_abs", "ingest.handled", "segments.incremental", "segments.rebuild",
         "segments.per_event", "segments.scores", "loyalty.nightly_wall", "loyalty.awards"]
for k in with_baseline + alone:
    assert k in rows, "no %s in the report" % k
    assert rows[k]["rapport"] > 0, (k, rows[k])
    assert len(rows[k]["rapport_samples"]) == 1, (k, "the warm-up was recorded")
for k in with_baseline:
    assert rows[k]["baseline"] > 0 and rows[k]["ratio"] > 0, (k, rows[k])
# At this size the nightly jobs take milliseconds: they ran during none of
# the second of reads, or some of it.
assert 0 <= rows["responsiveness.during"]["rapport"] <= 100, rows["responsiveness.during"]
assert r["sizes"]["customers"] == 400 and r["sizes"]["one_shots"] == 400, r["sizes"]
assert r["machine"]["cpus"] >= 1
PY
echo "bench: ok"
