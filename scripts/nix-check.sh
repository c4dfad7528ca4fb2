#!/usr/bin/env bash
# Nix checks that need no nixpkgs, run by scripts/test.sh before `cargo test`:
#  1. every .nix file is formatted as nixfmt formats it (the formatter nixpkgs uses, and the flake's
#     `formatter` and `checks.<system>.nix-format`), with nixfmt-rs, a port of it installed from
#     the crates registry when missing (nixfmt itself is Haskell and not in a registry reachable here);
#  2. the whole module evaluates against nixpkgs' `lib` and stub NixOS options
#     (nixos/tests/stub-eval.nix), and each of its checks holds: the unit graph, restart triggers,
#     pg_hba, published ports, hardening, settings, coturn's interface, the example configuration;
#     and systemd-analyze rates every cityd unit's sandbox within its bound (--offline, on the unit
#     files the module renders: nixos/tests/unit-files.nix);
#  3. every VM test script renders (vm-tests/render-scripts.nix), compiles and passes pyflakes with
#     the NixOS test driver's globals, as the driver requires.
# Parsing and the module's logic against the real cityd are tested by `cargo test`
# (tests/integration/nix/).
#
# nixpkgs.lib (nix-community/nixpkgs.lib, its lib/ only) is looked for in, in order:
# --module-eval DIR, $NIXPKGS_LIB, ${XDG_CACHE_HOME:-~/.cache}/cityd/nixpkgs.lib; if none has it,
# the pinned revision is downloaded into that cache. It is never part of the repository. Without it
# the module evaluation is reported NOT RUN (loudly), and fails the script with
# CITYD_REQUIRE_MODULE_EVAL=1.
set -euo pipefail
cd "$(dirname "$0")/.."

fmt_crate=nixfmt_rs
fmt_version=0.5.3
lib_rev=de42d44212d207476489bce163375d8306a26d59
export NIX_CONFIG="build-users-group ="
cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
export PATH="$cargo_bin:$PATH"

lib_dir="${NIXPKGS_LIB:-}"
case "${1:-}" in
  --module-eval)
    lib_dir="${2:?--module-eval needs the path of a nixpkgs.lib checkout}"
    ;;
  "") ;;
  *)
    echo "usage: scripts/nix-check.sh [--module-eval NIXPKGS_LIB_DIR]" >&2
    exit 2
    ;;
esac
for tool in nix-instantiate:nix-bin python3:python3 pyflakes3:pyflakes3; do
  command -v "${tool%%:*}" >/dev/null || {
    echo "nix-check: ${tool%%:*} is missing; apt-get install ${tool#*:} (scripts/test.sh installs it)" >&2
    exit 2
  }
done

# --- 1. formatting ---------------------------------------------------------------------------------
if [ "$(nixfmt --version 2>/dev/null || true)" != "nixfmt-rs $fmt_version" ]; then
  echo "nix-check: installing $fmt_crate $fmt_version (nixfmt) from the crates registry"
  cargo install --quiet --locked --version "$fmt_version" "$fmt_crate"
fi
mapfile -d '' files < <(find . -name '*.nix' -not -path './target/*' -not -path './.git/*' -print0 | sort -z)
if [ "${#files[@]}" -eq 0 ]; then
  echo "nix-check: no .nix files found; run from the repository" >&2
  exit 1
fi
if ! nixfmt --check "${files[@]}"; then
  echo "nix-check: the files above are not formatted; run: nixfmt FILE... (or nix fmt)" >&2
  exit 1
fi
echo "nix-check: ${#files[@]} .nix files formatted (nixfmt, $fmt_crate $fmt_version)"

