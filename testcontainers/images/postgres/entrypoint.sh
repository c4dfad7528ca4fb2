#!/bin/sh
# Starts PostgreSQL 17 for the tests. On first start it initialises $PGDATA with the superuser
# `postgres` whose password comes from POSTGRES_PASSWORD_FILE (preferred) or POSTGRES_PASSWORD,
# local connections by peer-free trust inside the container, and SCRAM passwords over TCP from
# anywhere. When /certs/server.pem and /certs/server.key are mounted (readable by postgres), TLS
# is on and clients may verify it against the CA that signed them. Extra arguments go to postgres
# and win over these (cityd's managed server passes `-c ssl=on -c ssl_cert_file=... -c
# ssl_key_file=...`, as it does to the official image, whose entrypoint also hands `-...` to postgres).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="${POSTGRES_PASSWORD_FILE:-}"
  if [ -z "$pwfile" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
      echo "cityd-postgres: set POSTGRES_PASSWORD_FILE or POSTGRES_PASSWORD for the superuser" >&2
      exit 2
    fi
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  fi
  initdb --pgdata="$PGDATA" --username=postgres --pwfile="$pwfile" --no-locale \
    --encoding=UTF8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  [ "$pwfile" = "${POSTGRES_PASSWORD_FILE:-}" ] || rm -f "$pwfile"
  {
    echo "host all all 0.0.0.0/0 scram-sha-256"
    echo "host all all ::/0 scram-sha-256"
  } >>"$PGDATA/pg_hba.conf"
fi

tls=off
if [ -r /certs/server.pem ] && [ -r /certs/server.key ]; then
  # PostgreSQL refuses a key that others can read, so it gets a private copy.
  cp /certs/server.pem "$PGDATA/server.crt"
  cp /certs/server.key "$PGDATA/server.key"
  chmod 0600 "$PGDATA/server.key"
  tls=on
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' -c ssl="$tls" \
  -c ssl_cert_file="$PGDATA/server.crt" -c ssl_key_file="$PGDATA/server.key" "$@"
