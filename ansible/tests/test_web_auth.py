"""Prometheus's basic auth in the deployed lab (role prometheus, web config), and the secrets
behind it (issue 19, point 3).

- Prometheus's API, /-/ready and /metrics answer 401 without credentials, with a wrong password
  and with a wrong user, and 200 with the password generated on the controller;
- every scrape target is up: the Collector's span metrics and Prometheus itself (which logs in
  with its password file);
- the deployed web config passes `promtool check web-config` and its hash verifies the
  controller's password; the files holding the password are 0640 and readable by the service's
  group only; jaeger-query's config names the password file, not the password;
- jaeger-query's metrics API (the Monitor tab) still gets span metrics from Prometheus: it
  answers 200 with series (401 from Prometheus would make it answer 500).
That no secret (nor the hash, whose salt is among the secrets) shows in --diff output is checked
by test_secrets.py on the first deployment's log.

Loki and Grafana are not run in the lab (logs_enabled false): their settings (deletion API off,
bounded ingestion, secret_key, the datasource's basic auth) are checked on the rendered
configs by tests/test_logs_config.py. Skipped when the lab inventory has spm_enabled false.
"""
import json
import urllib.parse

import bcrypt
import pytest
import yaml

from conftest import (APP_PLACEMENTS, GROUPS, SECRETS_DIR, SPM_ENABLED, addr, app_url, http_get,
                      prometheus_auth_header, wait_for)

# Without spm_enabled no play installs Prometheus, although its group may have hosts.
pytestmark = pytest.mark.skipif(not (SPM_ENABLED and GROUPS.get("prometheus")),
                                reason="spm_enabled is false or no prometheus host in the lab inventory")

PROMETHEUS_HOST = (GROUPS.get("prometheus") or [None])[0]
QUERY_HOST = (GROUPS.get("jaeger_query") or [None])[0]
USER = "admin"
WAIT = 240  # seconds: a first scrape (15 s interval), the connector's flush, rate windows


def prometheus(path):
    return f"http://{addr(PROMETHEUS_HOST)}:9090{path}"


def password():
    return (SECRETS_DIR / "prometheus-password").read_text().strip()


@pytest.mark.parametrize("path", ["/api/v1/query?query=up", "/-/ready", "/metrics", "/graph"])
def test_prometheus_refuses_without_credentials(path):
    status, _ = http_get(prometheus(path))
    assert status == 401, f"{path} answered {status} without credentials"


@pytest.mark.parametrize("user,secret", [(USER, "wrong-password"), (USER, ""), ("root", None), (USER.upper(), None)],
                         ids=["wrong-password", "empty-password", "other-user", "user-case"])
def test_prometheus_refuses_wrong_credentials(user, secret):
    status, _ = http_get(prometheus("/api/v1/query?query=up"),
                         headers=prometheus_auth_header(user, password() if secret is None else secret))
    assert status == 401, f"{user} with a wrong secret got {status}"


def test_prometheus_answers_with_the_generated_password():
    status, body = http_get(prometheus("/api/v1/query?query=up"), headers=prometheus_auth_header(USER, password()))
    assert status == 200, body[:300]
    assert json.loads(body)["status"] == "success"


def test_every_scrape_target_is_up():
    """Prometheus's scrape of itself logs in with its password file; the Collector's span
    metrics are scraped as before."""
    def targets():
        status, body = http_get(prometheus("/api/v1/targets?state=active"), headers=prometheus_auth_header())
        assert status == 200, body[:300]
        active = json.loads(body)["data"]["activeTargets"]
        jobs = {t["labels"]["job"] for t in active}
        if {"aggregated-trace-metrics", "prometheus"} <= jobs and all(t["health"] == "up" for t in active):
            return active
        return None

    active = wait_for("every target up", targets, 90, interval=5)
    print(f"\nPrometheus targets up: {sorted((t['labels']['job'], t['scrapeUrl']) for t in active)}")


def test_deployed_web_config_passes_promtool_and_matches_the_password(hosts):
    host = hosts[PROMETHEUS_HOST]
    out = host.run("promtool check web-config /etc/prometheus/web.yml")
    assert out.rc == 0, out.stdout + out.stderr
    web = yaml.safe_load(host.file("/etc/prometheus/web.yml").content_string)
    (user, hashed), = web["basic_auth_users"].items()
    assert user == USER and bcrypt.checkpw(password().encode(), hashed.encode())
    assert password() not in host.file("/etc/prometheus/web.yml").content_string
    for path in ("/etc/prometheus/web.yml", "/etc/prometheus/web-password"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "prometheus", 0o640), path
    unit = host.run("systemctl show -p ExecStart --value prometheus").stdout
    assert "--web.config.file=/etc/prometheus/web.yml" in unit


def test_jaeger_query_config_holds_no_password(hosts):
    host = hosts[QUERY_HOST]
    config = host.file("/etc/jaeger/query.yaml").content_string
    assert password() not in config
    assert f"{USER}:${{file:/etc/jaeger/prometheus-password}}@" in config
    f = host.file("/etc/jaeger/prometheus-password")
    assert (f.user, f.group, f.mode) == ("root", "jaeger-query", 0o640)
    assert f.content_string == password()


def test_jaeger_monitor_api_reads_prometheus():
    """jaeger-query's /api/metrics/calls answers 500 ("client error: 401") when Prometheus
    refuses it; with the credentials it returns app-a's call rate."""
    app = next(a for _, a in APP_PLACEMENTS if a == "app-a")
    for _ in range(20):  # spans for the span metrics; bounded
        assert http_get(app_url(app, "/"))[0] == 200
    query = urllib.parse.urlencode({"service": "app-a", "lookback": 900000, "step": 15000, "ratePer": 60000})
    url = f"http://{addr(QUERY_HOST)}:16686/api/metrics/calls?{query}"

    def series():
        status, body = http_get(url, timeout=30)
        assert status == 200, f"jaeger-query answered {status}: {body[:300]}"
        metrics = json.loads(body).get("metrics") or []
        return metrics if any(m.get("metricPoints") for m in metrics) else None

    metrics = wait_for("app-a's call rate in jaeger-query", series, WAIT, interval=5)
    print(f"\njaeger-query /api/metrics/calls: {len(metrics)} series for app-a")
