"""Verification of the deployed lab: units, users, ports, a traced /chain, deploys with a bad
setting and with a service that cannot start, a host reboot.

The tests talk to the real hosts; each one fails when the deployment is wrong.
"""
import json
import os
import re
import secrets
import time

import pytest

from conftest import (ANSIBLE_DIR, APP_RESTART_HANDLER, FIREWALL_TABLE, GROUPS, INVENTORY_HOSTS, LAB_BACKEND_UNITS,
                      MAX_EXPOSURE, STACK_UNITS, addr, app_url, assert_refused, deploy_lab, deploy_with_port_held,
                      env_file, http_get, http_get_on, restoring, send_traced, ssh, systemctl_show, wait_for)

HEALTH_PATH = "/observe/health"
# Host rebooted by the last test, and how long it may take to come back with its apps.
REBOOT_HOST = os.environ.get("LAB_REBOOT_HOST", "node2")
REBOOT_TIMEOUT = 240
LOG_WAIT = 30  # seconds for a log line to reach the file
# The Collector's host in inventories/lab/hosts.yml, and its ports (the role's defaults).
COLLECTOR_HOST = "node1"
COLLECTOR_HEALTH_PORT = 13133
JAEGER_COLLECTOR_HEALTH_PORT = 13134  # the jaeger role's jaeger_collector_health_port
COLLECTOR_GRPC_PORT = 4317


def main_pid(host, app):
    pid = host.check_output(f"systemctl show --property=MainPID --value {app}.service")
    return int(pid)


def test_unit_active_and_enabled(hosts, placement):
    name, app = placement
    service = hosts[name].service(f"{app}.service")
    assert service.is_running, f"{app}.service is not active on {name}"
    assert service.is_enabled, f"{app}.service is not enabled on {name}"


def test_unit_checker_passes_the_deployed_unit_and_rejects_a_broken_one(hosts, placement):
    """The `validate` command of every role's unit template (role common): the app's deployed unit
    passes it, and a copy whose ExecStart names a missing program does not."""
    name, app = placement
    host = hosts[name]
    unit = f"/etc/systemd/system/{app}.service"
    passed = host.run(f"/usr/local/sbin/systemd-unit-verify {unit} {app}.service")
    assert passed.rc == 0, f"{unit} on {name}: {passed.stderr}"
    broken = host.run(
        "d=$(mktemp -d) && "
        f"sed 's|^ExecStart=[^ ]*|ExecStart=/nonexistent/java|' {unit} > \"$d/unit\" && "
        f"/usr/local/sbin/systemd-unit-verify \"$d/unit\" {app}.service; rc=$?; rm -rf \"$d\"; exit $rc")
    assert broken.rc != 0, f"a unit starting /nonexistent/java passed the checker on {name}"
    assert "/nonexistent/java" in broken.stdout + broken.stderr


def test_runs_as_own_non_root_user(hosts, placement):
    name, app = placement
    host = hosts[name]
    user = host.user(app)
    assert user.exists, f"no user {app} on {name}"
    assert user.uid != 0 and user.uid < 1000, f"{app} should be a system user, uid {user.uid}"
    assert user.shell in ("/usr/sbin/nologin", "/bin/false")
    pid = main_pid(host, app)
    assert pid > 0, f"{app}.service has no main process on {name}"
    proc_user = host.check_output(f"ps -o user= -p {pid}").strip()
    proc_comm = host.check_output(f"ps -o comm= -p {pid}").strip()
    assert proc_user == app, f"{app}'s process {pid} runs as {proc_user!r}"
    assert proc_comm == "java", f"{app}'s main process is {proc_comm!r}, not java"


# What runs in the lab: its backends' units and every app instance of the inventory.
LAB_RUNNING_UNITS = LAB_BACKEND_UNITS | {app for apps in INVENTORY_HOSTS.values() for app in apps["apps"]}


def running_units(hosts, inventory):
    """(host name, testinfra host, unit) for every unit of the stack, apps included, that runs."""
    for name, host in hosts.items():
        for unit in STACK_UNITS + inventory[name]["apps"]:
            if host.service(f"{unit}.service").is_running:
                yield name, host, unit


