"""Service Performance Monitoring in the deployed lab (spm_enabled): spans -> span_metrics
connector -> Prometheus -> jaeger-query's metrics API (the Monitor tab).

After a bounded load (scripts/load.sh: the original's endpoint mix, plus /error_test calls),
Prometheus must hold traces_span_metrics_calls_total for every instance whose MODE passes the
Collector (in the lab app-a and app-b; SERVICES below), and
jaeger-query's /api/metrics/{calls,latencies,errors} must return series for app-a, the error
series non-zero. Every wait is bounded. Skipped when the lab inventory has spm_enabled false.

With LAB_SWITCH_TEST=1 it also switches spm_enabled off with the whole site.yml and checks that
only the SPM parts change, then on again and once more with the roles that read spm_enabled
(SPM_ROLE_TAGS): the same parts come back, and the run after that changes nothing.
"""
import json
import os
import re
import subprocess
import time
import urllib.parse
from datetime import datetime

import pytest

from conftest import (ANSIBLE_DIR, APP_PLACEMENTS, GROUPS, INVENTORY_HOSTS, SPM_ENABLED, app_url, changed_tasks,
                      deploy_lab, http_get, prometheus_auth_header)

ROOT = ANSIBLE_DIR.parent
# The instances whose spans pass the Collector (its span_metrics connector makes the calls metric):
# those the inventory gives an otel-collector-* MODE. In the lab app-c and app-d send straight to
# Jaeger, so Prometheus has no calls of their own (unless an earlier test switched their MODE).
SERVICES = [a for h, a in APP_PLACEMENTS if INVENTORY_HOSTS[h]["modes"].get(a, "").startswith("otel-collector")]
CALLS = "traces_span_metrics_calls_total"
METRICS_WAIT = 240  # seconds: connector flush (15 s) + scrape (15 s) + rate windows, with margin


pytestmark = pytest.mark.skipif(not SPM_ENABLED, reason="spm_enabled is false in the lab inventory")

PROMETHEUS_HOST = (GROUPS.get("prometheus") or [None])[0]
QUERY_HOST = (GROUPS.get("jaeger_query") or [None])[0]
COLLECTOR_HOST = (GROUPS.get("otel_collector") or [None])[0]


def addr(host):
    return INVENTORY_HOSTS[host]["addr"]


def prometheus_query(promql):
    url = f"http://{addr(PROMETHEUS_HOST)}:9090/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    status, body = http_get(url, headers=prometheus_auth_header())
    assert status == 200, f"Prometheus answered {status}: {body[:300]}"
    return json.loads(body)["data"]["result"]


# jaeger-query's rate window (its ratePer, also the [range] of the PromQL rate() it builds).
RATE_WINDOW_S = 60


def jaeger_metrics(kind, **params):
    query = {"service": "app-a", "lookback": 900000, "step": 15000, "ratePer": RATE_WINDOW_S * 1000, **params}
    url = f"http://{addr(QUERY_HOST)}:16686/api/metrics/{kind}?" + urllib.parse.urlencode(query)
    status, body = http_get(url, timeout=30)
    assert status == 200, f"jaeger-query {kind} answered {status}: {body[:300]}"
    return json.loads(body)


def point_time(point):
    """A metric point's timestamp (RFC 3339, nanoseconds and all) in seconds since the epoch."""
    stamp = re.sub(r"(\.\d{6})\d*", r"\1", point["timestamp"])  # fromisoformat takes microseconds
    return datetime.fromisoformat(stamp).timestamp()


def point_values(family, since):
    """Every numeric value of a metrics API answer (one family, several series) at points whose
    whole rate window lies after `since` (seconds since the epoch): what earlier tests' traffic
    left in the counters is outside their windows."""
    values = []
    for series in family.get("metrics") or []:
        for point in series.get("metricPoints") or []:
            gauge = point.get("gaugeValue") or {}
            if "doubleValue" in gauge and point_time(point) >= since + RATE_WINDOW_S:
                values.append(float(gauge["doubleValue"]))
    return values


def wait_until(what, check, timeout=METRICS_WAIT, interval=5):
    """Polls check() until it returns a truthy value or the timeout passes (then fails)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
        except AssertionError as err:  # not there yet (e.g. 503 during a restart)
            last = err
        if last and not isinstance(last, AssertionError):
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout}s (last: {last!r})")
        time.sleep(interval)


ERROR_TESTS = 10  # /error_test calls per app after the load


def calls(service, **labels):
    """Sum of traces_span_metrics_calls_total over a service's series (0 when it has none)."""
    selector = ",".join(f'{k}="{v}"' for k, v in {"service_name": service, **labels}.items())
    result = prometheus_query(f"sum({CALLS}{{{selector}}})")
    return float(result[0]["value"][1]) if result else 0.0


