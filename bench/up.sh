#!/usr/bin/env bash
# bench/up.sh: a no-op `cityd up` (everything already running) on this machine's Docker engine,
# beside the blog's "clean slate" redeploy (docker stop + rm + run of coturn and Mattermost) with
# the same images and options. Reports wall times, container restarts, and how long the
# Mattermost stand-in (the double, in its container) did not answer GET /api/v4/system/ping on
# its published port, polled every 5 ms throughout.
#
# Usage: bench/up.sh [RUNS]   (default 10; prints a Markdown table)
# Needs: root, docker, python3, iproute2, the local images (testcontainers/images/build.sh).
# Touches: containers, volumes and a network named bench-*, a PostgreSQL container, a veth pair
# cdbench0/cdbench1 holding 10.213.250.1/32 (local to this host), a temp dir. All removed on exit.
# Extra `cityd up` flags can be passed in BENCH_UP_ARGS (e.g. --skip-wire).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
repo=$PWD

cargo build --release --quiet -p cityd --bin cityd
cityd=$repo/target/release/cityd
testcontainers/images/build.sh >/dev/null 2>&1 || testcontainers/images/build.sh
double=$(sed -n 's/^version *= *"\(.*\)"/cityd-test\/mattermost-double:\1/p' testcontainers/Cargo.toml | head -n1)

work=$(mktemp -d)
ip=10.213.250.1
prefix=bench-
pg=${prefix}postgres
poller_pid=""
cleanup() {
  [ -n "$poller_pid" ] && kill "$poller_pid" 2>/dev/null || true
  for c in ${prefix}mattermost ${prefix}coturn "$pg"; do docker rm -f -v "$c" >/dev/null 2>&1 || true; done
  for v in data logs plugins client-plugins; do docker volume rm -f "${prefix}mattermost-$v" >/dev/null 2>&1 || true; done
  docker network rm "${prefix}cicd-net" >/dev/null 2>&1 || true
  ip link del cdbench0 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cleanup_on_start() { ip link del cdbench0 2>/dev/null || true; }
cleanup_on_start

ip link add cdbench0 type veth peer name cdbench1
ip addr add "$ip/32" dev cdbench0
ip link set cdbench0 up
ip link set cdbench1 up

# A free loopback port below the TURN relay range (49152-65535), which the city keeps for coturn.
free_port() {
  python3 -c '
import socket
for p in range(28067, 29000):
    try:
        socket.socket().bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass'
}
metrics=$(free_port)
sed -e "s/addresses = \[\"auto\"\]/addresses = [\"$ip\"]/" \
  -e "s|image = \"mattermost/mattermost-enterprise-edition:11.8.5\"|image = \"$double\"|" \
  -e "s/prefix = \"\"/prefix = \"$prefix\"/" \
  -e "s|coturn_image = \"coturn/coturn:4.6.3\"|coturn_image = \"cityd-test/coturn:4.6.1\"|" \
  -e "s/metrics = \"127.0.0.1:8067\"/metrics = \"127.0.0.1:$metrics\"/" \
  -e "s/^port = 3478/port = 23478/" \
  src/default-city.toml >"$work/city.toml"

echo "AdminBenchPassw0rd" >"$work/pgpw"
docker run -d --name "$pg" -e POSTGRES_PASSWORD=AdminBenchPassw0rd -p 127.0.0.1::5432 cityd-test/postgres:17 >/dev/null
for _ in $(seq 300); do docker logs "$pg" 2>&1 | grep -q 'ready to accept connections' && break; sleep 0.1; done
pgport=$(docker port "$pg" 5432/tcp | head -n1 | sed 's/.*://')
state=$work/state
up() {
  "$cityd" --city "$work/city.toml" --state-dir "$state" up \
    --admin-url "postgres://postgres@127.0.0.1:$pgport/postgres" --admin-password-file "$work/pgpw" \
    ${BENCH_UP_ARGS:-} "$@"
}
up >"$work/first.log" 2>&1 || { cat "$work/first.log"; exit 1; }
# `docker events --since` has one-second resolution: keep the first run's starts out of the window.
sleep 1.1

# The poller: GET /api/v4/system/ping every 5 ms; on SIGTERM prints the longest unanswered
# window (ms) and the number of failed polls.
cat >"$work/poll.py" <<'EOF'
import http.client, signal, sys, time
host, out = sys.argv[1], sys.argv[2]
longest, failures, down_since, running = 0.0, 0, None, True
def stop(*_):
    global running
    running = False
signal.signal(signal.SIGTERM, stop)
while running:
    t = time.monotonic()
    try:
        c = http.client.HTTPConnection(host, 8065, timeout=0.5)
        c.request("GET", "/api/v4/system/ping")
        ok = c.getresponse().status == 200
        c.close()
    except Exception:
        ok = False
    if ok:
        if down_since is not None:
            longest = max(longest, time.monotonic() - down_since)
            down_since = None
    else:
        failures += 1
        if down_since is None:
            down_since = t
    time.sleep(0.005)
if down_since is not None:
    longest = max(longest, time.monotonic() - down_since)
open(out, "w").write(f"{longest * 1000:.0f} {failures}\n")
EOF
start_poller() { python3 "$work/poll.py" "$ip" "$1" & poller_pid=$!; sleep 0.3; }
stop_poller() { kill -TERM "$poller_pid"; wait "$poller_pid" 2>/dev/null || true; poller_pid=""; }

ids() { docker inspect -f '{{.Id}} {{.State.StartedAt}} {{.RestartCount}}' ${prefix}coturn ${prefix}mattermost; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2))}'; }

