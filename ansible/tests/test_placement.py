"""A component moved to another host stops on the host it left: site.yml's last play ("Stop what
the inventory no longer places on a host") stops and disables the unit of every group a host is not
in, which that group's own play no longer reaches, and retires the app instances of a host taken
out of `apps`.

Each test changes a copy of the lab inventory (written beside it, so that the lab's group_vars
apply), runs that play alone (--tags placement; the preflight checks run too) against the copy,
and checks the host that was left. It then restores the deployment as it was, and checks that the
same play against the real inventory changes nothing.

The last test places jaeger-query beside jaeger-collector, which neither inventory does, and runs
role jaeger there: where one host runs both, a change restarts the collector and the query service
only once the collector is healthy again (the collector creates the schema the query service
reads)."""
import json
import os
import re
import shlex
import time
from datetime import datetime, timezone

import yaml

from conftest import (GROUPS, INVENTORY, INVENTORY_HOSTS, QUERY_PORT, chain_trace_in, changed_tasks, deploy_lab,
                      http_get_on, restoring, send_chain, systemctl_show, task_results, wait_for)

UNIT = "otel-collector"
HEALTH_PORT = 13133  # the Collector's health_check extension (role otel_collector's default)
JAEGER_COLLECTOR_HEALTH_PORT = 13134  # role jaeger's default


