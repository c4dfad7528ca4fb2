#!/usr/bin/env bash
# Relay benchmark: `cityd relay serve` (durable spool, fsync before 202, group commit) against a
# minimal standard-library Python translator (bench/relay_py_translator.py: no spool, forwards
# synchronously), under the same load from bench/relay_load.rs, posting to the same webhook sink,
# on the same machine. Prints a Markdown table for docs/benchmarks.md.
#
# usage: bench/relay.sh            (EVENTS=20000 LEVELS="16 64" RUNS=3 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-20000}
LEVELS=${LEVELS:-"16 64"}
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
body=tests/fixtures/sonarqube/webhook-gate-failed.compact.body

wait_for() { # url, what
  for _ in $(seq 1 500); do curl -sf -o /dev/null "$1" && return 0; sleep 0.02; done
  echo "bench/relay.sh: $2 did not come up" >&2; exit 1
}
sink_count() { curl -sf "http://$SINK/count"; }
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
peak_rss_mb() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

"$LOAD" sink --listen "$SINK" >/dev/null &
pids+=($!)
wait_for "http://$SINK/count" "the sink"

load() { # url, events
  "$LOAD" load --url "$1" --secret-file "$work/secret" --body-file "$body" \
    --events "$2" --concurrency "$CONCURRENCY"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), spool on $(df --output=source "$work" | tail -1), load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "load: $EVENTS events per run, concurrency levels $LEVELS, $RUNS runs each; best run reported" >&2

best_of() { # url, label -> prints the best run's JSON line (highest rate)
  local best="" result
  for run in $(seq 1 "$RUNS"); do
    result=$(load "$1" "$EVENTS")
    echo "$2 run $run: $result (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
    if [ -z "$best" ] || [ "$(field "$result" events_per_second | cut -d. -f1)" -gt "$(field "$best" events_per_second | cut -d. -f1)" ]; then
      best=$result
    fi
  done
  echo "$best"
}

# --- cityd relay ---------------------------------------------------------------------------------
"$BIN" --state-dir "$work/state" relay serve --listen "$RELAY" --metrics "$RELAY_METRICS" \
  --spool "$work/spool" --secret-file "$work/secret" --webhook-url-file "alerts=$work/alerts-url" \
  --json >"$work/relay.out" 2>"$work/relay.err" &
relay_pid=$!
pids+=($relay_pid)
wait_for "http://$RELAY/healthz" "the relay"
CONCURRENCY=64 load "http://$RELAY/sonarqube" 2000 >/dev/null # warm-up
declare -A relay_best
for level in $LEVELS; do
  CONCURRENCY=$level
  relay_best[$level]=$(best_of "http://$RELAY/sonarqube" "relay c=$level")
done
# End to end: 202s received and every event posted to the sink.
CONCURRENCY=64
until [ "$(curl -sf "http://$RELAY_METRICS/metrics" | awk '/^cityd_relay_undelivered / {print $2}')" = 0 ]; do sleep 0.05; done
before=$(sink_count)
start=$(date +%s.%N)
load "http://$RELAY/sonarqube" "$EVENTS" >/dev/null
until [ "$(( $(sink_count) - before ))" -ge "$EVENTS" ]; do sleep 0.02; done
delivered=$(python3 -c "print(round($EVENTS / ($(date +%s.%N) - $start)))")
relay_rss=$(peak_rss_mb "$relay_pid")
relay_cpu=$(cpu_seconds "$relay_pid")
level_count=$(wc -w <<<"$LEVELS")
relay_events=$(( 2000 + level_count * RUNS * EVENTS + EVENTS ))
kill -TERM "$relay_pid"; wait "$relay_pid" || true

# --- Python translator ---------------------------------------------------------------------------
python3 bench/relay_py_translator.py "$PYPORT" "$work/secret" "$hook" >/dev/null 2>"$work/py.err" &
py_pid=$!
pids+=($py_pid)
for _ in $(seq 1 500); do (echo >"/dev/tcp/127.0.0.1/$PYPORT") 2>/dev/null && break; sleep 0.02; done
CONCURRENCY=64 load "http://127.0.0.1:$PYPORT/sonarqube" 2000 >/dev/null # warm-up
declare -A py_best
for level in $LEVELS; do
  CONCURRENCY=$level
  py_best[$level]=$(best_of "http://127.0.0.1:$PYPORT/sonarqube" "python c=$level")
done
py_rss=$(peak_rss_mb "$py_pid")
py_cpu=$(cpu_seconds "$py_pid")
py_events=$(( 2000 + level_count * RUNS * EVENTS ))
kill "$py_pid"; wait "$py_pid" 2>/dev/null || true

ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
echo "| | concurrency | events accepted/s | p50 | p99 | errors |"
echo "|---|---:|---:|---:|---:|---:|"
for level in $LEVELS; do
  r=${relay_best[$level]}; p=${py_best[$level]}
  echo "| cityd relay (spool + fdatasync before 202) | $level | $(field "$r" events_per_second) | $(field "$r" p50_ms) ms | $(field "$r" p99_ms) ms | $(field "$r" errors) |"
  echo "| Python stdlib translator (no spool) | $level | $(field "$p" events_per_second) | $(field "$p" p50_ms) ms | $(field "$p" p99_ms) ms | $(field "$p" errors) |"
  echo "| ratio relay / Python | $level | $(ratio "$(field "$r" events_per_second)" "$(field "$p" events_per_second)") | $(ratio "$(field "$r" p50_ms)" "$(field "$p" p50_ms)") | $(ratio "$(field "$r" p99_ms)" "$(field "$p" p99_ms)") | |"
done
echo
per_event() { python3 -c "print(f'{$1 * 1e6 / $2:.0f}')"; }
relay_us=$(per_event "$relay_cpu" "$relay_events"); py_us=$(per_event "$py_cpu" "$py_events")
echo "CPU per event (user+sys of the server process, whole run): relay ${relay_us} µs (accept, sync, render, post), Python ${py_us} µs (accept, render, post) — $(ratio "$py_us" "$relay_us") less for the relay"
echo "peak RSS: relay ${relay_rss} MB, Python ${py_rss} MB ($(ratio "$relay_rss" "$py_rss")); relay end to end (202 + posted to the sink, c=64): $delivered events/s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
