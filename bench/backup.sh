#!/usr/bin/env bash
# Backup benchmark, side by side in one run on one machine: `cityd backup` (age encryption and the
# SHA-256 of every part and file included) and `cityd restore --drill` (restore into scratch places
# and prove them) against the by-hand way (`docker exec … pg_dump -Fc | gzip` plus a `docker cp`
# tar of each volume, no verification; restoring with `gunzip | pg_restore` and `docker cp` back).
# The city: PostgreSQL 17 (cityd-test/postgres:17) holding DB_MB of Mattermost-shaped rows and
# FILES_MB of incompressible files in the data volume. Wall time and peak RSS (GNU time) of each
# side; prints a Markdown table for docs/benchmarks.md.
#
# usage: bench/backup.sh            (DB_MB=1024 FILES_MB=1024 by default; BIN=path skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."

DB_MB=${DB_MB:-1024}
FILES_MB=${FILES_MB:-1024}
TARGET=${CARGO_TARGET_DIR:-target}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin cityd
  BIN=$TARGET/release/cityd
fi
DOUBLE="cityd-test/mattermost-double:$(sed -n 's/^version = "\(.*\)"/\1/p' testcontainers/Cargo.toml | head -n1)"
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "GNU time is missing: apt-get install time" >&2; exit 1; }

