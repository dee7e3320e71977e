"""Issue 19: every unit of the project has a memory bound (MemoryHigh below MemoryMax; here the
running ones, test_logs_config.py the rendered units the lab does not run), the Collector's
memory_limiter fits under its unit's bound, a bound that cannot work stops the run before any
change, the apps' log files are not world-readable, and a flood of one app instance gets 503s
beyond its limit instead of restarting it."""
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (APP_PLACEMENTS, GROUPS, INVENTORY_HOSTS, app_url, assert_refused, deploy_lab, http_get,
                      systemctl_show)

LOG_GROUP = "helidon-logs"  # common_app_log_group's default, which the lab inventory keeps

# The backends each inventory group runs (their units). Cassandra is not among them: in the lab it
# runs outside systemd (ansible/lab/cassandra.sh), so its unit is only rendered elsewhere.
GROUP_UNITS = {
    "otel_collector": ["otel-collector"],
    "jaeger_collector": ["jaeger-collector"],
    "jaeger_query": ["jaeger-query"],
    "prometheus": ["prometheus"],
}


def expected_units(host):
    units = list(INVENTORY_HOSTS[host]["apps"])
    for group, names in GROUP_UNITS.items():
        if host in GROUPS.get(group, []):
            units += names
    return units


@pytest.mark.parametrize("name", sorted(INVENTORY_HOSTS))
def test_every_unit_has_a_memory_bound(hosts, name):
    host = hosts[name]
    # Whether the kernel can apply the bound here: the lab's containers get a cgroup2 tree without
    # the memory controller when the machine running the lab uses cgroup v1 for memory (as this
    # project's CI machine does); on a VM with cgroup2 the unit's cgroup carries the bound.
    enforced = "memory" in host.check_output("cat /sys/fs/cgroup/system.slice/cgroup.controllers").split()
    figures = []
    for unit in expected_units(name):
        props = systemctl_show(host, unit, "MemoryMax", "MemoryHigh", "ActiveState", "ControlGroup")
        assert props["ActiveState"] == "active", f"{name}: {unit} is {props['ActiveState']}"
        assert props["MemoryMax"].isdigit(), f"{name}: {unit} has MemoryMax={props['MemoryMax']}"
        assert props["MemoryHigh"].isdigit(), f"{name}: {unit} has MemoryHigh={props['MemoryHigh']}"
        high, top = int(props["MemoryHigh"]), int(props["MemoryMax"])
        assert 0 < high < top, f"{name}: {unit}: MemoryHigh {high} not below MemoryMax {top}"
        figures.append(f"{unit} {high >> 20}/{top >> 20} MiB")
        if enforced:
            cgroup_max = host.check_output(f"cat /sys/fs/cgroup{props['ControlGroup']}/memory.max")
            assert cgroup_max == str(top), f"{name}: {unit}: cgroup memory.max {cgroup_max}, unit {top}"
    print(f"{name}: MemoryHigh/MemoryMax: " + ", ".join(figures)
          + ("; the units' cgroups carry them" if enforced else
             "; not enforced in this lab (no memory controller in the containers' cgroup2 tree)"))


@pytest.mark.skipif(not GROUPS.get("otel_collector"), reason="no otel_collector host in the inventory")
def test_collector_memory_limiter_fits_under_its_unit(hosts):
    host = hosts[GROUPS["otel_collector"][0]]
    config = host.file("/etc/otel-collector/config.yaml").content_string
    limit = int(re.search(r"^\s+limit_mib:\s*(\d+)", config, re.M).group(1))
    spike = int(re.search(r"^\s+spike_limit_mib:\s*(\d+)", config, re.M).group(1))
    props = systemctl_show(host, "otel-collector", "MemoryHigh", "MemoryMax", "Environment")
    high_mib = int(props["MemoryHigh"]) >> 20
    assert 0 < spike < limit < high_mib < int(props["MemoryMax"]) >> 20, (spike, limit, props)
    # The Go runtime's soft limit is the unit's MemoryHigh too.
    assert f"GOMEMLIMIT={high_mib}MiB" in props["Environment"].split(), props["Environment"]
    print(f"memory_limiter {limit} MiB (spike {spike}) < MemoryHigh {high_mib} MiB"
          f" < MemoryMax {int(props['MemoryMax']) >> 20} MiB")


def test_app_logs_are_readable_by_the_log_group_only(hosts, placement):
    name, app = placement
    host = hosts[name]
    log_dir = host.file(f"/var/log/helidon-apps/{app}")
    assert (log_dir.user, log_dir.group, log_dir.mode) == (app, LOG_GROUP, 0o2750), \
        f"{app}: log directory {log_dir.user}:{log_dir.group} {oct(log_dir.mode)}"
    log = host.file(f"/var/log/helidon-apps/{app}/{app}.log")
    assert log.exists and log.size > 0, f"{app}: no log lines"
    assert (log.user, log.group, log.mode) == (app, LOG_GROUP, 0o640), \
        f"{app}: log file {log.user}:{log.group} {oct(log.mode)}"
    # What the mode means: another user cannot read it, one in the log group can.
    other = host.run(f"setpriv --reuid=nobody --regid=nogroup --clear-groups head -c 1 {log.path}")
    assert other.rc != 0 and "Permission denied" in other.stderr, (other.rc, other.stderr)
    member = host.run(f"setpriv --reuid=nobody --regid=nogroup --groups={LOG_GROUP} head -c 64 {log.path}")
    assert member.rc == 0 and member.stdout, (member.rc, member.stderr)


