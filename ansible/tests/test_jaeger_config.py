"""The jaeger role's rendered collector config as the Jaeger release the role installs reads it
(offline: the release from the lab's download cache, `jaeger print-config`; no Cassandra needed)."""
import glob
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ANSIBLE_DIR
from test_logs_config import one, render

JAEGER_VERSION = yaml.safe_load((ANSIBLE_DIR / "roles/jaeger/defaults/main.yml").read_text())["jaeger_version"]


def local_jaeger():
    cache = Path(os.environ.get("LAB_CACHE", Path.home() / ".cache/helidon-otel-vms"))
    found = sorted(glob.glob(str(cache / f"downloads/jaeger/{JAEGER_VERSION}/*/jaeger-{JAEGER_VERSION}-linux-*/jaeger")))
    return found[0] if found else None


def test_a_cassandra_password_and_data_center_reach_jaeger_as_given(tmp_path):
    """Jaeger expands ${...} and $$ in config values, and YAML reads a data center named 123 as a
    number, which Jaeger refuses: both reach it as the cassandra role sets them up."""
    jaeger = local_jaeger()
    if jaeger is None:
        pytest.skip(f"no Jaeger {JAEGER_VERSION} in the lab's download cache (the lab deploys it)")
    password = "Ab1$cd2${env:HOME}$$xy"
    render("jaeger", tmp_path, render_group="jaeger_collector", render_templates=["etc/jaeger/collector.yaml.j2"],
           jaeger_cassandra_password=password, jaeger_cassandra_datacenter="123")
    _, config = one(tmp_path, "etc/jaeger/collector.yaml")
    valid = subprocess.run([jaeger, "validate", f"--config={config}"], capture_output=True, text=True, timeout=60)
    assert valid.returncode == 0, valid.stdout[-2000:] + valid.stderr[-2000:]
    # The config as Jaeger resolves it (${...} expanded, $$ read back as $). print-config's own
    # validation step panics in Jaeger 2.12 (a nil pointer in its unmarshalling): validated above.
    proc = subprocess.run([jaeger, "print-config", "--feature-gates=otelcol.printInitialConfig", f"--config={config}",
                           "--mode=unredacted", "--validate=false"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    cassandra = yaml.safe_load(proc.stdout)["extensions"]["jaeger_storage"]["backends"]["cassandra_main"]["cassandra"]
    assert cassandra["connection"]["auth"]["basic"]["password"] == password
    assert cassandra["schema"]["datacenter"] == "123"
    assert cassandra["connection"]["local_dc"] == "123"
