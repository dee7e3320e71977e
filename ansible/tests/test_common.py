"""Role common on a host that already has its own time service.

systemd-timesyncd conflicts with every package that provides Debian's time-daemon (chrony,
ntpsec, ...): installing it makes apt remove the other one. A host that has one must keep it.
"""
import pytest

from conftest import deploy_lab, restoring

TIME_HOST = "node3"
COMMON_TAGS = ["--limit", TIME_HOST, "--tags", "common_install,common_configure"]


def apt(host, command):
    res = host.run(f"DEBIAN_FRONTEND=noninteractive apt-get {command}")
    assert res.rc == 0, f"apt-get {command} on {TIME_HOST}: {res.stdout[-2000:]}{res.stderr[-2000:]}"


def test_a_host_with_chrony_keeps_it(hosts):
    """With chrony installed (apt then removes systemd-timesyncd), a deploy of role common leaves
    chrony in place, installs no timesyncd and says which service keeps the clock; once chrony is
    gone, the next deploy installs timesyncd again."""
    if TIME_HOST not in hosts:
        pytest.fail(f"{TIME_HOST} is not in the lab inventory")
    host = hosts[TIME_HOST]
    assert host.package("systemd-timesyncd").is_installed, "the deploy did not install systemd-timesyncd"
    # The deploy that restores runs after chrony is purged (or failed to be), also when its install
    # failed half-way.
    with restoring(*COMMON_TAGS):
        try:
            apt(host, "install -y -q chrony")
            assert not host.package("systemd-timesyncd").is_installed, "apt kept timesyncd beside chrony"
            run = deploy_lab(*COMMON_TAGS, timeout=600)
            assert run.returncode == 0, run.stdout[-3000:]
            assert f"chrony keeps the clock on {TIME_HOST}" in " ".join(run.stdout.split()), run.stdout[-3000:]
            assert host.package("chrony").is_installed, "the deploy removed chrony"
            assert not host.package("systemd-timesyncd").is_installed, "the deploy installed timesyncd over chrony"
        finally:
            apt(host, "purge -y -q chrony")
    assert host.package("systemd-timesyncd").is_installed, "timesyncd did not come back once chrony was gone"