def recap(output):
    """{host: changed} of a playbook's PLAY RECAP."""
    return {h: int(c) for h, c in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


def run_site(inventory, *args):
    """site.yml against `inventory` with ansible-playbook arguments `args`, through
    ansible/lab/deploy.sh (its LAB_INVENTORY)."""
    return deploy_lab(*args, timeout=600, env=dict(os.environ, LAB_INVENTORY=str(inventory)))


def run_placement_play(inventory, *args):
    """site.yml's placement play against `inventory`."""
    return run_site(inventory, "--tags", "placement", *args)


def run_with_changed_inventory(change, *args, play=run_placement_play):
    """`play` (the placement play unless named) against a copy of the lab inventory that `change`
    (a function of its parsed YAML) edited; the copy is removed afterwards."""
    changed = yaml.safe_load(INVENTORY.read_text())
    change(changed)
    path = INVENTORY.with_name(".hosts-placement-test.yml")
    path.write_text(yaml.safe_dump(changed, sort_keys=False))
    try:
        return play(path, *args)
    finally:
        path.unlink()


def wait_for_200(host, url, timeout=90):
    """Polls `url` from lab host `host` (its ports may be closed to the test's own address)."""
    addr = INVENTORY_HOSTS[host]["addr"]
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _ = http_get_on(addr, url)
        except OSError:
            status = None
        if status == 200 or time.monotonic() > deadline:
            return status
        time.sleep(2)


def assert_the_real_inventory_changes_nothing():
    again = run_placement_play(INVENTORY)
    assert again.returncode == 0, again.stdout[-3000:]
    assert set(recap(again.stdout).values()) == {0}, recap(again.stdout)


def unit_state(hosts, host, unit=UNIT):
    """[is-active, is-enabled] of a unit on a host."""
    out = hosts[host].run(f"systemctl is-active {unit}.service; systemctl is-enabled {unit}.service")
    return out.stdout.split()


def test_a_component_moved_away_stops_on_the_host_it_left(hosts):
    (old_host,) = GROUPS["otel_collector"]
    # Not onto jaeger-collector's host: both take 4317 and 4318, which the firewall preflight refuses.
    new_host = next(h for h in INVENTORY_HOSTS if h != old_host and h not in GROUPS["jaeger_collector"])
    assert unit_state(hosts, old_host) == ["active", "enabled"]

    def move(inventory):
        inventory["all"]["children"]["otel_collector"]["hosts"] = {new_host: None}

    try:
        proc = run_with_changed_inventory(move)
        changes = recap(proc.stdout)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert unit_state(hosts, old_host) == ["inactive", "disabled"], proc.stdout[-3000:]
        assert changes[old_host] >= 1 and all(changes[h] == 0 for h in changes if h != old_host), changes
        # The play stops only: the unit, its config and data stay for a move back.
        assert hosts[old_host].file(f"/etc/systemd/system/{UNIT}.service").exists
        assert not hosts[new_host].file(f"/etc/systemd/system/{UNIT}.service").exists
    finally:
        hosts[old_host].run(f"systemctl enable --now {UNIT}.service")
    print(f"{UNIT} moved {old_host} -> {new_host} in the inventory: stopped and disabled on "
          f"{old_host}, changed per host {changes}")

    addr = INVENTORY_HOSTS[old_host]["addr"]
    assert wait_for_200(old_host, f"http://{addr}:{HEALTH_PORT}/") == 200, \
        f"{UNIT} on {old_host} not healthy again after its restart"
    assert_the_real_inventory_changes_nothing()
    assert unit_state(hosts, old_host) == ["active", "enabled"]


def test_a_host_taken_out_of_apps_retires_its_app_instances(hosts):
    leaving = max(INVENTORY_HOSTS, key=lambda h: len(INVENTORY_HOSTS[h]["apps"]))
    instances = INVENTORY_HOSTS[leaving]["apps"]
    addr = INVENTORY_HOSTS[leaving]["addr"]

    def take_out(inventory):
        del inventory["all"]["children"]["apps"]["hosts"][leaving]

    # /chain targets on the leaving host would fail the app preflight of the others (they name
    # instances no host runs): literal addresses stand in for them here.
    targets = {f"app_target_{n}": f"{addr}:{INVENTORY_HOSTS[leaving]['ports'].get(app, 8000)}"
               for n, app in (("one", "app-b"), ("two", "app-c")) if app in instances}
    with restoring("--tags", "app_configure", "--limit", leaving, timeout=900):
        proc = run_with_changed_inventory(take_out, *(["-e", json.dumps(targets)] if targets else []))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        changes = recap(proc.stdout)
        assert changes[leaving] >= 1 and all(changes[h] == 0 for h in changes if h != leaving), changes
        for app in instances:
            state = hosts[leaving].run(f"systemctl is-active {app}.service").stdout.strip()
            assert state != "active", f"{app} still {state} on {leaving}"
            assert not hosts[leaving].file(f"/etc/systemd/system/{app}.service").exists
            assert not hosts[leaving].file(f"/etc/helidon-apps/{app}.env").exists
        print(f"{leaving} taken out of apps: {instances} stopped, units and environment files "
              f"removed; changed per host {changes}")
    for app in instances:
        port = INVENTORY_HOSTS[leaving]["ports"][app]
        assert wait_for_200(leaving, f"http://{addr}:{port}/") == 200, f"{app} not back on {leaving}"
    assert_the_real_inventory_changes_nothing()


def logged_at(host, unit, pid, message):
    """When process `pid` of `unit` logged `message`, by the time Jaeger's logger puts at the
    start of each line (UTC, ms; the journal's own stamp is when journald read the line)."""
    out = host.run(f"journalctl -u {unit} _PID={pid} -o cat --no-pager --grep {shlex.quote(message)}")
    lines = out.stdout.splitlines()
    assert lines, f"{unit} (PID {pid}) never logged {message!r}: {out.stderr.strip()}"
    return datetime.fromisoformat(lines[0].split()[0])


def chain_trace_on(addr, trace_id):
    """A /chain trace as jaeger-query on `addr` returns it, or None while it is not (completely)
    there (conftest's chain_trace_in); asked on that host: the test did not open its port."""
    try:
        return chain_trace_in(*http_get_on(addr, f"http://{addr}:{QUERY_PORT}/api/traces/{trace_id}"))
    except OSError:
        return None


def main_process(host, unit):
    """(MainPID, when it started) of a running unit."""
    shown = systemctl_show(host, unit, "MainPID", "ExecMainStartTimestamp", options="--timestamp=us+utc")
    assert shown.get("MainPID", "0") != "0", f"{unit} is not running: {shown}"
    started = datetime.strptime(shown["ExecMainStartTimestamp"], "%a %Y-%m-%d %H:%M:%S.%f UTC")
    return shown["MainPID"], started.replace(tzinfo=timezone.utc)


def handlers_that_ran(output, host):
    """The handlers ansible-playbook's output shows ran on `host` (ok or changed), in their order."""
    return [name for kind, name, results in task_results(output) if kind == "RUNNING HANDLER"
            and re.search(rf"^(ok|changed): \[{re.escape(host)}\]", results, re.MULTILINE)]


def remove_jaeger_query(host):
    """Takes what role jaeger installed for jaeger-query off a host the inventory does not place it
    on: the placement play stops it but leaves its files (its Prometheus password among them) and
    its user, and with them there the next install would be no first one."""
    out = host.run("systemctl disable --now jaeger-query.service; "
                   "rm -f /etc/systemd/system/jaeger-query.service /etc/jaeger/query.yaml "
                   "/etc/jaeger/ui.json /etc/jaeger/prometheus-password && systemctl daemon-reload && "
                   "{ ! getent passwd jaeger-query >/dev/null || userdel jaeger-query; } && "
                   "{ ! getent group jaeger-query >/dev/null || groupdel jaeger-query; }")
    assert out.rc == 0, f"removing jaeger-query: {out.stderr}"


def assert_collector_restarted_before_query(proc, host_name, host):
    """The run `proc` restarted jaeger-collector, waited until it was healthy, then (re)started
    jaeger-query on `host`; returns (seconds from the collector's start to its "ready" line,
    seconds from that line to the query service's start)."""
    restarted = [name for kind, name in changed_tasks(proc.stdout) if kind == "RUNNING HANDLER"]
    assert restarted == ["jaeger : Restart jaeger-collector", "jaeger : Restart jaeger-query"], restarted
    # The order as the run reports it, the wait included: the start times below show the order too,
    # but only while the collector takes longer to become ready than Ansible takes from one
    # handler to the next (here about as long: without the wait, one of two runs got them in order).
    ran = handlers_that_ran(proc.stdout, host_name)
    steps = ["jaeger : Restart jaeger-collector", "jaeger : Wait until each readiness URL answers, by the deadline",
             "jaeger : Restart jaeger-query"]
    assert all(step in ran for step in steps), ran
    assert [ran.index(step) for step in steps] == sorted(ran.index(step) for step in steps), ran
    collector_pid, collector_started = main_process(host, "jaeger-collector")
    _, query_started = main_process(host, "jaeger-query")
    ready = logged_at(host, "jaeger-collector", collector_pid, "Everything is ready")
    to_ready, then_query = (ready - collector_started).total_seconds(), (query_started - ready).total_seconds()
    assert to_ready > 0 and then_query > 0, (
        f"jaeger-query started {then_query:+.3f} s after the collector said it was ready"
        f" (the collector started {to_ready:.3f} s before that)")
    return to_ready, then_query


def chain_trace_in_jaeger_query(addr):
    """Sends a /chain with a new trace id; returns (that id, its spans in jaeger-query on `addr`)."""
    trace_id, _ = send_chain()
    trace = wait_for(f"trace {trace_id} in jaeger-query on {addr}", lambda: chain_trace_on(addr, trace_id), timeout=90)
    return trace_id, len(trace["spans"])


def test_jaeger_query_beside_the_collector_restarts_once_the_collector_is_healthy(hosts):
    """jaeger-query placed on jaeger-collector's host, with a log level that changes both configs,
    by role jaeger alone on that host: the collector restarts, is waited for, then the query
    service starts and reads what the collector stores; a second run changes nothing. Afterwards
    the host is deployed as its inventory says and jaeger-query's files are removed."""
    (host,) = GROUPS["jaeger_collector"]
    assert host not in GROUPS["jaeger_query"], "the lab inventory already runs both on one host"
    addr = INVENTORY_HOSTS[host]["addr"]
    jaeger_only = ("--limit", host, "--tags", "jaeger_install,jaeger_configure")
    beside = ("-e", "jaeger_log_level=debug", *jaeger_only)

    def add_query(inventory):
        inventory["all"]["children"]["jaeger_query"]["hosts"][host] = None

    remove_jaeger_query(hosts[host])  # left by an interrupted run of this test
    try:
        with restoring(*jaeger_only):
            proc = run_with_changed_inventory(add_query, *beside, play=run_site)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
            to_ready, then_query = assert_collector_restarted_before_query(proc, host, hosts[host])
            trace_id, spans = chain_trace_in_jaeger_query(addr)
            again = run_with_changed_inventory(add_query, *beside, play=run_site)
            assert again.returncode == 0 and recap(again.stdout).get(host) == 0, \
                (recap(again.stdout), again.stdout[-3000:])
        states = unit_state(hosts, host, "jaeger-query")
        assert states == ["inactive", "disabled"], f"jaeger-query on {host} after the restore: {states}"
    finally:
        remove_jaeger_query(hosts[host])
    print(f"jaeger-query beside jaeger-collector on {host}: the collector restarted, said it was ready"
          f" {to_ready:.2f} s later, jaeger-query started {then_query:.2f} s after that and returned"
          f" /chain trace {trace_id} ({spans} spans); the same run again changed nothing")
    assert wait_for_200(host, f"http://{addr}:{JAEGER_COLLECTOR_HEALTH_PORT}/status") == 200, \
        f"jaeger-collector on {host} not healthy after the restore"
    assert_the_real_inventory_changes_nothing()
