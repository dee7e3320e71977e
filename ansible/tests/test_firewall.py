"""Host firewall (role firewall) on the deployed lab: each host accepts, from each kind of source,
exactly the ports the inventory gives it, and nothing else that listens there.

- From the bridge (the controller, an admin source in the lab inventory): SSH, the app
  instances and the UIs on their hosts (jaeger-query 16686, Prometheus 9090 with spm_enabled,
  Grafana 3000 with logs_enabled) answer; every other port is closed or filtered.
- From an outsider (a temporary network namespace with a veth on the lab bridge and an address
  that is neither a cluster host nor an admin source, removed afterwards even on failure): only
  SSH and the app instances answer.
- From a cluster host (over SSH on a lab host): the backend ports on the other hosts answer (CQL
  on the Cassandra host, OTLP and span metrics on the Collector's host, ...); Cassandra's JMX
  does not.
- Switching the SPM topology off and running the role closes its ports (while the services
  still listen); on again opens them; firewall_enabled false removes the table.

The ports scanned on each host: every TCP port `ss` shows listening there (all addresses), every
port any role of the project uses, 1-1024, and a fixed sample of 1000 of the others. (A full
1-65535 scan from the bridge would leave ~65,000 conntrack entries per host in SYN_SENT on the
controller for 2 minutes: see the README's security section.)
"""
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import (ANSIBLE_DIR, FIREWALL_TABLE, GROUPS, INVENTORY_HOSTS, LOGS_ENABLED, SETTINGS,
                      SPM_ENABLED, addr, deploy_lab, ssh)
import portscan

SSH_PORT = 22
NET_PREFIX = SETTINGS["net_prefix"]
BRIDGE_ADDR = f"{NET_PREFIX}.1"
OUTSIDER_ADDR = os.environ.get("FIREWALL_OUTSIDER_ADDR", f"{NET_PREFIX}.250")
# The outsider's namespace and veth are named under the lab's prefix (LAB_NETNS_PREFIX), so that
# down.sh removes them and reports them left when pytest was killed before the fixture's clean-up.
OUTSIDER_NETNS = f"{SETTINGS['netns_prefix']}outsider"
OUTSIDER_VETH = OUTSIDER_NETNS[:15]   # host side, on the lab bridge (interface names: 15 characters)
OUTSIDER_PEER = "outsider0"           # in the namespace
SCAN_TIMEOUT = 1.0              # seconds a batch of connects may take (local bridge: <1 ms per answer)
# Every port a role of the project listens on with its defaults (roles' defaults/main.yml), JMX too.
ROLE_PORTS = {3000, 3100, 4317, 4318, 5778, 5779, 7000, 7199, 8000, 8001, 8888, 8889, 9042, 9080,
              9090, 9096, 12345, 13133, 13134, 13135, 14269, 16685, 16686, 16687}
SAMPLE = sorted(random.Random(19).sample(range(1025, 65536), 1000))
TAGS = "firewall_install,firewall_configure"
FIGURES = {}


def public_ports(host):
    """SSH and the app instances: open to anyone."""
    return {SSH_PORT, *INVENTORY_HOSTS[host]["ports"].values()}


def ui_ports(host):
    """The UIs on a host (open to the cluster and the admin sources)."""
    ports = set()
    if host in GROUPS.get("jaeger_query", []):
        ports.add(16686)
    if SPM_ENABLED and host in GROUPS.get("prometheus", []):
        ports.add(9090)
    if LOGS_ENABLED and host in GROUPS.get("grafana", []):
        ports.add(3000)
    return ports


def listening(host):
    """TCP ports with a listening socket on the host (any address), from ss."""
    res = ssh(addr(host), SETTINGS["ssh_key"], "ss -Htln")
    assert res.returncode == 0, f"ss on {host}: {res.stderr}"
    # Local address is the 4th column: 0.0.0.0:22, [::]:22, *:22, 192.168.58.11:8000, ...
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in res.stdout.splitlines() if line.strip()}


