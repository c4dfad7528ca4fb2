#!/usr/bin/env bash
# Seeds the fuzz corpora. stun_decode: every .hex file and every message of the coturn captures in
# the upstream turn-vectors/ (shared reference beside the repository) becomes one binary file; without
# it that corpus is left unseeded, said loudly. relay_admit: the SonarQube webhook bodies in
# tests/fixtures/sonarqube. city_description: the embedded default city as TOML and as JSON (the
# NixOS module's form, converted with python3's tomllib) and one file per section. import_env: the
# blog's cicd.env fixture. The corpora are generated, never committed.
# Usage: fuzz/seed.sh [VECTOR_DIR [PAYLOAD_DIR]]
#   (defaults: ../shared/reference/turn-vectors and tests/fixtures/sonarqube from the repo root)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
vectors="${1:-$here/../../shared/reference/turn-vectors}"
out="$here/corpus/stun_decode"

# Writes hex (whitespace ignored) as bytes, with bash's printf only.
hex_to_file() {
  local hex escaped
  hex="$(tr -d ' \n\r\t' <<<"$1")"
  escaped="$(sed 's/../\\x&/g' <<<"$hex")"
  printf '%b' "$escaped" >"$2"
}

if [ -d "$vectors" ]; then
  mkdir -p "$out"
  count=0
  for f in "$vectors"/*.hex; do
    hex_to_file "$(cat "$f")" "$out/$(basename "$f" .hex)"
    count=$((count + 1))
  done
  for f in "$vectors"/coturn-*.json; do
    n=0
    while read -r hex; do
      hex_to_file "$hex" "$out/$(basename "$f" .json)-$n"
      n=$((n + 1)); count=$((count + 1))
    done < <(sed -n 's/.*"hex": *"\([0-9a-fA-F]*\)".*/\1/p' "$f")
  done
  echo "seed.sh: wrote $count seeds to $out"
elif [ -n "${1:-}" ]; then
  echo "seed.sh: no vector directory at $vectors" >&2
  exit 2
else
  echo "seed.sh: NOT SEEDED: stun_decode (the upstream vectors are not at $vectors; pass their directory as the first argument)" >&2
fi

payloads="${2:-$here/../tests/fixtures/sonarqube}"
[ -d "$payloads" ] || { echo "seed.sh: no payload directory at $payloads; pass it as the second argument" >&2; exit 2; }
relay_out="$here/corpus/relay_admit"
mkdir -p "$relay_out"
relay_count=0
for f in "$payloads"/webhook-*; do
  cp "$f" "$relay_out/$(basename "$f")"
  relay_count=$((relay_count + 1))
done
echo "seed.sh: wrote $relay_count seeds to $relay_out"

root="$here/.."
city_out="$here/corpus/city_description"
mkdir -p "$city_out"
cp "$root/src/default-city.toml" "$city_out/default.toml"
python3 - "$root/src/default-city.toml" "$city_out" <<'PY'
import json, sys, tomllib
with open(sys.argv[1], "rb") as f:
    city = tomllib.load(f)
out = sys.argv[2]
with open(f"{out}/default.json", "w") as f:
    json.dump(city, f)
# One file per section, so the fuzzer starts from small inputs that each reach one checker.
for key, value in city.items():
    with open(f"{out}/section-{key}.json", "w") as f:
        json.dump({key: value}, f)
PY
echo "seed.sh: wrote $(ls "$city_out" | wc -l) seeds to $city_out"

env_out="$here/corpus/import_env"
mkdir -p "$env_out"
cp "$root/tests/fixtures/blog/cicd.env" "$env_out/blog-cicd.env"
printf 'export MATTERMOST_TURN_SECRET="%s"\nMATTERMOST_DB_PASSWORD=%s # comment\n' \
  "$(printf 'ab%.0s' $(seq 32))" "$(printf 'Zz9%.0s' $(seq 11))" >"$env_out/quoted.env"
echo "seed.sh: wrote $(ls "$env_out" | wc -l) seeds to $env_out"