work=$(mktemp -d -p /var/tmp cityd-backup-bench.XXXXXX)
prefix="bb$$-"
pg="${prefix}postgres"
cleanup() {
  docker rm -f "$pg" "${prefix}fill" "${prefix}byhand" >/dev/null 2>&1 || true
  for v in data plugins client-plugins byhand-data; do docker volume rm -f "${prefix}mattermost-$v" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
password=BenchAdminPassw0rd
printf '%s\n' "$password" >"$work/pg-admin"
docker run -d --name "$pg" -e POSTGRES_PASSWORD="$password" -p "127.0.0.1:$port:5432" cityd-test/postgres:17 >/dev/null
until docker logs "$pg" 2>&1 | grep -q "ready to accept connections"; do sleep 0.5; done

lan=$(ip -4 route get 1.1.1.1 | sed -n 's/.* src \([0-9.]*\).*/\1/p')
sed -e "s/addresses = \[\"auto\"\]/addresses = [\"$lan\"]/" \
  -e "s|image = \"mattermost/mattermost-enterprise-edition:11.8.5\"|image = \"$DOUBLE\"|" \
  -e "s/prefix = \"\"/prefix = \"$prefix\"/" src/default-city.toml >"$work/city.toml"
state="$work/state"
cityd() { "$BIN" --city "$work/city.toml" --state-dir "$state" "$@"; }
admin=(--admin-url "postgres://postgres@127.0.0.1:$port/postgres" --admin-password-file "$work/pg-admin")
cityd secrets ensure >/dev/null
cityd pki ensure >/dev/null
cityd db ensure "${admin[@]}" >/dev/null
cityd backup key "$work/key" >/dev/null 2>&1

echo "filling the database with ${DB_MB} MB ..." >&2
rows=$((DB_MB * 1024 * 1024 / 420))
PGPASSWORD=$(cat "$state/secrets/mattermost-db-password") psql -X -q -h 127.0.0.1 -p "$port" -U mattermost -d mattermost <<SQL
CREATE TABLE "Posts" ("Id" varchar(26) PRIMARY KEY, "ChannelId" varchar(26), "Message" text, "Props" bytea, "CreateAt" bigint);
INSERT INTO "Posts" SELECT 'p'||i, 'c'||(i%50), repeat(md5(random()::text), 6), decode(md5(random()::text)||md5(random()::text)||md5(random()::text)||md5(random()::text), 'hex'), 1700000000000+i FROM generate_series(1, $rows) i;
SQL
db_size=$(PGPASSWORD=$password psql -X -At -h 127.0.0.1 -p "$port" -U postgres -d mattermost -c "SELECT pg_database_size('mattermost')")

echo "filling the data volume with ${FILES_MB} MB ..." >&2
for v in data plugins client-plugins; do docker volume create "${prefix}mattermost-$v" >/dev/null; done
mkdir -p "$work/files"
for i in $(seq 1 $((FILES_MB / 8))); do head -c $((8 * 1024 * 1024)) /dev/urandom >"$work/files/upload-$i.bin"; done
docker create --name "${prefix}fill" -v "${prefix}mattermost-data:/mattermost/data" "$DOUBLE" >/dev/null
docker cp "$work/files/." "${prefix}fill:/mattermost/data/"
docker rm -f "${prefix}fill" >/dev/null
rm -rf "$work/files"
sync

measure() { # label, command...: prints "label seconds peak_kib"
  local label=$1; shift
  local start end
  start=$(date +%s.%N)
  "$TIME" -f "%M" -o "$work/rss" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$label $(echo "$end - $start" | bc) $(tail -n1 "$work/rss")"
}

mkdir -p "$work/cityd" "$work/byhand"
byhand_backup() {
  docker exec -u postgres "$pg" pg_dump -Fc -d mattermost | gzip >"$work/byhand/db.dump.gz"
  docker create --name "${prefix}byhand" -v "${prefix}mattermost-data:/mattermost/data" "$DOUBLE" >/dev/null
  docker cp "${prefix}byhand:/mattermost/data" - >"$work/byhand/data.tar"
  docker rm -f "${prefix}byhand" >/dev/null
}
byhand_restore() {
  docker exec -u postgres "$pg" psql -X -q -c "CREATE DATABASE byhand" >/dev/null
  gunzip -c "$work/byhand/db.dump.gz" | docker exec -i -u postgres "$pg" pg_restore --no-owner -d byhand
  docker volume create "${prefix}mattermost-byhand-data" >/dev/null
  docker create --name "${prefix}byhand" -v "${prefix}mattermost-byhand-data:/mattermost/data" "$DOUBLE" >/dev/null
  docker cp - "${prefix}byhand:/mattermost" <"$work/byhand/data.tar"
  docker rm -f "${prefix}byhand" >/dev/null
  docker volume rm "${prefix}mattermost-byhand-data" >/dev/null
  docker exec -u postgres "$pg" psql -X -q -c "DROP DATABASE byhand" >/dev/null
}
export -f byhand_backup byhand_restore
export work pg prefix DOUBLE

r1=$(measure "cityd-backup" "$BIN" --city "$work/city.toml" --state-dir "$state" backup --to "$work/cityd" --identity-file "$work/key" --db-container "$pg" "${admin[@]}")
r2=$(measure "by-hand-backup" bash -c byhand_backup)
file=$(ls "$work"/cityd/cityd-backup-*.age)
r3=$(measure "cityd-restore-drill" "$BIN" --city "$work/city.toml" --state-dir "$state" restore --drill "$file" --identity-file "$work/key" --db-container "$pg" "${admin[@]}")
r4=$(measure "by-hand-restore" bash -c byhand_restore)

total=$((db_size + FILES_MB * 1024 * 1024))
echo
echo "database $((db_size / 1048576)) MiB on disk, files ${FILES_MB} MiB; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| run | wall s | MiB/s (of DB on disk + files) | peak RSS MiB | output MiB |"
echo "|---|---|---|---|---|"
for r in "$r1" "$r2" "$r3" "$r4"; do
  read -r label secs kib <<<"$r"
  case $label in
    cityd-backup) out=$(du -m "$file" | cut -f1) ;;
    by-hand-backup) out=$(du -mc "$work"/byhand/* | tail -n1 | cut -f1) ;;
    *) out="-" ;;
  esac
  echo "| $label | $secs | $(echo "scale=1; $total / 1048576 / $secs" | bc) | $((kib / 1024)) | $out |"
done
