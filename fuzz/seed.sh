#!/usr/bin/env bash
# Seeds the fuzz corpus from the shared STUN/TURN vectors: every .hex file and every message of the
# coturn captures becomes one binary file. The corpus is generated, never committed.
# Usage: fuzz/seed.sh [VECTOR_DIR]   (default: ../shared/reference/turn-vectors from the repo root)
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
