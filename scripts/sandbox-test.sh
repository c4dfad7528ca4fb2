#!/usr/bin/env bash
# The flake's test checks (flake.nix `checks`: the `cityd` package's unit tests and
# `cityd-integration`'s areas) run under the conditions of Nix's build sandbox, so that what breaks
# there breaks here first: no network (a new network namespace with only loopback), an unprivileged
# build user (uid 1000 "nixbld" in a user namespace, no capabilities; like Nix's build user it owns
# the caller's files, which are all mounted read-only), HOME=/homeless-shelter which does not
# exist, no CA bundle (an empty /etc/ssl, SSL_CERT_FILE=/no-cert-file.crt as stdenv sets it), no
# /usr/bin, /tmp or /var: only the tools the derivation declares are on PATH (stdenv's, plus openssl
# and coturn for the integration check), and no ../shared beside the source.
# The test binaries are built first, as the caller, exactly as scripts/test.sh builds them.
# Usage: scripts/sandbox-test.sh   (needs bubblewrap: apt-get install bubblewrap)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)

for tool in bwrap:bubblewrap nix-instantiate:nix-bin python3:python3; do
  command -v "${tool%%:*}" >/dev/null || {
    echo "sandbox-test.sh: ${tool%%:*} is missing; apt-get install ${tool#*:} (scripts/test.sh installs it)" >&2
    exit 2
  }
done

test_threads=2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
chmod 755 "$scratch"
export NIX_CONFIG="build-users-group ="
# What the flake's test checks run and on which files, read from the Nix files themselves.
nix-instantiate --eval --strict --json scripts/flake-test-checks.nix >"$scratch/checks.json"
query() { # what [check] -> lines: source | cargo-flags C | check-flags C | inputs C | pre-check C | binary C
  python3 - "$scratch" "$@" <<'PY'
import json, pathlib, sys
scratch, what = pathlib.Path(sys.argv[1]), sys.argv[2]
checks = json.loads((scratch / "checks.json").read_text())
if what == "source":
    print("\n".join(checks["source"]))
    sys.exit()
check = checks["checks"][sys.argv[3]]
if what == "cargo-flags":
    print(" ".join(check["cargoTestFlags"]))
elif what == "check-flags":
    print("\n".join(check["checkFlags"]))
elif what == "inputs":
    print(" ".join(check["nativeCheckInputs"]))
elif what == "pre-check":
    print(check["preCheck"])
elif what == "binary":  # the test executable cargo built for cargoTestFlags (--lib or --test NAME)
    flags = check["cargoTestFlags"]
    kind, name = ("lib", "cityd") if flags == ["--lib"] else ("test", flags[flags.index("--test") + 1])
    for line in (scratch / "artifacts.json").read_text().splitlines():
        m = json.loads(line) if line.startswith("{") else {}
        t = m.get("target", {})
        if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"] \
                and kind in t["kind"] and t["name"] == name:
            print(m["executable"])
            sys.exit()
    sys.exit(f"sandbox-test.sh: cargo built no test executable for {sys.argv[3]} ({flags})")
PY
}
mapfile -t source_paths < <(query source)

# --- Build as the caller --------------------------------------------------------------------------
# The same `cargo test --workspace` build as scripts/test.sh, so nothing is compiled twice.
cargo test --workspace --locked --no-run --message-format=json-render-diagnostics >"$scratch/artifacts.json"
target_dir=$(cd "$(dirname "$(query binary cityd)")/../.." && pwd -P)

# --- The sandbox -----------------------------------------------------------------------------------
# /etc as Nix writes it for a build: its users and groups, loopback names, nothing else.
cat >"$scratch/passwd" <<'EOF'
root:x:0:0:Nix build user:/build:/noshell
nixbld:x:1000:100:Nix build user:/build:/noshell
nobody:x:65534:65534:Nobody:/:/noshell
EOF
cat >"$scratch/group" <<'EOF'
root:x:0:
nixbld:!:100:
nogroup:x:65534:
EOF
printf '127.0.0.1 localhost\n::1 localhost\n' >"$scratch/hosts"

