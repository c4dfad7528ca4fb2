#!/usr/bin/env bash
# Benchmark: cityd's foundation steps (secrets ensure && pki ensure && render all), cold (empty state)
# and warm (everything present), against the blog's openssl path on the same machine:
# 7 x `openssl rand -hex`, `openssl genrsa 4096` for the server key, a CSR, and a CA signature with
# a SAN extension file (the blog's series already has its CA, so the CA is made once, untimed).
# Needs: hyperfine (apt-get install hyperfine), openssl, a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/cityd
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed 's/addresses = \["auto"\]/addresses = ["192.168.1.20"]/' src/default-city.toml > "$work/city.toml"
export CITYD_CITY=$work/city.toml CITYD_STATE_DIR=$work/state

cold="rm -rf $work/state && $bin secrets ensure >/dev/null && $bin pki ensure >/dev/null && $bin render all >/dev/null"
warm="$bin secrets ensure >/dev/null && $bin pki ensure >/dev/null && $bin render all >/dev/null"
eval "$cold"

# The blog's path, in its own directory with a pre-made CA.
blog=$work/blog; mkdir -p "$blog"
openssl req -x509 -newkey rsa:4096 -nodes -keyout "$blog/ca.key" -out "$blog/ca.crt" -days 3650 -subj "/CN=Blog Root CA" 2>/dev/null
cat > "$blog/san.ext" <<EXT
authorityKeyIdentifier=keyid,issuer
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
subjectAltName=DNS:mattermost.cicd.local,IP:192.168.1.20
EXT
blog_cmd="cd $blog && for n in 32 16 16 32 16 16 16; do openssl rand -hex \$n >/dev/null; done && openssl genrsa -out server.key 4096 2>/dev/null && openssl req -new -key server.key -out server.csr -subj /CN=mattermost.cicd.local && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 825 -sha256 -extfile san.ext 2>/dev/null"

hyperfine --shell=bash --warmup 3 --runs "${RUNS:-30}" --export-json "$work/result.json" \
  -n "cityd cold" "$cold" -n "cityd warm" "$warm" -n "blog openssl path" "$blog_cmd" >&2
python3 - "$work/result.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
blog = r["blog openssl path"]["median"]
print("| path | median | min | max | blog / this |")
print("|---|---|---|---|---|")
for name in ["cityd cold", "cityd warm", "blog openssl path"]:
    x = r[name]
    print(f"| {name} | {x['median']*1000:.1f} ms | {x['min']*1000:.1f} ms | {x['max']*1000:.1f} ms | {blog / x['median']:.1f}x |")
PY