# ---- a bounded flood of one instance (issue 19 point 6) ----------------------------------------

FLOOD_APP = "app-b"        # not the /chain entry point, so the other tests' traffic is unaffected
FLOOD = 300                # concurrent /random_sleep requests: 3x the role's app_max_concurrent_requests
                           # (100), fewer than its app_max_tcp_connections (400)
FLOOD_TIMEOUT = 30         # seconds per request: /random_sleep sleeps 5 s at most
SLEEP_LINE = "random sleep"  # the line /random_sleep logs after its sleep, before it answers


def _timed_get(url):
    start = time.monotonic()
    try:
        status, _ = http_get(url, timeout=FLOOD_TIMEOUT)
    except OSError as err:
        status = f"{type(err).__name__}: {err}"
    return status, time.monotonic() - start


def _sleep_lines(host):
    """How many times /random_sleep's handler has run in this log file."""
    log = f"/var/log/helidon-apps/{FLOOD_APP}/{FLOOD_APP}.log"
    return int(host.check_output(f"grep -c -F -e {SLEEP_LINE!r} {log} || true") or 0)


def test_a_flood_gets_503s_beyond_the_limit_and_the_unit_keeps_running(hosts):
    """Requests beyond app_max_concurrent_requests are refused without reaching the handler (so
    without sleeping): the handler ran exactly once per 200. The refusals' times are printed, not
    judged (a loaded machine would make any bound flaky)."""
    name = next(h for h, a in APP_PLACEMENTS if a == FLOOD_APP)
    host = hosts[name]
    before = systemctl_show(host, FLOOD_APP, "MainPID", "NRestarts")
    slept_before = _sleep_lines(host)
    url = app_url(FLOOD_APP, "/random_sleep")
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=FLOOD) as pool:
        answers = list(pool.map(_timed_get, [url] * FLOOD, timeout=FLOOD_TIMEOUT + 30))
    took = time.monotonic() - start
    slept = _sleep_lines(host) - slept_before
    ok = [t for s, t in answers if s == 200]
    refused = sorted(t for s, t in answers if s == 503)
    other = [s for s, _ in answers if s not in (200, 503)]
    print(f"{FLOOD} concurrent /random_sleep to {FLOOD_APP}: {len(ok)} x 200, {len(refused)} x 503 "
          f"(median {refused[len(refused) // 2] * 1000 if refused else 0:.0f} ms, slowest "
          f"{refused[-1] * 1000 if refused else 0:.0f} ms), {len(other)} other; {took:.1f} s; "
          f"the handler ran {slept} times")
    assert not other, f"answers other than 200 or 503: {other[:5]}"
    assert refused, "no request was refused: the flood did not reach the limit"
    assert len(ok) >= 50, f"only {len(ok)} requests were served"
    assert slept == len(ok), f"/random_sleep's handler ran {slept} times for {len(ok)} answers 200 " \
                             f"({len(refused)} refused): refused requests reached the handler"
    status, _ = http_get(app_url(FLOOD_APP, "/"), timeout=10)
    assert status == 200, f"/ answered {status} after the flood"
    after = systemctl_show(host, FLOOD_APP, "MainPID", "NRestarts", "ActiveState")
    assert after["ActiveState"] == "active"
    assert (after["MainPID"], after["NRestarts"]) == (before["MainPID"], before["NRestarts"]), \
        f"the unit restarted: {before} -> {after}"


# Bounds that cannot work must stop the run on every host before any change: a MemoryHigh at or above
# MemoryMax (the common role's memory_bounds entry point, which every role with a bounded unit calls
# in its preflight), and an app heap that leaves the JVM no room under MemoryHigh (the app role's
# own check, as the heap is a JVM size such as 300m). MemoryHigh is derived: 90 % of 256 is 230.
@pytest.mark.parametrize("role, extra, message", [
    ("app", {"app_memory_high_mib": 4096, "app_memory_max_mib": 2048},
     "app_memory_high_mib (4096) is not below app_memory_max_mib (2048)"),
    ("otel_collector", {"otel_collector_memory_high_mib": 4096, "otel_collector_memory_max_mib": 2048},
     "otel_collector_memory_high_mib (4096) is not below otel_collector_memory_max_mib (2048)"),
    ("app", {"app_heap_min": "64m", "app_heap_max": "300m", "app_memory_max_mib": 256},
     "app_heap_max (300m, 300.0 MiB) is not below app_memory_high_mib (230)"),
], ids=["app-memory", "collector-memory", "app-heap"])
def test_unusable_memory_bounds_stop_the_run_before_any_change(role, extra, message):
    proc = deploy_lab("--tags", f"{role}_configure", "-e", json.dumps(extra), timeout=600)
    output = " ".join(proc.stdout.split())
    assert_refused(proc, extra, "--tags", f"{role}_configure")
    assert message in output, proc.stdout[-3000:]
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.M))
    assert recap == {h: "0" for h in INVENTORY_HOSTS}, recap
    print(f"{extra}: refused in preflight on {len(recap)} hosts, changed=0 everywhere")