# --- 2. the module against nixpkgs.lib and stub NixOS options ---------------------------------------
cache="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/cityd/nixpkgs.lib"
if [ -z "$lib_dir" ]; then
  if [ ! -f "$cache/lib/default.nix" ]; then
    tmp=$(mktemp -d)
    if curl -fsL --max-time 60 "https://codeload.github.com/nix-community/nixpkgs.lib/tar.gz/$lib_rev" \
      | tar -xz -C "$tmp" --strip-components=1 2>/dev/null && [ -f "$tmp/lib/default.nix" ]; then
      mkdir -p "$(dirname "$cache")"
      rm -rf "$cache" && mv "$tmp" "$cache"
    else
      rm -rf "$tmp"
    fi
  fi
  lib_dir="$cache"
fi
if [ -f "$lib_dir/lib/default.nix" ]; then
  out=$(nix-instantiate --eval --strict --json nixos/tests/stub-eval.nix --arg lib "import $(realpath "$lib_dir/lib")")
  count=$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])["passed"]))' "$out")
  echo "nix-check: the module evaluated against nixpkgs.lib ($lib_dir) and stub NixOS options: $count checks passed"
  # The units' sandboxes, rated by systemd itself on the unit files the module renders.
  if command -v systemd-analyze >/dev/null; then
    units=$(mktemp -d)
    nix-instantiate --eval --strict --json nixos/tests/unit-files.nix --arg lib "import $(realpath "$lib_dir/lib")" >"$units/all.json"
    nix-instantiate --eval --strict --json --expr '(import ./nixos/lib.nix).exposureBounds' >"$units/bounds.json"
    python3 - "$units" <<'PY'
import json, pathlib, re, subprocess, sys
d = pathlib.Path(sys.argv[1])
bounds = json.loads((d / "bounds.json").read_text())
units = json.loads((d / "all.json").read_text())
assert sorted(units) == sorted(bounds), f"units {sorted(units)} != bounds {sorted(bounds)}"
over = []
for name, text in units.items():
    (d / name).write_text(text)
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", f"./{name}"],
                         cwd=d, capture_output=True, text=True).stdout
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert m, f"systemd-analyze rated nothing for {name}:\n{out}"
    score = float(m.group(1))
    print(f"nix-check:   {name}: exposure {score} (bound {bounds[name]})")
    if score > bounds[name]:
        over.append(name)
if over:
    sys.exit(f"nix-check: exposure above the bound for {over}")
PY
    rm -rf "$units"
    echo "nix-check: every cityd unit's exposure (systemd-analyze security --offline) is within its bound"
  else
    echo "nix-check: NOT RUN: the exposure check: systemd-analyze is missing (apt-get install systemd)" >&2
  fi
else
  echo "nix-check: NOT RUN: the module evaluation against stub NixOS options: no nixpkgs.lib at $lib_dir" >&2
  echo "nix-check:   put a checkout of nix-community/nixpkgs.lib ($lib_rev) there, or set NIXPKGS_LIB" >&2
  [ "${CITYD_REQUIRE_MODULE_EVAL:-0}" = 1 ] && exit 1
fi

# --- 3. the VM test scripts --------------------------------------------------------------------------
# The names the NixOS test driver defines for a test script, and the machines our tests declare.
driver_globals="start_all,subtest,t,driver,machines,join_all,retry,serial_stdout_off,serial_stdout_on,polling_condition,create_machine,run_tests,vlans,log,server,phone,router,peer"
scripts=$(mktemp -d)
trap 'rm -rf "$scripts"' EXIT
nix-instantiate --eval --strict --json vm-tests/render-scripts.nix >"$scripts/all.json"
python3 - "$scripts" <<'PY'
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
for name, script in json.loads((d / "all.json").read_text()).items():
    (d / f"{name}.py").write_text(script)
PY
rendered=("$scripts"/*.py)
for script in "${rendered[@]}"; do
  python3 -m py_compile "$script"
done
if ! PYFLAKES_BUILTINS="$driver_globals" pyflakes3 "${rendered[@]}"; then
  echo "nix-check: pyflakes rejects the VM test scripts above (the NixOS test driver would too)" >&2
  exit 1
fi
echo "nix-check: ${#rendered[@]} VM test scripts render, compile and pass pyflakes"