def test_no_two_services_share_a_user(hosts, inventory):
    """Every running service of the stack, apps included, runs as the non-root user its unit
    names, and no two services use the same user, on one host or across the lab."""
    users = {}  # service -> user
    for name, host, unit in running_units(hosts, inventory):
        configured = host.check_output(f"systemctl show --property=User --value {unit}.service").strip()
        pid = main_pid(host, unit)
        running_as = host.check_output(f"stat -c %U /proc/{pid}").strip()
        assert running_as == configured != "root", \
            f"{unit} on {name} runs as {running_as!r}, its unit names {configured!r}"
        assert users.setdefault(unit, running_as) == running_as, \
            f"{unit} runs as {users[unit]!r} on one host and {running_as!r} on {name}"
    assert LAB_RUNNING_UNITS <= users.keys(), \
        f"not running: {sorted(LAB_RUNNING_UNITS - users.keys())}"
    sharing = {user: sorted(u for u in users if users[u] == user) for user in users.values()}
    assert all(len(units) == 1 for units in sharing.values()), f"services sharing a user: {sharing}"


def test_every_running_unit_is_hardened(hosts, inventory):
    """Every unit of the stack that runs in the lab, apps included, keeps its exposure low by
    systemd's own measure (`--threshold` makes `systemd-analyze security` fail above it)."""
    rated = []
    for name, host, unit in running_units(hosts, inventory):
        result = host.run(f"systemd-analyze security --threshold={MAX_EXPOSURE} {unit}.service")
        overall = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
        assert result.rc == 0, f"{unit} on {name}: {overall}"
        rated.append(unit)
    assert LAB_RUNNING_UNITS <= set(rated), f"not running: {sorted(LAB_RUNNING_UNITS - set(rated))}"


def test_listens_on_port(hosts, inventory, placement):
    name, app = placement
    host = hosts[name]
    port = int(env_file(host, app)["EXPOSE_PORT"])
    assert port == inventory[name]["ports"][app]
    listeners = host.check_output(f"ss -Htlnp 'sport = :{port}'")
    assert f"pid={main_pid(host, app)}," in listeners, f"{app} does not listen on {port}: {listeners!r}"
    # on all interfaces: reachable from the controller at the host's address
    status, body = http_get(f"http://{inventory[name]['addr']}:{port}{HEALTH_PATH}")
    assert status in (200, 204), f"health of {app} on {name}: HTTP {status} {body[:200]}"


def test_environment_points_at_the_inventory(hosts, inventory, placement):
    name, app = placement
    env = env_file(hosts[name], app)
    assert env["OTEL_SERVICE_NAME"] == app
    # the lab is deployed with the inventory's per-instance modes (no tracing_mode override)
    assert env["MODE"] == inventory[name]["modes"][app], f"{app}: MODE={env['MODE']}"
    assert env["TARGET_ONE_HOST"] == app_url("app-b").removeprefix("http://")
    assert env["TARGET_TWO_HOST"] == app_url("app-c").removeprefix("http://")
    # Each mode's endpoint is its receiver on the first host of that receiver's group (the lab
    # keeps OTLP's ports): a variable pointing at the other receiver would pass the traces
    # through the wrong path unseen by the rest of this file (test_pipeline checks the counters).
    collector, jaeger = (addr(GROUPS[group][0]) for group in ("otel_collector", "jaeger_collector"))
    expected_endpoints = {"OTEL_GRPC_ENDPOINT": f"{collector}:4317",
                          "OTEL_HTTP_ENDPOINT": f"http://{collector}:4318/v1/traces",
                          "JAEGER_GRPC_ENDPOINT": f"{jaeger}:4317",
                          "JAEGER_HTTP_ENDPOINT": f"http://{jaeger}:4318/v1/traces"}
    assert {k: env.get(k) for k in expected_endpoints} == expected_endpoints
    assert hosts[name].file(env["APP_JAR"]).is_file
    mode = hosts[name].file(f"/etc/helidon-apps/{app}.env")
    assert mode.mode == 0o640 and mode.group == app


@pytest.fixture(scope="module")
def chain_request():
    """Sends GET /chain to app-a with a fresh W3C trace id; returns (trace_id, status, body)."""
    trace_id, status, body, _ = send_traced("/chain")
    return trace_id, status, body


def test_chain_returns_path(chain_request):
    _, status, body = chain_request
    assert status == 200, f"/chain answered HTTP {status}: {body[:300]}"
    assert json.loads(body) == {"path": "/chain"}


