#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh Debian machine, then runs every test.
# Run as root (network-namespace and NAT tests need it). Usage: scripts/test.sh [extra cargo test args]
# Needs only the repository: the conformance checks (tests under a `conformance` module, which
# compare with upstream specifications kept in ../shared/reference) are skipped by name, loudly,
# when that directory is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have openssl || need_pkgs+=(openssl)
have turnserver || need_pkgs+=(coturn)
have ip || need_pkgs+=(iproute2)
have iptables || need_pkgs+=(iptables)
have setpriv || need_pkgs+=(util-linux)
have debootstrap || need_pkgs+=(debootstrap)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_pkgs+=(postgresql-15)
have psql || need_pkgs+=(postgresql-client)
have nix-instantiate || need_pkgs+=(nix-bin)
have python3 || need_pkgs+=(python3)
have pyflakes3 || need_pkgs+=(pyflakes3)
have bwrap || need_pkgs+=(bubblewrap)
have systemd-analyze || need_pkgs+=(systemd)
have chromium || need_pkgs+=(chromium)
have certutil || need_pkgs+=(libnss3-tools)
# libfaketime: the TURN fleet test runs coturn with its clock moved past a credential's expiry.
compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null || need_pkgs+=(libfaketime)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: missing ${need_pkgs[*]}; run as root or: apt-get install ${need_pkgs[*]}" >&2
    exit 2
  fi
  echo "installing ${need_pkgs[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
# Debian starts coturn as a service on install; the tests run their own instances.
if command -v systemctl >/dev/null 2>&1; then systemctl stop coturn >/dev/null 2>&1 || true; fi

bash scripts/nix-check.sh
# Local images for the Docker tests (no registry here); skips images that are up to date.
testcontainers/images/build.sh
# The flake's test checks under the Nix build sandbox's conditions.
bash scripts/sandbox-test.sh
# Style and lints hold for the whole workspace (issue #11: clippy clean, one format).
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings

test_args=("$@")
not_run=()
reference=../shared/reference
if [ ! -d "$reference" ]; then
  listing=$(mktemp)
  cargo test --workspace --locked -- --list conformance:: >"$listing"
  mapfile -t not_run < <(sed -n 's/: test$//p' "$listing" | sort)
  rm -f "$listing"
  case " ${test_args[*]} " in
    *" -- "*) test_args+=(--skip conformance::) ;;
    *) test_args+=(-- --skip conformance::) ;;
  esac
fi
report_not_run() {
  [ ${#not_run[@]} -gt 0 ] || return 0
  echo "!!! ${#not_run[@]} CONFORMANCE CHECKS DID NOT RUN: $reference (upstream specifications) is absent:" >&2
  printf '!!!   %s\n' "${not_run[@]}" >&2
}
report_not_run
cargo test --workspace --locked "${test_args[@]}"
report_not_run