@pytest.fixture(scope="module")
def load():
    """Runs the bounded load on the lab apps, then ERROR_TESTS more /error_test calls on each
    app. Returns the calls counted before it ({service: calls}, and app-a's ERROR calls), so
    that the tests see this load counted, not what earlier tests' traffic left in the counters,
    and when it started ("start")."""
    before = {service: calls(service) for service in SERVICES}
    before["app-a errors"] = calls("app-a", status_code="STATUS_CODE_ERROR")
    before["start"] = time.time()
    apps = [app_url(app) for _, app in APP_PLACEMENTS]
    proc = subprocess.run(
        [str(ROOT / "scripts" / "load.sh"), "-n", "2", "-t", "150", "-p", "1", *apps],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, f"load.sh failed:\n{proc.stdout}\n{proc.stderr}"
    assert " 200 " in proc.stdout.replace("\n", " "), proc.stdout
    for base in apps:
        for _ in range(ERROR_TESTS):
            status, _body = http_get(f"{base}/error_test")
            assert status == 500
    return before


def test_prometheus_runs_as_its_own_user(hosts):
    host = hosts[PROMETHEUS_HOST]
    service = host.service("prometheus")
    assert service.is_running and service.is_enabled
    user = host.check_output("systemctl show -p User --value prometheus")
    assert user == "prometheus"
    assert host.check_output("ps -o user= -C prometheus").split()[0] == "prometheus"


def test_prometheus_config_passes_promtool(hosts):
    out = hosts[PROMETHEUS_HOST].run("promtool check config /etc/prometheus/prometheus.yml")
    assert out.rc == 0, out.stderr + out.stdout


def test_prometheus_scrapes_the_collector(load):
    collector = f"{addr(COLLECTOR_HOST)}:8889"

    def up():
        result = prometheus_query('up{job="aggregated-trace-metrics"}')
        return [r for r in result if r["metric"].get("instance") == collector and r["value"][1] == "1"]

    wait_until(f"Prometheus scraping {collector}", up)


@pytest.mark.parametrize("service", SERVICES)
def test_calls_total_per_service(load, service):
    wait_until(f"{CALLS} for {service} to count the load (from {load[service]:.0f})",
               lambda: calls(service) > load[service])
    result = wait_until(
        f"{CALLS} for {service}",
        lambda: prometheus_query(f'{CALLS}{{service_name="{service}"}}'),
    )
    labels = result[0]["metric"]
    # The dimensions the Monitor tab queries by.
    for label in ("span_name", "span_kind", "status_code"):
        assert label in labels, labels


def test_duration_histogram_has_the_jaeger_name(load):
    wait_until(
        "traces_span_metrics_duration_milliseconds_bucket",
        lambda: prometheus_query('traces_span_metrics_duration_milliseconds_bucket{service_name="app-a"}'),
    )


def metrics_of_the_load(kind, load, **params):
    """jaeger-query's `kind` family for app-a, once it has a point above 0 whose rate window lies
    after the load started."""
    def answer():
        family = jaeger_metrics(kind, **params)
        return family if any(v > 0 for v in point_values(family, load["start"])) else None
    return wait_until(f"jaeger-query {kind} of app-a above 0 after the load", answer)


def test_jaeger_monitor_calls(load):
    assert metrics_of_the_load("calls", load)["name"] == "service_call_rate"


def test_jaeger_monitor_latencies(load):
    assert metrics_of_the_load("latencies", load, quantile=0.95)["name"] == "service_latencies"


def test_error_test_calls_are_counted_as_errors(load):
    """Each /error_test on app-a is one SERVER span with status ERROR: its error calls grew by
    at least that many."""
    wait_until(f"{CALLS} of app-a with status ERROR to grow by {ERROR_TESTS}",
               lambda: calls("app-a", status_code="STATUS_CODE_ERROR") >= load["app-a errors"] + ERROR_TESTS)


def test_jaeger_monitor_errors_after_error_test(load):
    values = point_values(metrics_of_the_load("errors", load), load["start"])
    assert max(values) <= 1.0  # a fraction of the calls


def test_ui_shows_the_monitor_menu():
    status, body = http_get(f"http://{addr(QUERY_HOST)}:16686/search")
    assert status == 200
    compact = body.replace(" ", "").replace("\n", "")
    assert '"monitor":{"menuEnabled":true}' in compact, "UI config without the Monitor menu"


# Every role whose defaults, vars, tasks or templates read the switch, with both its tags: switching
# spm_enabled can change nothing else (a role that starts to read it is picked up here).
SPM_ROLES = sorted({
    role.name for role in (ANSIBLE_DIR / "roles").iterdir()
    for part in ("defaults", "vars", "tasks", "templates") for path in (role / part).rglob("*")
    if path.is_file() and re.search(r"\bspm_enabled\b", path.read_text())})
SPM_ROLE_TAGS = ("--tags", ",".join(f"{role}_{kind}" for role in SPM_ROLES for kind in ("install", "configure")))


def deploy(*args):
    """Runs ansible/lab/deploy.sh; returns {host: changed count} and the changed task names."""
    proc = deploy_lab(*args)
    assert proc.returncode == 0, f"deploy.sh {args} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.M))
    return {h: int(c) for h, c in recap.items()}, {name for _, name in changed_tasks(proc.stdout)}


@pytest.mark.skipif(os.environ.get("LAB_SWITCH_TEST") != "1",
                    reason="redeploys the lab three times (about 5 minutes): set LAB_SWITCH_TEST=1")
def test_switching_spm_off_and_on_converges(hosts):
    """spm_enabled false, the whole site.yml: only the SPM parts change (Prometheus stopped and
    disabled, collector and jaeger-query without SPM settings, the firewall's rules rendered again;
    test_firewall probes the ports it closes). True again, with the roles that read the switch
    (SPM_ROLE_TAGS; the whole site.yml if the switch-off failed): they restore those parts, and a
    further run of them is a no-op for every host."""
    spm_parts = {
        "otel_collector : Render the collector config (validated by otelcol-contrib before it replaces the live one)",
        "otel_collector : Restart otel-collector",
        "jaeger : Render the UI config of jaeger-query (Monitor menu when spm is on)",
        "jaeger : Render and validate the config of jaeger-query",
        "jaeger : Write the Prometheus password of jaeger-query (Monitor tab)",
        "jaeger : Remove the Prometheus password of jaeger-query (no SPM)",
        "jaeger : Restart jaeger-query",
        # the firewall closes (and then opens again) Prometheus's and the span metrics' ports
        "firewall : Render the project's table (checked with nft -c before it replaces the live file)",
        "firewall : Reload nftables",
    }
    # Each way, at least these change (the rest depends on what the hosts share).
    must_change = {
        "otel_collector : Render the collector config (validated by otelcol-contrib before it replaces the live one)",
        "jaeger : Render and validate the config of jaeger-query",
        "firewall : Render the project's table (checked with nft -c before it replaces the live file)",
    }
    assert {"prometheus", "otel_collector", "jaeger", "firewall"} <= set(SPM_ROLES), SPM_ROLES
    switched_off = False
    try:
        _, changed = deploy("-e", "spm_enabled=false")
        assert changed <= spm_parts | {"common : Stop and disable prometheus"}, changed
        assert must_change <= changed, changed
        prom = hosts[PROMETHEUS_HOST].service("prometheus")
        assert not prom.is_running and not prom.is_enabled
        query = hosts[QUERY_HOST]
        assert '"menuEnabled": false' in query.file("/etc/jaeger/ui.json").content_string
        assert "prometheus_spm" not in query.file("/etc/jaeger/query.yaml").content_string
        assert "span_metrics" not in hosts[COLLECTOR_HOST].file("/etc/otel-collector/config.yaml").content_string
        switched_off = True
    finally:
        # Only the SPM roles' parts changed, so only they need to run to switch back; after a
        # failure, the whole site gives every host its own settings again.
        _, changed = deploy(*(SPM_ROLE_TAGS if switched_off else ()))
    assert changed <= spm_parts | {"common : Enable and start prometheus"}, changed
    assert must_change <= changed, changed
    prom = hosts[PROMETHEUS_HOST].service("prometheus")
    assert prom.is_running and prom.is_enabled
    assert "prometheus_spm" in hosts[QUERY_HOST].file("/etc/jaeger/query.yaml").content_string
    assert "span_metrics" in hosts[COLLECTOR_HOST].file("/etc/otel-collector/config.yaml").content_string
    counts, changed = deploy(*SPM_ROLE_TAGS)
    assert not any(counts.values()), f"second run changed: {changed}"
    print(f"spm_enabled false (whole site.yml), true and again ({' '.join(SPM_ROLE_TAGS)}): "
          f"second run changed nothing on {sorted(counts)}")
