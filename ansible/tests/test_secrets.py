"""Issue 19: no generated secret shows in Ansible's output, even with --diff.

make test (scripts/test.sh) runs the lab's first deployment with --diff, when every template is
new and --diff prints each whole file, and names that log and the idempotence runs' logs in
LAB_DEPLOY_LOGS. This test reads the secrets the roles generated on the controller (files under
~/.config/helidon-otel-vms/lab/, mode 0600) and looks for each in those logs.
"""
import os
import stat
from pathlib import Path

import pytest

from conftest import SECRETS_DIR
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