def test_log_file_holds_the_trace_id(hosts, chain_placement, chain_request):
    name, app = chain_placement
    trace_id, status, _ = chain_request
    assert status == 200
    log_file = env_file(hosts[name], app)["LOG_FILE"]
    deadline = time.monotonic() + LOG_WAIT
    while True:
        found = hosts[name].run(f"grep -m1 -F 'trace_id={trace_id}' {log_file}")
        if found.rc == 0:
            break
        assert time.monotonic() < deadline, f"no line with trace_id={trace_id} in {log_file} on {name}"
        time.sleep(1)
    line = found.stdout.strip()
    assert re.search(rf"trace_id={trace_id} span_id=[0-9a-f]{{16}} resource\.service\.name={app}\b", line), line


def unit_state(host, unit):
    """A few properties of a unit, as {name: value}."""
    return systemctl_show(host, unit, "ActiveState", "Result", "ExecMainStatus", "NRestarts")


def test_bad_setting_fails_the_deploy_with_the_apps_words_and_no_restart_loop(hosts, inventory):
    """A setting the app refuses (here a LOG_FILE_MAX_SIZE logback cannot read) fails the deploy
    with the app's own line from the journal; the unit stays down (exit status 2 is not restarted:
    RestartPreventExitStatus) instead of restarting every 5 s; the next deploy with the setting
    gone brings the instances back."""
    name = next(h for h in sorted(inventory) if "app-a" in inventory[h]["apps"])
    apps, host = inventory[name]["apps"], hosts[name]
    health_timeout = 20  # > RestartSec (5 s): a restart loop would show in NRestarts
    configure_one_host = ["--limit", name, "--tags", "app_configure"]
    with restoring(*configure_one_host, timeout=1200):
        bad = deploy_lab(*configure_one_host, "-e", json.dumps(
            {"app_health_timeout": health_timeout, "app_extra_env": {"LOG_FILE_MAX_SIZE": "lots"}}))
        assert bad.returncode != 0, "the deploy passed with LOG_FILE_MAX_SIZE=lots"
        for app in apps:  # each instance named with its own URL, and what it said
            assert re.search(rf"{app} did not answer 200 or 204 on http://127\.0\.0\.1:\d+{HEALTH_PATH} "
                             rf"within {health_timeout} s", bad.stdout), bad.stdout[-3000:]
            assert f"{app} said:" in bad.stdout, bad.stdout[-3000:]
        for app in apps:
            state = unit_state(host, app)
            assert state == {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "2",
                             "NRestarts": "0"}, f"{app} on {name}: {state}"
        assert "configuration error: logging did not start" in bad.stdout, bad.stdout[-3000:]
        assert "[maxFileSize]" in bad.stdout and "lots" in bad.stdout, bad.stdout[-3000:]
    for app in apps:
        assert unit_state(host, app)["ActiveState"] == "active", f"{app} on {name} did not come back"


def test_an_instance_whose_environment_changed_restarts_also_when_the_run_fails_after_it(hosts, inventory, tmp_path):
    """An instance restarts when its environment file changed, also when the run fails after the
    change (force_handlers runs the app role's restart handler): here a new variable goes into the
    environment file, then the instance's new unit is refused by its checker (its executable is
    missing). Without that restart the instance would keep its old environment: the next run finds
    the file unchanged and restarts nothing."""
    name = next(h for h in sorted(inventory) if "app-a" in inventory[h]["apps"])
    host = hosts[name]
    configure_one_host = ["--limit", name, "--tags", "app_configure"]
    real = (ANSIBLE_DIR.parent / "systemd" / "app.service.j2").read_text()
    broken = tmp_path / "app.service.j2"
    broken.write_text(re.sub(r"(?m)^ExecStart=\S+", "ExecStart=/nonexistent/bin/java", real, count=1))
    assert broken.read_text() != real
    mark = f"DEPLOY_MARK={secrets.token_hex(4)}"
    pid_before = host.check_output("systemctl show --property=MainPID --value app-a.service")
    with restoring(*configure_one_host, timeout=1200):
        bad = deploy_lab(*configure_one_host, "-e", json.dumps(
            {"app_unit_template": str(broken), "app_extra_env": dict([mark.split("=")])}), timeout=600)
        assert bad.returncode != 0, "the deploy passed with a unit whose executable is missing"
        assert "/nonexistent/bin/java" in bad.stdout, bad.stdout[-3000:]
        assert re.search(rf"RUNNING HANDLER \[{re.escape(APP_RESTART_HANDLER)}\][^\n]*\n"
                         rf"[^\n]*\nchanged: \[{name}\] => \(item=app-a\)", bad.stdout), bad.stdout[-3000:]
        pid = host.check_output("systemctl show --property=MainPID --value app-a.service")
        assert pid not in ("0", pid_before), f"app-a was not restarted: MainPID {pid_before} -> {pid}"
        environment = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ").splitlines()
        assert mark in environment, f"app-a (PID {pid}) runs without {mark}"
        print(f"the failed deploy restarted app-a: PID {pid_before} -> {pid}, with {mark}")
    assert mark not in host.file("/etc/helidon-apps/app-a.env").content_string, "the restore left the variable"


