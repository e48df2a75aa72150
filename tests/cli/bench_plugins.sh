# bench_plugins.sh: scripts/bench-plugins at tiny sizes with this binary, so
# the harness of the bundled plugins' speed targets cannot rot: every
# workload runs and reports a number (the sizes are too small to mean
# anything; scripts/bench segments loyalty is the real run).
. "$(dirname "$0")/lib.sh" "$@"

ROOT=${RP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
out=$(TMPDIR="$TMP" "$ROOT/scripts/bench-plugins" segments loyalty --rapport "$RAPPORT" \
        --customers 300 --orders 200 --members 500 --runs 1 --json 2>"$TMP/bench.err") \
  || { ERR=$(cat "$TMP/bench.err"); fail "bench-plugins failed"; }
python3 - "$out" <<'PY' || fail "bench-plugins output: $out"
import json, sys
r = json.loads(sys.argv[1])
for k in ("seg_eval_ratio", "seg_incremental_per_s", "seg_rebuild_per_s", "seg_events_per_s",
          "seg_scores_s", "loy_awards_per_s", "loy_nightly_s", "loy_nightly_jobs_s", "loy_bare_update_s"):
    assert k in r and r[k] > 0, (k, r.get(k))
PY
echo "bench_plugins: ok"
