"""Issue 19: no generated secret shows in Ansible's output, even with --diff, nor in the journal
lines a failed start puts into it, nor in jaeger-query's journal.

make test (scripts/test.sh) runs the lab's first deployment with --diff, when every template is
new and --diff prints each whole file, and names that log and the idempotence runs' logs in
LAB_DEPLOY_LOGS. This test reads the secrets the roles generated on the controller (files under
~/.config/helidon-otel-vms/lab/, mode 0600) and looks for each in those logs.
"""
import os
import secrets
import shlex
import stat
from pathlib import Path

import pytest

from conftest import (GROUPS, INVENTORY_HOSTS, SECRETS_DIR, SPM_ENABLED, deploy_with_port_held,
                      run_test_playbook)
LOGS = [Path(p) for p in os.environ.get("LAB_DEPLOY_LOGS", "").split(":") if p]


def generated_secrets():
    """{file name: value} of the secrets the roles generated for the lab inventory."""
    if not SECRETS_DIR.is_dir():
        return {}
    return {f.name: f.read_text().strip() for f in sorted(SECRETS_DIR.iterdir())
            if f.is_file() and f.read_text().strip()}


@pytest.mark.skipif(not LOGS, reason="needs the deployment logs make test names in LAB_DEPLOY_LOGS")
def test_no_secret_in_the_deployment_output():
    secrets = generated_secrets()
    assert secrets, f"no generated secret under {SECRETS_DIR}: the roles should have made some"
    first = LOGS[0].read_text(errors="replace")
    # --diff was on, or this test would prove nothing: a new file's diff shows "+" lines of it.
    assert "--- before" in first and "+++ after" in first, f"{LOGS[0]} holds no diff"
    for log in LOGS:
        text = log.read_text(errors="replace")
        leaked = [name for name, value in secrets.items() if value in text]
        assert not leaked, f"{log} shows the secret(s) of {leaked}"
    print(f"{len(secrets)} secrets ({', '.join(secrets)}) absent from {len(LOGS)} logs "
          f"({sum(p.stat().st_size for p in LOGS) >> 10} KiB)")


def test_secret_files_are_private_to_their_owner():
    secrets = generated_secrets()
    assert secrets, f"no generated secret under {SECRETS_DIR}"
    for name in secrets:
        mode = stat.S_IMODE((SECRETS_DIR / name).stat().st_mode)
        assert mode == 0o600, f"{SECRETS_DIR / name} has mode {oct(mode)}"


needs_spm = pytest.mark.skipif(not (SPM_ENABLED and GROUPS.get("prometheus") and GROUPS.get("jaeger_query")),
                               reason="needs the SPM topology (jaeger-query reads Prometheus)")


def prometheus_password():
    return (SECRETS_DIR / "prometheus-password").read_text().strip()


@needs_spm
def test_jaeger_query_logs_no_password(hosts):
    """jaeger-query logs its Prometheus address, password included, at each start ("Prometheus
    reader initialized ... addr=http://admin:<password>@..."); its unit's LogFilterPatterns make
    journald drop that line. Its current run's journal has the lines around it, not that one."""
    host = hosts[GROUPS["jaeger_query"][0]]
    run = host.run("journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID=$(systemctl show -P InvocationID jaeger-query)")
    assert run.rc == 0, run.stderr
    assert "Starting jaeger" in run.stdout and "Everything is ready" in run.stdout, run.stdout[-3000:]
    assert "Prometheus reader initialized" not in run.stdout, "journald kept the line with the password"
    leaked = prometheus_password() in run.stdout  # (not in the assertion, which would print it)
    assert not leaked, "jaeger-query's journal shows the Prometheus password"


@needs_spm
def test_a_failed_start_shows_its_journal_without_the_password():
    """When jaeger-query does not become ready, role common's failure message quotes its last
    run's journal, which has its start lines but not the one with the password (journald dropped
    it). jaeger-query is made to fail after that line: its gRPC port is moved onto one a transient
    unit of the test holds."""
    host = GROUPS["jaeger_query"][0]
    password = prometheus_password()
    held_port = 16699
    with deploy_with_port_held(host, "jaeger_configure", held_port, {
            "jaeger_query_grpc_port": held_port, "common_start_unit_ready_timeout": 10,
            "common_fail_journal_lines": 40}) as bad:
        assert bad.returncode != 0, "the deploy passed with jaeger-query's gRPC port taken"
        assert "jaeger-query said:" in bad.stdout, bad.stdout[-3000:]
        assert "Starting jaeger" in bad.stdout, bad.stdout[-3000:]
        assert "Prometheus reader initialized" not in bad.stdout, bad.stdout[-3000:]
        leaked = password in bad.stdout  # (not in the assertion, which would print it)
        assert not leaked, "the failure message shows the Prometheus password"


def test_a_failure_message_masks_credentials_in_urls(hosts):
    """Whatever a unit logs (jaeger-query on a systemd too old for its log filter, any other
    service), the journal lines a failure message quotes show credentials in URLs as ***@: role
    common's fail_with_last_run, run (tests/render/fail_with_last_run.yml) for a transient unit
    that logged a URL with a password and failed."""
    name = sorted(INVENTORY_HOSTS)[0]
    unit, password = "secrets-test-url-logger", secrets.token_hex(16)
    script = f"echo reading http://reader:{password}@example.invalid:9090/api; exit 3"
    logged = hosts[name].run(f"systemd-run --quiet --wait --collect --unit={unit} /bin/sh -c {shlex.quote(script)}")
    assert logged.rc == 3, (logged.rc, logged.stderr)
    proc = run_test_playbook("fail_with_last_run.yml", {"render_host": name, "render_units": [unit]})
    assert proc.returncode != 0, "fail_with_last_run did not fail the play"
    assert f"{unit} said:" in proc.stdout, proc.stdout[-3000:]
    assert "reading http://***@example.invalid:9090/api" in proc.stdout, proc.stdout[-3000:]
    leaked = password in proc.stdout + proc.stderr
    assert not leaked, "the failure message shows the URL's password"