def assert_stopped_in_the_first_play(result, inventory):
    """No play after site.yml's checks started, and nothing changed on any host."""
    plays = re.findall(r"^PLAY \[(.+?)\]", result.stdout, re.M)
    assert plays == ["Check variables and hosts before changing anything"], plays
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", result.stdout, re.M))
    assert recap == {host: "0" for host in inventory}, recap


@pytest.mark.parametrize("variable, value, error", [
    # refused by the app role's argument specs
    ("tracing_mode", "bogus", r"app_mode must be one of: .*got: bogus"),
    # refused by role common's preflight (the base system's play would only come next)
    ("common_app_log_group", "Log Readers", r"common_app_log_group a plain group name \(got Log Readers\)"),
    # refused by the firewall role's argument specs: a misspelt key of an extra port's entry
    ("firewall_extra_ports", [{"port": 53, "protocol": "udp"}],
     r"firewall_extra_ports\.protocol\. Supported parameters include: comment, port, proto, scope"),
    # refused by the app role's preflight: an extra variable the env file sets already
    ("app_extra_env", {"MODE": "none"}, r"app_extra_env: MODE is written by app\.env\.j2 already"),
    # refused by the app role's preflight: no time at all for the instances to become healthy
    ("app_health_timeout", 0, r"app_health_timeout 1 s or more \(got 0\)"),
    # refused by the app role's preflight: a JVM option the unit's $JAVA_OPTS would split in two
    ("app_java_opts_extra", ["-Dgreeting=hello world"],
     r"app_java_opts_extra: .*-Dgreeting=hello world.* hold spaces, quotes or backslashes"),
])
def test_a_bad_variable_on_one_host_stops_every_host_before_any_change(inventory, tmp_path, variable, value, error):
    """A value its role refuses, set for one host only (through a second inventory source), fails
    the first play on that host and stops the others too: no play after the checks starts
    anywhere and nothing changes, and the error names the variable and the value."""
    name = sorted(inventory)[-1]
    overlay = tmp_path / "bad-value.yml"
    overlay.write_text(json.dumps({"all": {"hosts": {name: {variable: value}}}}))
    bad = deploy_lab("-i", str(overlay))
    assert_refused(bad, f"{variable}={value} on {name}")
    assert re.search(error, " ".join(bad.stdout.split())), bad.stdout[-3000:]
    assert_stopped_in_the_first_play(bad, inventory)


# Jaeger's hosts in the order of site.yml's checks, and the host of jaeger_query alone, if any.
JAEGER_HOSTS = list(dict.fromkeys(GROUPS["jaeger_collector"] + GROUPS["jaeger_query"]))
QUERY_ONLY_HOST = next((h for h in GROUPS["jaeger_query"] if h not in GROUPS["jaeger_collector"]), None)


@pytest.mark.parametrize("extra_vars, words", [
    # Role firewall: the Collector's health check moved onto its own OTLP/gRPC port makes two
    # services of one host take one port.
    ({"otel_collector_health_port": COLLECTOR_GRPC_PORT},
     f"{COLLECTOR_HOST}: port {COLLECTOR_GRPC_PORT}/tcp is taken by otel-collector OTLP gRPC and "
     "otel-collector health check"),
    # Role cassandra: a keyspace set for Jaeger alone, which jaeger-collector would not be granted
    # (the jaeger role's Cassandra settings follow what the cassandra role sets up for Jaeger).
    ({"jaeger_cassandra_keyspace": "other_keyspace"},
     f"cassandra: jaeger_cassandra_keyspace on {', '.join(JAEGER_HOSTS)} differs from cassandra_jaeger_keyspace "
     f"(jaeger_v1_dc1) of {GROUPS['cassandra'][-1]}"),
    # The same for the password, named without either value.
    ({"jaeger_cassandra_password": "not-the-password-cassandra-gives-jaeger"},
     f"cassandra: jaeger_cassandra_password on {', '.join(JAEGER_HOSTS)} differs from cassandra_jaeger_password "
     f"of {GROUPS['cassandra'][-1]}, the cassandra host"),
    # Role jaeger: jaeger-collector switched on for a host outside its group, where the last play
    # of site.yml would stop it again on every run.
    pytest.param({"jaeger_collector_enabled": True},
                 f"jaeger: {QUERY_ONLY_HOST} is not in the group of a service switched on here",
                 marks=pytest.mark.skipif(QUERY_ONLY_HOST is None, reason="no host runs jaeger-query alone")),
], ids=["two services on one port", "a keyspace for Jaeger alone", "a password for Jaeger alone",
        "a service switched on outside its group"])
