#!/usr/bin/env bash
# bench/wire.sh: wall time and request counts of `cityd wire` against the Mattermost double over
# its local-mode socket, for the default city and for a city with 100 channels (each with a
# webhook), cold (empty server) and no-op (second run); beside it the floor cost of the blog's
# approach: one process per operation for the same number of operations (spawning /bin/true,
# one curl per request on the same socket, and, if BENCH_DOCKER_IMAGE names a local image,
# one `docker exec` per operation as the blog's `docker exec mmctl` does).
#
# Usage: bench/wire.sh [RUNS]   (default 5 runs per case; prints a Markdown table)
# Needs: cargo, python3, curl. Touches only a temporary directory (and a container it starts
# and removes itself when BENCH_DOCKER_IMAGE is set).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}

cargo build --release --quiet -p cityd --bin cityd
cargo build --release --quiet -p cityd-testcontainers --bin mattermost-double
cityd=$PWD/target/release/cityd
double_bin=$PWD/target/release/mattermost-double

work=$(mktemp -d)
double_pid=""
container=""
cleanup() {
  [ -n "$double_pid" ] && kill "$double_pid" 2>/dev/null || true
  [ -n "$container" ] && docker rm -f "$container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s%N; }

start_double() {
  [ -n "$double_pid" ] && { kill "$double_pid"; wait "$double_pid" 2>/dev/null || true; }
  rm -f "$work/mm.sock"
  "$double_bin" --socket "$work/mm.sock" >"$work/double.out" 2>&1 &
  double_pid=$!
  for _ in $(seq 200); do [ -S "$work/mm.sock" ] && return 0; sleep 0.01; done
  echo "the double did not start: $(cat "$work/double.out")" >&2
  exit 1
}

# A city with exactly 100 channels (town-square included), each with a webhook owned by one of
# the three default bots in turn.
python3 - "$work/city100.toml" <<'EOF'
import sys
out = open(sys.argv[1], "w")
out.write('''domain = "cicd.local"
[lan]
addresses = ["auto"]
[mattermost]
image = "mattermost/mattermost-enterprise-edition:11.8.5"
port = 8065
metrics = "127.0.0.1:8067"
calls_port = 8444
local_socket_dir = "/mattermost/run"
[turn]
port = 3478
relay_min = 49152
relay_max = 65535
credential_ttl_minutes = 240
[team]
name = "engineering"
display_name = "Engineering"
''')
names = ["builds", "code-reviews", "alerts"] + [f"ch{i:03d}" for i in range(4, 100)] + ["town-square"]
assert len(names) == 100
for n in names:
    title = "Town Square" if n == "town-square" else n.replace("-", " ").title()
    out.write(f'[[channels]]\nname = "{n}"\ndisplay_name = "{title}"\n')
bots = [("jenkins-bot", "Jenkins", "builds"), ("gitlab-bot", "GitLab", "code-reviews"), ("sonarqube-bot", "SonarQube", "alerts")]
for b, d, c in bots:
    out.write(f'[[bots]]\nname = "{b}"\ndisplay_name = "{d}"\nchannel = "{c}"\n')
for i, n in enumerate(names):
    out.write(f'[[webhooks]]\nchannel = "{n}"\nbot = "{bots[i % 3][0]}"\ndisplay_name = "hook {n}"\n')
EOF

# median of the numbers on stdin
median() { python3 -c 'import sys,statistics; print(statistics.median(float(x) for x in sys.stdin.read().split()))'; }

# run_wire CITY_ARGS... -> prints "ms total mutating"
run_wire() {
  local state=$1; shift
  local t0 t1 json
  t0=$(now)
  json=$("$cityd" --state-dir "$state" "$@" wire --socket "$work/mm.sock" --json)
  t1=$(now)
  python3 -c 'import json,sys; r=json.loads(sys.argv[2]); print((int(sys.argv[1]))/1e6, r["requests"]["total"], r["requests"]["mutating"])' "$((t1 - t0))" "$json"
}

# floor_spawn N CMD... -> ms for N spawns of CMD
floor() {
  local n=$1; shift
  local t0 t1
  t0=$(now)
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1; done
  t1=$(now)
  echo "$(( (t1 - t0) / 1000 ))" | awk '{print $1/1000}'
}

if [ -n "${BENCH_DOCKER_IMAGE:-}" ]; then
  container=$(docker run -d --rm "$BENCH_DOCKER_IMAGE" sleep 3600)
fi

echo "| city | run | requests (changing) | cityd wire, ms | /bin/true × ops, ms | curl × ops, ms | ratio curl/cityd |$([ -n "$container" ] && echo ' docker exec × ops, ms | ratio docker/cityd |')"
echo "|---|---|---|---|---|---|---|$([ -n "$container" ] && echo '---|---|')"
for city in default city100; do
  city_args=()
  [ "$city" = city100 ] && city_args=(--city "$work/city100.toml")
  : >"$work/cold"; : >"$work/noop"
  for r in $(seq "$runs"); do
    start_double
    state="$work/state-$city-$r"
    run_wire "$state" "${city_args[@]}" >>"$work/cold"
    run_wire "$state" "${city_args[@]}" >>"$work/noop"
  done
  for kind in cold noop; do
    ms=$(awk '{print $1}' "$work/$kind" | median)
    total=$(awk 'NR==1{print $2}' "$work/$kind")
    mutating=$(awk 'NR==1{print $3}' "$work/$kind")
    # The blog's approach makes one process per operation: per API request cityd makes.
    ops=$total
    : >"$work/true"; : >"$work/curl"; : >"$work/docker"
    for r in $(seq "$runs"); do
      floor "$ops" /bin/true >>"$work/true"
      floor "$ops" curl -s --unix-socket "$work/mm.sock" http://_/api/v4/system/ping >>"$work/curl"
      [ -n "$container" ] && floor "$ops" docker exec "$container" /bin/true >>"$work/docker"
    done
    t=$(median <"$work/true"); c=$(median <"$work/curl")
    line="| $city | $kind | $total ($mutating) | $(printf %.1f "$ms") | $(printf %.1f "$t") | $(printf %.1f "$c") | $(python3 -c "print(f'{$c/$ms:.1f}×')") |"
    if [ -n "$container" ]; then
      d=$(median <"$work/docker")
      line="$line $(printf %.0f "$d") | $(python3 -c "print(f'{$d/$ms:.0f}×')") |"
    fi
    echo "$line"
  done
done
echo
echo "runs per case: $runs (medians); machine: $(nproc) cores, $(uname -r); cityd $("$cityd" --version | awk '{print $2}')"
