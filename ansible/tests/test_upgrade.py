"""Upgrades through role common's install_release and switch_release, on the Collector of the lab:
each release in a folder of its own, the links switched only once the new release accepts the live
config, one release kept to go back to. The lab has one real release of each component, so the
newer ones are made here: release archives (with their checksums file, as the role fetches them)
whose otelcol-contrib is a shell script, published under a file:// base URL in the test's own
folder, with a controller cache of their own."""
import hashlib
import platform
import re
import tarfile

import yaml

from conftest import ANSIBLE_DIR, deploy_lab, http_get_on, ssh

COLLECTOR_HOST = "node1"
ROLE_DIR = ANSIBLE_DIR / "roles" / "otel_collector"
DEFAULTS = yaml.safe_load((ROLE_DIR / "defaults/main.yml").read_text())
CHECKSUMS_FILE = yaml.safe_load((ROLE_DIR / "vars/main.yml").read_text())["otel_collector_checksums_file"]
VERSION = DEFAULTS["otel_collector_version"]
RELEASES_DIR = DEFAULTS["otel_collector_releases_dir"]
LINK = DEFAULTS["otel_collector_binary_path"]
HEALTH_PORT = DEFAULTS["otel_collector_health_port"]
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
COLLECTOR_TAGS = ["--limit", COLLECTOR_HOST, "--tags", "otel_collector_install,otel_collector_configure"]


