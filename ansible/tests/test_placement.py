"""A component moved to another host stops on the host it left: site.yml's last play ("Stop what
the inventory no longer places on a host") stops and disables the unit of every group a host is not
in, which that group's own play no longer reaches, and retires the app instances of a host taken
out of `apps`.

Each test changes a copy of the lab inventory (written beside it, so that the lab's group_vars
apply), runs that play alone (--tags placement; the preflight checks run too) against the copy,
and checks the host that was left. It then restores the deployment as it was, and checks that the
same play against the real inventory changes nothing."""
import json
import os
import re
import sys
import time
from pathlib import Path

import yaml

from conftest import ANSIBLE_DIR, GROUPS, INVENTORY, INVENTORY_HOSTS, http_get_on, restoring, run_in_group

UNIT = "otel-collector"
HEALTH_PORT = 13133  # the Collector's health_check extension (role otel_collector's default)


def recap(output):
    """{host: changed} of a playbook's PLAY RECAP."""
    return {h: int(c) for h, c in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


def run_placement_play(inventory, *args):
    """site.yml's placement play against `inventory`, as ansible/lab/deploy.sh runs site.yml (its
    workers stopped too on the timeout: run_in_group)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return run_in_group(["ansible-playbook", "-i", str(inventory), "site.yml", "--tags", "placement", *args],
                        timeout=600, cwd=ANSIBLE_DIR, env=env)


def run_with_changed_inventory(change, *args):
    """The placement play against a copy of the lab inventory that `change` (a function of its
    parsed YAML) edited; the copy is removed afterwards."""
    changed = yaml.safe_load(INVENTORY.read_text())
    change(changed)
    path = INVENTORY.with_name(".hosts-placement-test.yml")
    path.write_text(yaml.safe_dump(changed, sort_keys=False))
    try:
        return run_placement_play(path, *args)
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


def unit_state(hosts, host):
    out = hosts[host].run(f"systemctl is-active {UNIT}.service; systemctl is-enabled {UNIT}.service")
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