# 1. No-op `cityd up`, everything running: with the PostgreSQL tenant step, and without it.
restarts=0
noop() { # OUT-FILE [up flags]: RUNS timed runs; counts restarts (changed IDs/start times, events)
  local out=$1; shift
  : >"$out"
  for _ in $(seq "$runs"); do
    local before since until_ t0 t1 events
    before=$(ids)
    since=$(date +%s.%N)
    t0=$(date +%s%N); up "$@" >"$work/noop.log" 2>&1; t1=$(date +%s%N)
    until_=$(date +%s.%N)
    grep -q 'no changes' "$work/noop.log" || { echo "a no-op run changed something:"; cat "$work/noop.log"; exit 1; }
    ms "$t0" "$t1" >>"$out"
    local after
    after=$(ids)
    if [ "$before" != "$after" ]; then
      restarts=$((restarts + 1))
      printf 'restart seen (IDs or start times changed):\n%s\n%s\n' "$before" "$after" >&2
    fi
    events=$(docker events --since "$since" --until "$until_" --filter type=container \
      --filter "name=${prefix}coturn" --filter "name=${prefix}mattermost" \
      --filter event=start --filter event=die --filter event=restart \
      --format '{{.Time}} {{.Action}} {{.Actor.Attributes.name}}')
    if [ -n "$events" ]; then
      restarts=$((restarts + $(printf '%s\n' "$events" | wc -l)))
      printf 'container events during a no-op run:\n%s\n' "$events" >&2
    fi
  done
}
start_poller "$work/noop.poll"
noop "$work/noop.ms"
noop "$work/noop-nodb.ms" --skip-db
stop_poller
noop_median=$(median <"$work/noop.ms")
noop_max=$(sort -n "$work/noop.ms" | tail -n1)
nodb_median=$(median <"$work/noop-nodb.ms")
read -r noop_gap noop_fail <"$work/noop.poll"

# 2. The blog's clean slate: stop, rm, run both containers with the same images and options.
mm_run=(docker run -d --name ${prefix}mattermost --network ${prefix}cicd-net --hostname mattermost.cicd.local
  --restart unless-stopped --env-file "$state/render/mattermost.env"
  -p "$ip:8065:8065" -p "$ip:8444:8444/tcp" -p "$ip:8444:8444/udp" -p "127.0.0.1:$metrics:8067"
  -v "$state/mattermost/config:/mattermost/config" -v "$state/mattermost/certs:/mattermost/certs:ro"
  -v "$state/mattermost/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro"
  -v "$state/mattermost/run:/mattermost/run"
  -v ${prefix}mattermost-data:/mattermost/data -v ${prefix}mattermost-logs:/mattermost/logs
  -v ${prefix}mattermost-plugins:/mattermost/plugins -v ${prefix}mattermost-client-plugins:/mattermost/client/plugins
  "$double")
coturn_run=(docker run -d --name ${prefix}coturn --network host --restart unless-stopped
  -v "$state/coturn/turnserver.conf:/etc/coturn/turnserver.conf:ro" cityd-test/coturn:4.6.1
  -c /etc/coturn/turnserver.conf)
: >"$work/blog.ms"
: >"$work/blog-mm.ms"
: >"$work/blog.gap"
for _ in $(seq "$runs"); do
  start_poller "$work/blog.poll"
  t0=$(date +%s%N)
  docker stop ${prefix}coturn >/dev/null; docker rm ${prefix}coturn >/dev/null; "${coturn_run[@]}" >/dev/null
  tm=$(date +%s%N)
  docker stop ${prefix}mattermost >/dev/null; docker rm ${prefix}mattermost >/dev/null; "${mm_run[@]}" >/dev/null
  t1=$(date +%s%N)
  ms "$tm" "$t1" >>"$work/blog-mm.ms"
  # Unreachability lasts until the stand-in answers again.
  for _ in $(seq 2000); do
    python3 -c "import http.client,sys;c=http.client.HTTPConnection('$ip',8065,timeout=0.5);c.request('GET','/api/v4/system/ping');sys.exit(c.getresponse().status!=200)" 2>/dev/null && break
    sleep 0.005
  done
  stop_poller
  ms "$t0" "$t1" >>"$work/blog.ms"
  cut -d' ' -f1 "$work/blog.poll" >>"$work/blog.gap"
done
blog_median=$(median <"$work/blog.ms")
blog_mm_median=$(median <"$work/blog-mm.ms")
gap_median=$(median <"$work/blog.gap")
gap_max=$(sort -n "$work/blog.gap" | tail -n1)

engine=$(docker version -f '{{.Server.Version}}')
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
cat <<EOF
| case ($runs runs, Docker $engine, $(nproc) cores) | wall time (median) | container restarts | Mattermost stand-in unreachable |
|---|---|---|---|
| \`cityd up\`, no-op (everything running; PostgreSQL tenant checked; wire) | ${noop_median} ms (max ${noop_max} ms) | ${restarts} (over $((2 * runs)) runs, both rows) | ${noop_gap} ms (${noop_fail} failed polls, both rows) |
| \`cityd up --skip-db\`, no-op | ${nodb_median} ms | (above) | (above) |
| blog: \`docker stop\` + \`rm\` + \`run\` of coturn and Mattermost | ${blog_median} ms (Mattermost's part: ${blog_mm_median} ms) | 2 per run | ${gap_median} ms median, ${gap_max} ms max |
EOF