def ports_to_scan(host, listen):
    return sorted(listen | ROLE_PORTS | public_ports(host) | ui_ports(host) | set(range(1, 1025)) | set(SAMPLE))


def scan_from_outsider(host_addr, ports):
    proc = subprocess.run(
        ["ip", "netns", "exec", OUTSIDER_NETNS, sys.executable, str(Path(portscan.__file__)), host_addr, str(SCAN_TIMEOUT)],
        input=json.dumps(ports), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"scan from {OUTSIDER_ADDR} failed: {proc.stderr}"
    return json.loads(proc.stdout)


def reach_from(host, target, port):
    """A TCP connection from a lab host to target:port (3 s): "open" (it completed), "refused"
    (nothing listens there, and no rule stopped it) or "filtered" (no answer: the firewall's
    policy drops what no rule accepts)."""
    res = ssh(addr(host), SETTINGS["ssh_key"],
              f"timeout 3 bash -c 'exec 3<>/dev/tcp/{target}/{port}' 2>/dev/null; "
              "case $? in 0) echo open;; 124) echo filtered;; *) echo refused;; esac")
    assert res.returncode == 0, f"ssh {host}: {res.stderr}"
    return res.stdout.strip()


@pytest.fixture(scope="module")
def listen_sets():
    return {h: listening(h) for h in sorted(INVENTORY_HOSTS)}


@pytest.fixture(scope="module")
def outsider():
    """A network namespace on the lab bridge with OUTSIDER_ADDR, neither cluster nor admin;
    removed afterwards, also when the test fails."""
    assert os.geteuid() == 0, "the outsider namespace needs root (as the lab does)"
    assert OUTSIDER_ADDR not in {v["addr"] for v in INVENTORY_HOSTS.values()} | {BRIDGE_ADDR}
    bridge = SETTINGS["bridge"]

    def run(*cmd, check=True):
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=30)

    def cleanup():
        run("ip", "link", "del", OUTSIDER_VETH, check=False)
        run("ip", "netns", "del", OUTSIDER_NETNS, check=False)

    cleanup()
    try:
        run("ip", "netns", "add", OUTSIDER_NETNS)
        run("ip", "link", "add", OUTSIDER_VETH, "type", "veth", "peer", "name", OUTSIDER_PEER, "netns", OUTSIDER_NETNS)
        run("ip", "link", "set", OUTSIDER_VETH, "master", bridge, "up")
        run("ip", "-n", OUTSIDER_NETNS, "link", "set", "lo", "up")
        run("ip", "-n", OUTSIDER_NETNS, "addr", "add", f"{OUTSIDER_ADDR}/24", "dev", OUTSIDER_PEER)
        run("ip", "-n", OUTSIDER_NETNS, "link", "set", OUTSIDER_PEER, "up")
        yield OUTSIDER_ADDR
    finally:
        cleanup()
        left = run("ip", "netns", "list", check=False).stdout
        assert OUTSIDER_NETNS not in left, f"namespace {OUTSIDER_NETNS} left behind"


def test_nftables_loads_the_table_at_boot(hosts):
    """nftables.service is enabled (it loads the table at boot) and the table is loaded."""
    for name, host in sorted(hosts.items()):
        svc = host.service("nftables")
        assert svc.is_enabled and svc.is_running, f"nftables.service on {name}"
        out = host.run(f"nft list table inet {FIREWALL_TABLE}")
        assert out.rc == 0 and "policy drop" in out.stdout, f"table inet {FIREWALL_TABLE} on {name}: {out.stderr}"