def publish_release(root, version, script):
    """A release archive of `version` whose otelcol-contrib is `script`, in GitHub's layout under
    root/mirror; returns the deploy arguments that install it from there."""
    release = root / "mirror" / f"v{version}"
    release.mkdir(parents=True)
    binary = root / f"otelcol-contrib-{version}"
    binary.write_text(script)
    binary.chmod(0o755)
    archive = release / f"otelcol-contrib_{version}_linux_{ARCH}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(binary, arcname="otelcol-contrib")
    (release / CHECKSUMS_FILE).write_text(f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  {archive.name}\n")
    return [*COLLECTOR_TAGS,
            "-e", f"otel_collector_version={version}",
            "-e", f"otel_collector_download_base_url=file://{root / 'mirror'}",
            "-e", f"otel_collector_cache_dir={root / 'cache'}"]


def collector_state(addr, key):
    """What runs on the Collector's host: the link's target, the unit's state and main PID, and
    the release folders (the link's target is empty when it is no link)."""
    res = ssh(addr, key, f"echo \"$(readlink {LINK})\"; systemctl show -p ActiveState -p MainPID otel-collector; ls {RELEASES_DIR}")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split("\n")
    props = dict(line.split("=", 1) for line in lines[1:3])
    return {"link": lines[0], "active": props["ActiveState"], "pid": props["MainPID"],
            "releases": sorted(line for line in lines[3:] if line)}


def test_a_release_that_refuses_the_live_config_is_not_switched_to(inventory, ssh_key, tmp_path):
    """The new release accepts the config this run renders (the template's validate, a temporary
    file) but refuses the live one, as a release would refuse one config of several: the deploy
    stops with the release's own words, the link still points at the running release, and the
    Collector was not restarted, although the changed config notified its restart (handlers run
    even on failure here, force_handlers)."""
    addr = inventory[COLLECTOR_HOST]["addr"]
    version = "0.999.0"
    live_config = "/etc/otel-collector/config.yaml"
    before = collector_state(addr, ssh_key)
    assert before["link"] == f"{RELEASES_DIR}/{VERSION}/otelcol-contrib", before
    assert before["active"] == "active", before
    refusal = f"fake release {version}: unknown component type in this config"
    install = publish_release(tmp_path, version, (
        f'#!/bin/sh\ncase "$*" in *{live_config}*) echo \'{refusal}\' >&2; exit 1;; esac\nexit 0\n'))
    try:
        res = deploy_lab(*install, "-e", "otel_collector_log_level=debug")
        assert res.returncode != 0, "the deploy passed with a release that refuses the config"
        # The config changed (and notified the restart), accepted by the new release's validate.
        assert re.search(r"TASK \[otel_collector : Render the collector config[^\n]*\n[^\n]*\nchanged: \[node1\]",
                         res.stdout), res.stdout[-3000:]
        assert (f"{COLLECTOR_HOST}: release {version} in {RELEASES_DIR}/{version} refuses the live config, "
                f"so the links stay where they were ({RELEASES_DIR}/{VERSION})") in res.stdout, res.stdout[-3000:]
        assert f"validate --config={live_config}` exited 1: {refusal}" in res.stdout, res.stdout[-3000:]
        # force_handlers ran the notified restart, which skipped.
        assert re.search(r"RUNNING HANDLER \[otel_collector : Restart otel-collector\][^\n]*\n[^\n]*\nskipping: \[node1\]",
                         res.stdout), res.stdout[-3000:]
        after = collector_state(addr, ssh_key)
        assert after["link"] == before["link"] and after["pid"] == before["pid"] and after["active"] == "active", \
            (before, after)
        print(f"refused: {version} stays in {after['releases']}, PID {after['pid']} unchanged "
              "(its restart handler, notified by the changed config, skipped)")
    finally:
        ssh(addr, ssh_key, f"rm -rf {RELEASES_DIR}/{version}")
        restored = deploy_lab(*COLLECTOR_TAGS)
    assert restored.returncode == 0, f"the deploy with the defaults failed:\n{restored.stdout[-3000:]}"


def test_upgrades_and_a_downgrade_switch_the_release_and_keep_the_one_before(inventory, ssh_key, tmp_path):
    """Two upgrades and the way back, each a deploy that only changes the version: the link moves
    to the new release, the Collector restarts on it and answers its health check, the release it
    replaced stays, older ones are removed. The newer releases run a copy of the real binary."""
    addr = inventory[COLLECTOR_HOST]["addr"]
    real_copy = "/usr/local/lib/test-upgrade-otelcol-contrib"
    assert ssh(addr, ssh_key, f"cp {RELEASES_DIR}/{VERSION}/otelcol-contrib {real_copy}").returncode == 0
    wrapper = f'#!/bin/sh\nexec {real_copy} "$@"\n'
    steps = [("0.999.1", publish_release(tmp_path, "0.999.1", wrapper), [VERSION, "0.999.1"]),
             ("0.999.2", publish_release(tmp_path, "0.999.2", wrapper), ["0.999.1", "0.999.2"]),
             (VERSION, COLLECTOR_TAGS, sorted([VERSION, "0.999.2"]))]
    try:
        for version, args, releases in steps:
            before = collector_state(addr, ssh_key)
            res = deploy_lab(*args)
            assert res.returncode == 0, f"the deploy of {version} failed:\n{res.stdout[-3000:]}"
            after = collector_state(addr, ssh_key)
            assert after["link"] == f"{RELEASES_DIR}/{version}/otelcol-contrib", after
            assert after["active"] == "active" and after["pid"] != before["pid"], (before, after)
            assert after["releases"] == sorted(releases), after
            assert http_get_on(addr, f"http://{addr}:{HEALTH_PORT}/", timeout=5)[0] == 200
            print(f"{before['link']} -> {after['link']}: PID {before['pid']} -> {after['pid']}, "
                  f"releases {after['releases']}")
    finally:
        if collector_state(addr, ssh_key)["link"] != f"{RELEASES_DIR}/{VERSION}/otelcol-contrib":
            deploy_lab(*COLLECTOR_TAGS)
        ssh(addr, ssh_key, f"rm -rf {real_copy} {RELEASES_DIR}/0.999.1 {RELEASES_DIR}/0.999.2")


def test_a_binary_copied_in_place_by_an_older_deploy_is_replaced_by_the_link(inventory, ssh_key):
    """Deployments before releases had folders copied the binary to the link's path. The next
    deploy checks the live config with the release, replaces that file with the link and restarts
    the Collector on the release; a deploy after that changes nothing on the host."""
    addr = inventory[COLLECTOR_HOST]["addr"]
    release_binary = f"{RELEASES_DIR}/{VERSION}/otelcol-contrib"
    try:
        assert ssh(addr, ssh_key, f"cp --remove-destination {release_binary} {LINK} && test ! -L {LINK}").returncode == 0
        before = collector_state(addr, ssh_key)
        res = deploy_lab(*COLLECTOR_TAGS)
        assert res.returncode == 0, f"the deploy failed:\n{res.stdout[-3000:]}"
        after = collector_state(addr, ssh_key)
        assert after["link"] == release_binary and after["pid"] != before["pid"] and after["active"] == "active", \
            (before, after)
        again = deploy_lab(*COLLECTOR_TAGS)
        assert again.returncode == 0 and re.search(rf"{COLLECTOR_HOST}\s*: ok=\d+\s+changed=0 ", again.stdout), \
            again.stdout[-3000:]
        print(f"regular file -> link to {after['link']}, PID {before['pid']} -> {after['pid']}; next deploy changed=0")
    finally:
        if collector_state(addr, ssh_key)["link"] != release_binary:
            deploy_lab(*COLLECTOR_TAGS)


def test_a_new_version_under_the_configure_tag_alone_is_refused_as_not_installed(inventory, ssh_key):
    """Only the _install tag fetches and installs a release: a version change run with the
    _configure tag alone stops with that, instead of the new release "refusing" the config it
    could not even run, and nothing is switched or restarted."""
    addr = inventory[COLLECTOR_HOST]["addr"]
    version = "0.999.3"
    before = collector_state(addr, ssh_key)
    res = deploy_lab("--limit", COLLECTOR_HOST, "--tags", "otel_collector_configure",
                     "-e", f"otel_collector_version={version}")
    assert res.returncode != 0, "the deploy passed with a version that is not installed"
    assert (f"{COLLECTOR_HOST}: release {version} is not installed (otelcol-contrib missing in "
            f"{RELEASES_DIR}/{version}); run the role with its _install tag") in res.stdout, res.stdout[-3000:]
    assert collector_state(addr, ssh_key) == before
