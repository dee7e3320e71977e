"""Issue 19: no generated secret shows in Ansible's output, even with --diff, nor in the journal
lines a failed start puts into it.

make test (scripts/test.sh) runs the lab's first deployment with --diff, when every template is
new and --diff prints each whole file, and names that log and the idempotence runs' logs in
LAB_DEPLOY_LOGS. This test reads the secrets the roles generated on the controller (files under
~/.config/helidon-otel-vms/lab/, mode 0600) and looks for each in those logs.
"""
import os
import stat
from pathlib import Path

import pytest

from conftest import GROUPS, SECRETS_DIR, SPM_ENABLED, deploy_with_port_held
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


@pytest.mark.skipif(not (SPM_ENABLED and GROUPS.get("prometheus") and GROUPS.get("jaeger_query")),
                    reason="needs the SPM topology (jaeger-query reads Prometheus)")
def test_a_failed_start_shows_its_journal_without_the_password():
    """jaeger-query logs its Prometheus address with the password in it ("Prometheus reader
    initialized ... addr=http://admin:<password>@..."). When it does not become ready, role
    common's failure message quotes its last run's journal: the password must show there masked.
    jaeger-query is made to fail after that line: its gRPC port is moved onto one a transient unit
    of the test holds."""
    host = GROUPS["jaeger_query"][0]
    password = (SECRETS_DIR / "prometheus-password").read_text().strip()
    held_port = 16699
    with deploy_with_port_held(host, "jaeger_configure", held_port, {
            "jaeger_query_grpc_port": held_port, "common_start_unit_ready_timeout": 10,
            "common_fail_journal_lines": 40}) as bad:
        assert bad.returncode != 0, "the deploy passed with jaeger-query's gRPC port taken"
        assert "jaeger-query said:" in bad.stdout, bad.stdout[-3000:]
        assert "Prometheus reader initialized" in bad.stdout, bad.stdout[-3000:]
        leaked = password in bad.stdout  # (not in the assertion, which would print it)
        assert not leaked, "the failure message shows the Prometheus password"
        assert "http://***@" in bad.stdout, bad.stdout[-3000:]