@pytest.mark.parametrize("host", sorted(INVENTORY_HOSTS))
def test_from_the_bridge_only_the_allowed_ports_answer(host, listen_sets):
    """From the controller (an admin source): SSH, the apps and this host's UIs; no other port."""
    listen = listen_sets[host]
    expected = public_ports(host) | ui_ports(host)
    assert expected <= listen, f"{host}: expected ports not listening: {sorted(expected - listen)}"
    ports = ports_to_scan(host, listen)
    result = portscan.scan(addr(host), ports, SCAN_TIMEOUT)
    FIGURES[f"bridge->{host}"] = result
    print(f"\n{host} from the bridge {BRIDGE_ADDR}: {len(ports)} ports scanned in {result['seconds']} s; "
          f"open {result['open']}; listening but closed {sorted(listen - set(result['open']))}; "
          f"{len(result['filtered'])} filtered, {len(result['refused'])} refused")
    assert set(result["open"]) == expected, \
        f"{host} from the bridge: open {result['open']}, expected {sorted(expected)}"
    # Default deny drops: a closed port does not even answer with a reset.
    assert not set(result["refused"]), f"{host}: ports answering with a reset: {result['refused'][:20]}"


@pytest.mark.parametrize("host", sorted(INVENTORY_HOSTS))
def test_from_an_outsider_only_ssh_and_the_apps_answer(host, listen_sets, outsider):
    listen = listen_sets[host]
    ports = ports_to_scan(host, listen)
    result = scan_from_outsider(addr(host), ports)
    FIGURES[f"outsider->{host}"] = result
    print(f"\n{host} from the outsider {outsider}: {len(ports)} ports scanned in {result['seconds']} s; "
          f"open {result['open']}; listening but closed {sorted(listen - set(result['open']))}")
    assert set(result["open"]) == public_ports(host), \
        f"{host} from {outsider}: open {result['open']}, expected {sorted(public_ports(host))}"


def test_switch_defaults_follow_the_roles():
    """No lab needed: each on/off switch the firewall reads (vars/main.yml, firewall_services) falls
    back to the same default as the role's own defaults/main.yml, so both decide alike."""
    import yaml
    roles = ANSIBLE_DIR / "roles"
    services = yaml.safe_load((roles / "firewall" / "vars" / "main.yml").read_text())["firewall_services"]
    switches = [(s["role"], s["switch"], s["switch_default"]) for s in services if "switch" in s]
    assert len(switches) >= 8, switches
    for role, switch, default in switches:
        assert yaml.safe_load((roles / role / "defaults" / "main.yml").read_text())[switch] == default, (role, switch)
    for service in services:
        own = yaml.safe_load((roles / service["role"] / "defaults" / "main.yml").read_text())
        for port in service["ports"]:
            assert isinstance(own[port["var"]], int), f"{service['role']}: {port['var']} is not a plain number"


def backend_checks():
    """(from host, to host, port, should answer, what): backend ports between the lab's hosts."""
    checks = []
    first = {g: GROUPS[g][0] for g in ("cassandra", "otel_collector", "jaeger_collector", "jaeger_query")
             if GROUPS.get(g)}
    others = lambda h: [o for o in sorted(INVENTORY_HOSTS) if o != h]  # noqa: E731
    if "cassandra" in first:
        c = first["cassandra"]
        # JMX listens on loopback only (test_cassandra_auth); the firewall drops it before that.
        checks += [(others(c)[0], c, 9042, True, "cassandra CQL"), (others(c)[0], c, 7199, False, "cassandra JMX")]
    if "otel_collector" in first:
        o = first["otel_collector"]
        checks += [(others(o)[0], o, 4317, True, "otel-collector OTLP gRPC"),
                   (others(o)[-1], o, 8888, True, "otel-collector metrics")]
        if SPM_ENABLED and GROUPS.get("prometheus"):
            p = GROUPS["prometheus"][0]
            if p != o:
                checks.append((p, o, 8889, True, "otel-collector span metrics, as Prometheus scrapes it"))
    if "jaeger_collector" in first:
        j = first["jaeger_collector"]
        checks += [(others(j)[0], j, 4317, True, "jaeger-collector OTLP gRPC"),
                   (others(j)[-1], j, 14269, True, "jaeger-collector admin/metrics")]
    return checks


