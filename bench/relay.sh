#!/usr/bin/env bash
# Relay benchmark: `cityd relay serve` (durable spool, fsync before 202, group commit) against a
# minimal standard-library Python translator (bench/relay_py_translator.py: no spool, forwards
# synchronously), under the same load from bench/relay_load.rs, posting to the same webhook sink,
# on the same machine. Prints a Markdown table for docs/benchmarks.md.
#
# usage: bench/relay.sh            (EVENTS=50000 CONCURRENCY=64 RUNS=3 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-50000}
CONCURRENCY=${CONCURRENCY:-64}
RUNS=${RUNS:-3}
SINK=127.0.0.1:18065
RELAY=127.0.0.1:19180
RELAY_METRICS=127.0.0.1:19181
PYPORT=19280

cargo build --release --quiet --bin cityd --example relay_load
BIN=target/release/cityd
LOAD=target/release/examples/relay_load

# The spool lives on the machine's disk (not tmpfs), so every 202 really waits for fdatasync.
work=$(mktemp -d -p /var/tmp cityd-relay-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

printf 'cityd-bench-secret-0123456789\n' >"$work/secret"
hook="http://$SINK/hooks/benchhook00000000000000000"
printf '%s\n' "$hook" >"$work/alerts-url"
body=../shared/reference/payloads/sonarqube-webhook-qg-failed.compact.body
[ -f "$body" ] || { echo "bench/relay.sh: $body not found (the shared reference payloads)" >&2; exit 2; }

wait_for() { # url, what
  for _ in $(seq 1 500); do curl -sf -o /dev/null "$1" && return 0; sleep 0.02; done
  echo "bench/relay.sh: $2 did not come up" >&2; exit 1
}
sink_count() { curl -sf "http://$SINK/count"; }
peak_rss_mb() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

"$LOAD" sink --listen "$SINK" >/dev/null &
pids+=($!)
wait_for "http://$SINK/count" "the sink"

load() { # url, events
  "$LOAD" load --url "$1" --secret-file "$work/secret" --body-file "$body" \
    --events "$2" --concurrency "$CONCURRENCY"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), spool on $(df --output=source "$work" | tail -1)" >&2
echo "load: $EVENTS events per run, $CONCURRENCY concurrent connections, $RUNS runs each; best run reported" >&2

# --- cityd relay ---------------------------------------------------------------------------------
"$BIN" --state-dir "$work/state" relay serve --listen "$RELAY" --metrics "$RELAY_METRICS" \
  --spool "$work/spool" --secret-file "$work/secret" --webhook-url-file "alerts=$work/alerts-url" \
  --json >"$work/relay.out" 2>"$work/relay.err" &
relay_pid=$!
pids+=($relay_pid)
wait_for "http://$RELAY/healthz" "the relay"
load "http://$RELAY/sonarqube" 2000 >/dev/null # warm-up
best_relay=""
for run in $(seq 1 "$RUNS"); do
  before=$(sink_count)
  start=$(date +%s.%N)
  result=$(load "http://$RELAY/sonarqube" "$EVENTS")
  # Delivery to the sink continues after the 202s: wait until every event of this run is posted.
  until [ "$(( $(sink_count) - before ))" -ge "$EVENTS" ]; do sleep 0.05; done
  delivered=$(python3 -c "import sys; print(round($EVENTS / ($(date +%s.%N) - $start)))")
  echo "relay run $run: $result delivered_per_second=$delivered" >&2
  if [ -z "$best_relay" ] || [ "$(field "$result" events_per_second | cut -d. -f1)" -gt "$(field "$best_relay" events_per_second | cut -d. -f1)" ]; then
    best_relay=$result; best_relay_delivered=$delivered
  fi
done
relay_rss=$(peak_rss_mb "$relay_pid")
kill -TERM "$relay_pid"; wait "$relay_pid" || true

# --- Python translator ---------------------------------------------------------------------------
python3 bench/relay_py_translator.py "$PYPORT" "$work/secret" "$hook" >/dev/null 2>"$work/py.err" &
py_pid=$!
pids+=($py_pid)
for _ in $(seq 1 500); do (echo >"/dev/tcp/127.0.0.1/$PYPORT") 2>/dev/null && break; sleep 0.02; done
load "http://127.0.0.1:$PYPORT/sonarqube" 2000 >/dev/null # warm-up
best_py=""
for run in $(seq 1 "$RUNS"); do
  result=$(load "http://127.0.0.1:$PYPORT/sonarqube" "$EVENTS")
  echo "python run $run: $result" >&2
  if [ -z "$best_py" ] || [ "$(field "$result" events_per_second | cut -d. -f1)" -gt "$(field "$best_py" events_per_second | cut -d. -f1)" ]; then
    best_py=$result
  fi
done
py_rss=$(peak_rss_mb "$py_pid")
kill "$py_pid"; wait "$py_pid" 2>/dev/null || true

r_rate=$(field "$best_relay" events_per_second); p_rate=$(field "$best_py" events_per_second)
r_p50=$(field "$best_relay" p50_ms); p_p50=$(field "$best_py" p50_ms)
r_p99=$(field "$best_relay" p99_ms); p_p99=$(field "$best_py" p99_ms)
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
cat <<EOF
| | events accepted/s | p50 | p99 | peak RSS | errors | durable before 2xx |
|---|---:|---:|---:|---:|---:|---|
| cityd relay (spool + fdatasync, group commit) | $r_rate | ${r_p50} ms | ${r_p99} ms | ${relay_rss} MB | $(field "$best_relay" errors) | yes |
| Python stdlib translator (forwards, no spool) | $p_rate | ${p_p50} ms | ${p_p99} ms | ${py_rss} MB | $(field "$best_py" errors) | no |
| ratio relay / Python | $(ratio "$r_rate" "$p_rate") | $(ratio "$r_p50" "$p_p50") | $(ratio "$r_p99" "$p_p99") | $(ratio "$relay_rss" "$py_rss") | | |

relay end-to-end (202 received and posted to the sink): $best_relay_delivered events/s
EOF
