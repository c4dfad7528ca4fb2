#!/usr/bin/env bash
# Nix checks that need no nixpkgs, run by scripts/test.sh before `cargo test`: every .nix file is
# formatted with nixpkgs-fmt 1.3.0 (the flake's `formatter`, installed from the crates registry when
# missing). Parsing and the module's logic are tested by `cargo test` (tests/integration/nix/mod.rs).
#
# scripts/nix-check.sh --module-eval DIR additionally evaluates the whole module against stub NixOS
# options (nixos/tests/stub-eval.nix), with DIR a checkout of nix-community/nixpkgs.lib (its lib/
# inside). That step is NOT part of CI: CI cannot fetch nixpkgs.lib, and nothing fetched is committed.
set -euo pipefail
cd "$(dirname "$0")/.."

fmt_version=1.3.0
export NIX_CONFIG="build-users-group ="
cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
export PATH="$cargo_bin:$PATH"

module_eval=""
case "${1:-}" in
  --module-eval)
    module_eval="${2:?--module-eval needs the path of a nixpkgs.lib checkout}"
    ;;
  "") ;;
  *)
    echo "usage: scripts/nix-check.sh [--module-eval NIXPKGS_LIB_DIR]" >&2
    exit 2
    ;;
esac

if [ "$(nixpkgs-fmt --version 2>/dev/null || true)" != "nixpkgs-fmt $fmt_version" ]; then
  echo "nix-check: installing nixpkgs-fmt $fmt_version from the crates registry"
  cargo install --quiet --locked --version "$fmt_version" nixpkgs-fmt
fi

mapfile -d '' files < <(find . -name '*.nix' -not -path './target/*' -not -path './.git/*' -print0 | sort -z)
if [ "${#files[@]}" -eq 0 ]; then
  echo "nix-check: no .nix files found; run from the repository" >&2
  exit 1
fi
if ! nixpkgs-fmt --check "${files[@]}"; then
  echo "nix-check: the files above are not formatted; run: nixpkgs-fmt . (or nix fmt)" >&2
  exit 1
fi
echo "nix-check: ${#files[@]} .nix files formatted (nixpkgs-fmt $fmt_version)"

if [ -n "$module_eval" ]; then
  lib_dir="$module_eval/lib"
  [ -f "$lib_dir/default.nix" ] || { echo "nix-check: $lib_dir/default.nix not found" >&2; exit 2; }
  command -v nix-instantiate >/dev/null || { echo "nix-check: nix-instantiate missing; apt-get install nix-bin" >&2; exit 2; }
  nix-instantiate --eval --strict --json nixos/tests/stub-eval.nix --arg lib "import $(realpath "$lib_dir")"
  echo
  echo "nix-check: the module evaluated against stub NixOS options"
fi
