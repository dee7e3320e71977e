"""Role common on a host that already has its own time service.

systemd-timesyncd conflicts with every package that provides Debian's time-daemon (chrony,
ntpsec, ...): installing it makes apt remove the other one. A host that has one must keep it.
"""
import pytest

from conftest import addr, deploy_lab, ssh

TIME_HOST = "node3"
COMMON_TAGS = ["--limit", TIME_HOST, "--tags", "common_install,common_configure"]


def installed(host_addr, key, package):
    """True when dpkg has the package installed on the host."""
    res = ssh(host_addr, key, f"dpkg-query --show --showformat='${{db:Status-Abbrev}}' {package}")
    return res.stdout.startswith("ii")


def apt(host_addr, key, command):
    res = ssh(host_addr, key, f"DEBIAN_FRONTEND=noninteractive apt-get {command}", timeout=300)
    assert res.returncode == 0, f"apt-get {command} on {TIME_HOST}: {res.stdout[-2000:]}{res.stderr[-2000:]}"


def test_a_host_with_chrony_keeps_it(inventory, ssh_key):
    """With chrony installed (apt then removes systemd-timesyncd), a deploy of role common leaves
    chrony in place, installs no timesyncd and says which service keeps the clock; once chrony is
    gone, the next deploy installs timesyncd again."""
    if TIME_HOST not in inventory:
        pytest.fail(f"{TIME_HOST} is not in the lab inventory")
    host = addr(TIME_HOST)
    assert installed(host, ssh_key, "systemd-timesyncd"), "the deploy did not install systemd-timesyncd"
    apt(host, ssh_key, "install -y -q chrony")
    try:
        assert not installed(host, ssh_key, "systemd-timesyncd"), "apt kept timesyncd beside chrony"
        run = deploy_lab(*COMMON_TAGS, timeout=600)
        assert run.returncode == 0, run.stdout[-3000:]
        assert f"chrony keeps the clock on {TIME_HOST}" in " ".join(run.stdout.split()), run.stdout[-3000:]
        assert installed(host, ssh_key, "chrony"), "the deploy removed chrony"
        assert not installed(host, ssh_key, "systemd-timesyncd"), "the deploy installed timesyncd over chrony"
    finally:
        apt(host, ssh_key, "purge -y -q chrony")
        again = deploy_lab(*COMMON_TAGS, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:]
    assert installed(host, ssh_key, "systemd-timesyncd"), "timesyncd did not come back once chrony was gone"