def test_settings_that_contradict_each_other_stop_the_deploy_before_any_change(inventory, tmp_path, extra_vars,
                                                                               words):
    """Settings each valid alone but not together stop the run in its first play, on every host,
    before anything changes, with a message naming what contradicts what and no password."""
    # From a file, as a secret would be given: deploy.sh prints its command line.
    extra_vars_file = tmp_path / "contradiction.json"
    extra_vars_file.write_text(json.dumps(extra_vars))
    bad = deploy_lab("-e", f"@{extra_vars_file}", timeout=600)
    assert_refused(bad, sorted(extra_vars))
    assert words in " ".join(bad.stdout.split()), bad.stdout[-3000:]
    for name, value in extra_vars.items():
        assert not name.endswith("_password") or value not in bad.stdout + bad.stderr, f"{name}'s value is shown"
    assert_stopped_in_the_first_play(bad, inventory)


@pytest.mark.skipif(QUERY_ONLY_HOST is None, reason="no host runs jaeger-query alone")
def test_a_jaeger_service_switched_off_stops_and_starts_again_when_switched_on(hosts):
    """jaeger_query_enabled false on a host of the jaeger_query group stops and disables its
    jaeger-query; the next run without it starts it again."""
    args = ["--limit", QUERY_ONLY_HOST, "--tags", "jaeger_configure"]
    query = hosts[QUERY_ONLY_HOST].service("jaeger-query")
    assert query.is_running and query.is_enabled
    with restoring(*args):
        off = deploy_lab(*args, "-e", json.dumps({"jaeger_query_enabled": False}), timeout=600)
        assert off.returncode == 0, off.stdout[-3000:]
        assert not query.is_running and not query.is_enabled
    assert query.is_running and query.is_enabled


def assert_not_ready_in_its_own_words(bad, unit, url, ready_timeout):
    """Asserts that a deploy failed in role common's wait_http, for unit on url, with what the
    unit said ("address already in use": the tests hold its port), and that the wait ended at its
    timeout; returns how long it took (s), from the task timings the deploy prints
    (profile_tasks). Its last try may begin just before the deadline and take the 5 s a try may
    last."""
    assert bad.returncode != 0, f"the deploy passed with {unit}'s port taken"
    assert f"{unit} did not answer 200 on {url} within {ready_timeout} s" in bad.stdout, bad.stdout[-3000:]
    assert f"{unit} said:" in bad.stdout, bad.stdout[-3000:]
    assert "address already in use" in bad.stdout, bad.stdout[-3000:]
    waited = re.search(r"Wait until each readiness URL answers, by the deadline -+ ([0-9.]+)s", bad.stdout)
    assert waited, f"no time of the wait in the deploy's task timings:\n{bad.stdout[-3000:]}"
    assert float(waited.group(1)) <= ready_timeout + 10, f"the wait of {ready_timeout} s lasted {waited.group(1)} s"
    return float(waited.group(1))


def test_a_service_that_is_not_ready_fails_the_deploy_with_its_own_words():
    """The readiness wait of every role (role common's wait_http, here through start_unit): a
    Collector whose health check is put on a port another process of its host holds (a transient
    unit the test starts) starts, cannot bind it, exits, and is restarted every 5 s. The deploy
    fails with the Collector's own error from the journal of its last run, not only the wait's
    "connection refused"; the next deploy puts it back. (Its template checker cannot catch this:
    `otelcol validate` binds nothing.) The port's holder accepts connections and never answers,
    as a hung service would: the wait still ends at its timeout, not after its count of tries
    (each of which took 30 s here, so a 10 s wait lasted 190 s)."""
    collector_addr = addr(COLLECTOR_HOST)
    ready_timeout = 10
    held_port = COLLECTOR_HEALTH_PORT + 66
    with deploy_with_port_held(COLLECTOR_HOST, "otel_collector_configure", held_port, {
            "otel_collector_health_port": held_port, "common_start_unit_ready_timeout": ready_timeout}) as bad:
        waited = assert_not_ready_in_its_own_words(
            bad, "otel-collector", f"http://{collector_addr}:{held_port}/", ready_timeout)
        print(f"the wait of {ready_timeout} s on a port that never answers ended after {waited} s")
    # On the Collector's host: its health port is open to the cluster's hosts only (role firewall).
    assert http_get_on(collector_addr, f"http://{collector_addr}:{COLLECTOR_HEALTH_PORT}/", timeout=5)[0] == 200


