#!/usr/bin/env bash
# Benchmark: `cityd turn probe`'s full round trip (Binding, Allocate with the 401 challenge,
# CreatePermission, Send/Data to a peer and back, ChannelBind, ChannelData there and back,
# Refresh 0) against a local coturn on loopback, side by side with coturn's own turnutils_uclient
# doing the equivalent work (allocate, channel bind, 2 relayed messages to the same echo peer).
# Prints a Markdown table for docs/benchmarks.md ("TURN probe").
#
# Usage: bench/turn-probe.sh [PROBE_RUNS=300] [UCLIENT_RUNS=20] [PARALLEL=50]
# Needs: coturn (turnserver, turnutils_peer, turnutils_uclient), iproute2 (ss), awk. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-300}
uruns=${2:-20}
parallel=${3:-50}

for tool in turnserver turnutils_peer turnutils_uclient ss awk; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install coturn iproute2)" >&2; exit 2; }
done

cargo build --release --quiet --bin cityd
cityd="$PWD/target/release/cityd"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A throwaway secret for this run only; the probe reads it from a file, uclient takes it as -W.
secret="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$secret" >"$work/secret"
chmod 600 "$work/secret"

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    if ! ss -Hlnu "sport = :$p" | grep -q . && ! ss -Hlnu "sport = :$((p + 1))" | grep -q . &&
      ! ss -Hlnt "sport = :$p" | grep -q .; then
      echo "$p"; return
    fi
  done
}
port="$(free_port)"
peer_port="$(free_port)"

turnserver -n --listening-ip=127.0.0.1 --listening-port="$port" --realm=bench.test \
  --use-auth-secret --static-auth-secret="$secret" --no-cli --no-tls --no-dtls \
  --allow-loopback-peers --fingerprint --log-file="$work/turn.log" --no-stdout-log \
  --pidfile="$work/turn.pid" --userdb="$work/turndb" >/dev/null 2>&1 &
pids+=($!)
turnutils_peer -L 127.0.0.1 -p "$peer_port" >/dev/null 2>&1 &
pids+=($!)

# Ready when coturn listens on UDP and TCP and the echo peer on UDP (polled, bounded).
for _ in $(seq 1 500); do
  if ss -Hlnu "sport = :$port" | grep -q . && ss -Hlnt "sport = :$port" | grep -q . &&
    ss -Hlnu "sport = :$peer_port" | grep -q .; then break; fi
  sleep 0.02
done

now_ns() { date +%s%N; }

probe_once() {
  "$cityd" turn probe --server "127.0.0.1:$port" --peer "127.0.0.1:$peer_port" \
    --secret-file "$work/secret" --json
}

# Warm-up (page cache, coturn's first allocations).
for _ in 1 2 3 4 5; do probe_once >/dev/null; done

: >"$work/probe-wall" ; : >"$work/probe-inner"
t_start="$(now_ns)"
for _ in $(seq 1 "$runs"); do
  t0="$(now_ns)"
  out="$(probe_once)" || { echo "bench: a probe failed:" >&2; echo "$out" >&2; exit 1; }
  t1="$(now_ns)"
  echo $(((t1 - t0) / 1000)) >>"$work/probe-wall"
  sed -n 's/^  "total_ms": \([0-9.]*\).*/\1/p' <<<"$out" >>"$work/probe-inner"
done
t_end="$(now_ns)"
probe_seq_total_us=$(((t_end - t_start) / 1000))

# Parallel: $parallel probes at once (each its own process and allocation).
t0="$(now_ns)"
for _ in $(seq 1 "$parallel"); do probe_once >/dev/null & done
wait_ok=0
for job in $(jobs -p); do
  case " ${pids[*]} " in *" $job "*) continue ;; esac
  wait "$job" || wait_ok=1
done
t1="$(now_ns)"
[ "$wait_ok" -eq 0 ] || { echo "bench: a parallel probe failed" >&2; exit 1; }
probe_par_us=$(((t1 - t0) / 1000))

uclient_once() {
  turnutils_uclient -p "$port" -W "$secret" -u bench -e 127.0.0.1 -r "$peer_port" \
    -n 2 -m "$1" -c 127.0.0.1
}
: >"$work/uclient-wall"
for _ in $(seq 1 "$uruns"); do
  t0="$(now_ns)"
  uclient_once 1 >"$work/uclient.out" 2>&1 || { cat "$work/uclient.out" >&2; exit 1; }
  t1="$(now_ns)"
  grep -q "tot_send_msgs=2, tot_recv_msgs=2" "$work/uclient.out" || { echo "bench: uclient lost messages" >&2; cat "$work/uclient.out" >&2; exit 1; }
  echo $(((t1 - t0) / 1000)) >>"$work/uclient-wall"
done
t0="$(now_ns)"
uclient_once "$parallel" >"$work/uclient-par.out" 2>&1 || { cat "$work/uclient-par.out" >&2; exit 1; }
t1="$(now_ns)"
uclient_par_us=$(((t1 - t0) / 1000))

# median and p99 (nearest rank) of a file of numbers, in ms with 2 decimals; $2 = divisor to ms.
stats() {
  sort -n "$1" | awk -v div="$2" '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    r = int(0.99 * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR
    printf "%.2f %.2f %d", m / div, v[r] / div, NR }'
}
read -r pw_med pw_p99 pw_n < <(stats "$work/probe-wall" 1000)
read -r pi_med pi_p99 pi_n < <(stats "$work/probe-inner" 1)
read -r uw_med uw_p99 uw_n < <(stats "$work/uclient-wall" 1000)

rate() { awk -v n="$1" -v us="$2" 'BEGIN { printf "%.1f", n / (us / 1e6) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

cpu="$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "Machine: $(nproc) cores, $cpu; coturn $(turnserver --version 2>/dev/null | head -1); $(date -u +%Y-%m-%d)"
echo
echo "| measure (loopback, UDP) | cityd turn probe | turnutils_uclient | uclient / probe |"
echo "|---|---|---|---|"
echo "| full round trip, median (wall, per process) | ${pw_med} ms | ${uw_med} ms | $(ratio "$uw_med" "$pw_med")x |"
echo "| full round trip, p99 (wall, per process) | ${pw_p99} ms | ${uw_p99} ms | $(ratio "$uw_p99" "$pw_p99")x |"
echo "| in-process round trip, median / p99 (probe's total_ms) | ${pi_med} / ${pi_p99} ms | - | - |"
echo "| allocations/s, one after another | $(rate "$runs" "$probe_seq_total_us") | $(rate "$uruns" "$(awk '{ s += $1 } END { print s }' "$work/uclient-wall")") | - |"
echo "| allocations/s, $parallel at once | $(rate "$parallel" "$probe_par_us") | $(rate "$parallel" "$uclient_par_us") | - |"
echo
echo "runs: probe $pw_n sequential + $parallel parallel; uclient $uw_n sequential + one run with -m $parallel"
