# Shared by the VM test scripts (prepended to each): cityd invocations exactly as the lab tests
# make them, and the checks that read units and firewall rules.
import json
import re

SERVER_STATE = "/var/lib/cityd"
PHONE_STATE = "/root/phone"
PHONE_CITY = "/etc/cityd/city.json"

# `cityd turn probe` exit codes (cityd turn probe --help).
PROBE_UNAUTHORIZED = 11
PROBE_PEER_DENIED = 12


def cityd(city, state, args):
    return f"cityd --city {city} --state-dir {state} {args}"


def probe_report(out):
    """The report `cityd turn probe --json` prints."""
    return json.loads(out)


def wait_for_units_in_order(machine, units):
    """Every unit succeeds, and each became active no earlier than the one before it."""
    stamps = []
    for unit in units:
        machine.wait_for_unit(unit, timeout=900)
    for unit in units:
        out = machine.succeed(f"systemctl show -p Result -p ActiveEnterTimestampMonotonic {unit}")
        props = dict(line.split("=", 1) for line in out.strip().splitlines())
        assert props["Result"] == "success", f"{unit}: Result={props['Result']}"
        stamps.append((int(props["ActiveEnterTimestampMonotonic"]), unit))
    assert all(t > 0 for t, _ in stamps), stamps
    assert stamps == sorted(stamps), f"units became active out of order: {stamps}"


def assert_firewall_opens(rules, proto, port, interface=None):
    iface = rf"-i {re.escape(interface)} " if interface else ""
    pattern = rf"-A nixos-fw {iface}-p {proto} -m {proto} --dport {re.escape(port)} -j nixos-fw-accept"
    assert re.search(pattern, rules), f"firewall does not open {proto}/{port}:\n{rules}"


def share_with_phone(server, phone, src, dst, mode):
    """Carries a file from the server to the phone through the test driver's shared directory."""
    name = src.replace("/", "_")
    server.succeed(f"install -m 0644 {src} /tmp/shared/{name}")
    phone.succeed(f"install -D -m {mode} /tmp/shared/{name} {dst}")
    server.succeed(f"rm -f /tmp/shared/{name}")


# Units a switch of the city must never restart: the host's PostgreSQL and coturn, and the vault
# and the PKI (a changed city reloads these two, which keeps their invocation).
STAYING = ["postgresql.service", "coturn.service", "cityd-secrets.service", "cityd-pki.service"]


def invocations(machine, units):
    """unit -> its InvocationID (a new one for every start, the same across a reload)."""
    out = {}
    for unit in units:
        value = machine.succeed(f"systemctl show -p InvocationID --value {unit}").strip()
        assert value, f"{unit} has no invocation: it never started"
        out[unit] = value
    return out


def switch_to(machine, specialisation):
    """`nixos-rebuild test` into one of the configuration's specialisations."""
    machine.succeed(
        f"/run/booted-system/specialisation/{specialisation}/bin/switch-to-configuration test >&2"
    )