@pytest.mark.skipif(not GROUPS.get("jaeger_collector"), reason="no jaeger_collector host")
def test_a_collector_not_ready_after_its_restart_fails_the_deploy_with_its_own_words():
    """After a restart of jaeger-collector (its config changed), the jaeger role's handler waits
    for it before jaeger-query restarts: that wait too fails with the collector's own words from
    its journal and ends at its timeout. Here the collector's health check is moved onto a port a
    transient unit of the test holds (accepting, never answering): the restarted collector cannot
    bind it and exits."""
    host = GROUPS["jaeger_collector"][0]
    ready_timeout = 10
    held_port = JAEGER_COLLECTOR_HEALTH_PORT + 66
    with deploy_with_port_held(host, "jaeger_configure", held_port, {
            "jaeger_collector_health_port": held_port, "common_start_unit_ready_timeout": ready_timeout}) as bad:
        waited = assert_not_ready_in_its_own_words(
            bad, "jaeger-collector", f"http://{addr(host)}:{held_port}/status", ready_timeout)
        # the handler's wait, not start_unit's after it
        assert "RUNNING HANDLER [jaeger : Wait for jaeger-collector after the restart]" in bad.stdout, \
            bad.stdout[-3000:]
        print(f"the handler's wait of {ready_timeout} s ended after {waited} s")


def test_rebooted_host_comes_back_with_its_units(inventory, ssh_key):
    """Reboots a host (the lab restarts the container): every unit of the stack that ran before
    (apps included) runs again, enabled, the apps answer health, and the firewall's table is
    loaded at boot when it was before (nftables.service, not Ansible)."""
    assert REBOOT_HOST in inventory, f"{REBOOT_HOST} not in the lab inventory"
    addr, apps = inventory[REBOOT_HOST]["addr"], inventory[REBOOT_HOST]["apps"]
    assert apps, f"{REBOOT_HOST} runs no app"
    units = STACK_UNITS + apps

    def active_units():
        res = ssh(addr, ssh_key, "systemctl is-active " + " ".join(f"{u}.service" for u in units))
        return {u for u, state in zip(units, res.stdout.split()) if state == "active"}

    def table_loaded():
        return ssh(addr, ssh_key, f"nft list table inet {FIREWALL_TABLE}").returncode == 0

    ran = active_units()
    assert set(apps) <= ran, f"apps not running before the reboot: {sorted(set(apps) - ran)}"
    # The lab runs the firewall (firewall_enabled's default): a test before this one that left it
    # off would make "loaded at boot" unprovable here.
    assert table_loaded(), f"table inet {FIREWALL_TABLE} not loaded before the reboot"
    marker = "/run/lab-test-before-reboot"  # /run is a fresh tmpfs on every boot
    assert ssh(addr, ssh_key, f"touch {marker}").returncode == 0
    ssh(addr, ssh_key, "systemctl --no-block reboot")

    def rebooted():
        try:
            res = ssh(addr, ssh_key, f"test ! -e {marker} && systemctl is-system-running --wait", timeout=60)
        except Exception:  # noqa: BLE001 - host still down: keep waiting
            return False
        # degraded: some unit failed, which the comparison below shows if it is one of the stack's
        return res.stdout.strip() in ("running", "degraded")

    wait_for(f"{REBOOT_HOST} to reboot", rebooted, REBOOT_TIMEOUT)
    wait_for(f"{sorted(ran)} on {REBOOT_HOST} to run again after the reboot", lambda: active_units() >= ran, 120)
    enabled = ssh(addr, ssh_key, "systemctl is-enabled " + " ".join(f"{u}.service" for u in sorted(ran)))
    assert enabled.stdout.split() == ["enabled"] * len(ran), dict(zip(sorted(ran), enabled.stdout.split()))
    assert table_loaded(), f"table inet {FIREWALL_TABLE} loaded before the reboot, not after it"
    for app in apps:
        def healthy():
            try:
                return http_get(app_url(app, HEALTH_PATH), timeout=5)[0] in (200, 204)
            except OSError:
                return False
        wait_for(f"{app} on {REBOOT_HOST} to answer health after the reboot", healthy, 120)