@pytest.mark.parametrize("check", backend_checks(), ids=lambda c: f"{c[0]}->{c[1]}:{c[2]}")
def test_a_cluster_host_reaches_the_backend_ports(check):
    src, dst, port, answers, what = check
    reached = reach_from(src, addr(dst), port)
    assert reached == ("open" if answers else "filtered"), \
        f"{what}: {src} -> {dst}:{port} is {reached}, should be {'open' if answers else 'filtered by the firewall'}"
    # ... while from the bridge the same port does not (a backend port, not a UI).
    assert not portscan.scan(addr(dst), [port], SCAN_TIMEOUT)["open"], f"{dst}:{port} answers the bridge"


def firewall_deploy(*extra):
    proc = deploy_lab("--tags", TAGS, *extra, timeout=900)
    assert proc.returncode == 0, f"deploy --tags {TAGS} {' '.join(extra)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
    return proc


def test_switching_spm_off_closes_its_ports_and_disabling_removes_the_table(hosts):
    """Only the firewall's tasks run (--tags), so the SPM services still listen: with spm_enabled
    false the rules close their ports (span metrics on the Collector, Prometheus' UI), on again
    opens them; firewall_enabled false removes the table, and a backend port answers the bridge."""
    if not (SPM_ENABLED and GROUPS.get("prometheus") and GROUPS.get("otel_collector")):
        pytest.skip("needs spm_enabled with prometheus and otel_collector hosts")
    prom, coll = GROUPS["prometheus"][0], GROUPS["otel_collector"][0]
    scraper = prom if prom != coll else next(h for h in sorted(INVENTORY_HOSTS) if h != coll)
    assert reach_from(scraper, addr(coll), 8889) == "open"
    assert portscan.scan(addr(prom), [9090], SCAN_TIMEOUT)["open"] == [9090]
    try:
        firewall_deploy("-e", "spm_enabled=false")
        assert 8889 in listening(coll) and 9090 in listening(prom), "the SPM services stopped (only the rules should change)"
        assert reach_from(scraper, addr(coll), 8889) == "filtered", "span metrics port not filtered with spm_enabled false"
        assert portscan.scan(addr(prom), [9090], SCAN_TIMEOUT)["filtered"] == [9090], "Prometheus UI still open"

        firewall_deploy("-e", "firewall_enabled=false")
        for name, host in sorted(hosts.items()):
            assert f"table inet {FIREWALL_TABLE}" not in host.check_output("nft list tables"), f"table left on {name}"
            assert not host.file(f"/etc/nftables.d/{FIREWALL_TABLE}.nft").exists
        assert portscan.scan(addr(coll), [8888], SCAN_TIMEOUT)["open"] == [8888], \
            "with the firewall off the Collector's metrics port should answer the bridge"
    finally:
        firewall_deploy()
    assert reach_from(scraper, addr(coll), 8889) == "open"
    assert portscan.scan(addr(prom), [9090], SCAN_TIMEOUT)["open"] == [9090]
    assert portscan.scan(addr(coll), [8888], SCAN_TIMEOUT)["filtered"] == [8888]


def test_the_preflight_refuses_rules_that_lock_ansible_out():
    """An SSH source list without the controller stops the run before any host changes."""
    proc = deploy_lab("--tags", TAGS, "-e", json.dumps({"firewall_ssh_cidrs": ["203.0.113.0/24"]}), timeout=600)
    if proc.returncode == 0:
        # Its rules now drop the controller's SSH, so no later test (nor a deploy) reaches the
        # hosts: take the table out in each host's network namespace, which needs no SSH, and
        # deploy the lab's own rules again.
        for name in INVENTORY_HOSTS:
            subprocess.run(["ip", "netns", "exec", f"{SETTINGS['netns_prefix']}{name}",
                            "nft", "delete", "table", "inet", FIREWALL_TABLE], check=False, timeout=30)
        firewall_deploy()
        pytest.fail("the deploy passed with the controller outside firewall_ssh_cidrs (its rules were "
                    "taken out, the lab's deployed again)")
    assert "would lock Ansible out" in " ".join(proc.stdout.split()), proc.stdout[-3000:]
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.M))
    assert recap == {h: "0" for h in INVENTORY_HOSTS}, recap