# The executables of Debian packages, bound one by one into /sandbox-tools/bin (the sandbox's only
# PATH entry; /usr/bin itself is not there, as Nix has no /usr/bin).
tool_binds() { # debian packages...
  local path
  declare -A seen=()
  for path in $(dpkg -L "$@" 2>/dev/null | grep -E '^/(usr/)?s?bin/[^/]+$'); do
    [ -e "$path" ] && [ -z "${seen[${path##*/}]:-}" ] || continue
    seen[${path##*/}]=1
    printf '%s\n' --ro-bind "$path" "/sandbox-tools/bin/${path##*/}"
  done
  [ -n "${seen[awk]:-}" ] || printf '%s\n' --ro-bind "$(readlink -f "$(command -v awk)")" /sandbox-tools/bin/awk
}
stdenv_tools=(coreutils findutils diffutils sed grep gawk tar gzip bzip2 make bash patch xz-utils file)

# The package's source as Nix copies it (only the filtered paths), read-only where cargo put it.
source_binds=()
for path in "${source_paths[@]}"; do source_binds+=(--ro-bind "$path" "$path"); done

# Runs a test binary in the sandbox after the derivation's preCheck (as the checkPhase runs it, in
# the same shell); the rest of the arguments are the binary's.
sandboxed() { # label, "debian packages on PATH", preCheck, binary, args...
  local label=$1 packages=$2 pre_check=$3 binary=$4
  shift 4
  local -a binds
  mapfile -t binds < <(tool_binds $packages)
  echo "sandbox-test.sh: $label"
  env -i bwrap \
    --unshare-user --uid 1000 --gid 100 --unshare-net --unshare-pid --unshare-ipc \
    --unshare-uts --hostname localhost --die-with-parent \
    --proc /proc --dev /dev --tmpfs /build \
    --ro-bind /usr/lib /usr/lib --symlink usr/lib /lib \
    --ro-bind-try /usr/lib64 /usr/lib64 --symlink usr/lib64 /lib64 \
    --ro-bind /usr/bin/bash /bin/sh \
    "${binds[@]}" \
    --dir /etc --dir /etc/ssl \
    --ro-bind "$scratch/passwd" /etc/passwd --ro-bind "$scratch/group" /etc/group \
    --ro-bind "$scratch/hosts" /etc/hosts \
    "${source_binds[@]}" --ro-bind "$target_dir" "$target_dir" \
    --chdir "$repo" \
    --setenv PATH /sandbox-tools/bin --setenv HOME /homeless-shelter \
    --setenv TMPDIR /build --setenv TEMPDIR /build --setenv TMP /build --setenv TEMP /build \
    --setenv NIX_BUILD_TOP /build --setenv NIX_BUILD_CORES "$test_threads" --setenv TERM xterm-256color \
    --setenv SSL_CERT_FILE /no-cert-file.crt --setenv NIX_SSL_CERT_FILE /no-cert-file.crt \
    -- /bin/sh -c "$pre_check"$'\n''exec "$0" "$@"' "$binary" --test-threads="$test_threads" "$@"
}

# checks.<system>.cityd: the package's own tests; checks.<system>.cityd-integration: the
# integration areas that need neither root nor Docker, with its check inputs on PATH.
for check in cityd cityd-integration; do
  binary=$(query binary "$check")
  inputs=$(query inputs "$check")
  cargo_flags=$(query cargo-flags "$check")
  pre_check=$(query pre-check "$check")
  mapfile -t check_flags < <(query check-flags "$check")
  sandboxed "checks.<system>.$check: cargo test $cargo_flags -- ${check_flags[*]}" \
    "${stdenv_tools[*]} $inputs" "$pre_check" "$binary" "${check_flags[@]}"
done
echo "sandbox-test.sh: the flake's test checks pass under the Nix sandbox's conditions"
