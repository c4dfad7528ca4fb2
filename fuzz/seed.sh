#!/usr/bin/env bash
# Seeds the fuzz corpora from the shared reference. stun_decode: every .hex file and every message
# of the coturn captures in turn-vectors/ becomes one binary file. relay_admit: the real SonarQube
# webhook payloads in payloads/. The corpora are generated, never committed.
# Usage: fuzz/seed.sh [VECTOR_DIR [PAYLOAD_DIR]]
#   (defaults: ../shared/reference/turn-vectors and ../shared/reference/payloads from the repo root)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
vectors="${1:-$here/../../shared/reference/turn-vectors}"
out="$here/corpus/stun_decode"
[ -d "$vectors" ] || { echo "seed.sh: no vector directory at $vectors; pass it as the first argument" >&2; exit 2; }
mkdir -p "$out"

# Writes hex (whitespace ignored) as bytes, with bash's printf only.
hex_to_file() {
  local hex escaped
  hex="$(tr -d ' \n\r\t' <<<"$1")"
  escaped="$(sed 's/../\\x&/g' <<<"$hex")"
  printf '%b' "$escaped" >"$2"
}

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

payloads="${2:-$here/../../shared/reference/payloads}"
[ -d "$payloads" ] || { echo "seed.sh: no payload directory at $payloads; pass it as the second argument" >&2; exit 2; }
relay_out="$here/corpus/relay_admit"
mkdir -p "$relay_out"
relay_count=0
for f in "$payloads"/sonarqube-webhook-*; do
  cp "$f" "$relay_out/$(basename "$f")"
  relay_count=$((relay_count + 1))
done
echo "seed.sh: wrote $relay_count seeds to $relay_out"
