"""Upgrades through role common's install_release and switch_release, on the lab (mostly its
Collector): each release in a folder of its own, the links switched only once the new release
accepts the live config, one release kept to go back to, a unit restarted whenever its process runs
another file than the linked release's. The lab has one real release of each component, so the
newer ones are made here: release archives (with their checksums file, as the role fetches them)
holding either the real binary under a new version or a shell script, published under a file://
base URL in the test's own folder, with a controller cache of their own."""
import hashlib
import io
import re
import tarfile

import pytest
import yaml

from conftest import ANSIBLE_DIR, STACK_UNITS, addr, deploy_lab, http_get_on

COLLECTOR_HOST = "node1"
UNIT = "otel-collector"
ROLE_DIR = ANSIBLE_DIR / "roles" / "otel_collector"
DEFAULTS = yaml.safe_load((ROLE_DIR / "defaults/main.yml").read_text())
CHECKSUMS_FILE = yaml.safe_load((ROLE_DIR / "vars/main.yml").read_text())["otel_collector_checksums_file"]
VERSION = DEFAULTS["otel_collector_version"]
RELEASES_DIR = DEFAULTS["otel_collector_releases_dir"]
LINK = DEFAULTS["otel_collector_binary_path"]
HEALTH_PORT = DEFAULTS["otel_collector_health_port"]
RELEASE_BINARY = f"{RELEASES_DIR}/{VERSION}/otelcol-contrib"
COLLECTOR_TAGS = ["--limit", COLLECTOR_HOST, "--tags", "otel_collector_install,otel_collector_configure"]


@pytest.fixture(scope="module")
def host(hosts):
    return hosts[COLLECTOR_HOST]


@pytest.fixture(scope="module")
def real_binary(host):
    """The bytes of the Collector binary the lab runs (for releases that must really start)."""
    return host.file(RELEASE_BINARY).content


def publish_release(host, root, version, binary):
    """A release archive of `version` whose otelcol-contrib is `binary` (bytes), named and laid out
    as the role fetches it, under root/mirror; returns the deploy arguments that install it."""
    release = root / "mirror" / f"v{version}"
    release.mkdir(parents=True)
    # The architecture in the archive's name, as role otel_collector's vars name it.
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(host.system_info.arch, host.system_info.arch)
    archive = release / f"otelcol-contrib_{version}_linux_{arch}.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        member = tarfile.TarInfo("otelcol-contrib")
        member.size, member.mode = len(binary), 0o755
        tar.addfile(member, io.BytesIO(binary))
    (release / CHECKSUMS_FILE).write_text(f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  {archive.name}\n")
    return [*COLLECTOR_TAGS,
            "-e", f"otel_collector_version={version}",
            "-e", f"otel_collector_download_base_url=file://{root / 'mirror'}",
            "-e", f"otel_collector_cache_dir={root / 'cache'}"]


def running_file(host, pid):
    """The file a process runs, as the kernel names it (" (deleted)" when it was replaced)."""
    return host.check_output(f"readlink /proc/{pid}/exe")


def main_process(host, unit):
    """(main PID, the file it runs) of a unit; ("0", "") when it runs no process."""
    pid = host.check_output(f"systemctl show --property=MainPID --value {unit}.service")
    return pid, running_file(host, pid) if pid != "0" else ""


def collector_state(host):
    """What runs on the Collector's host: the link's target (empty when it is no link), whether the
    unit runs, its main PID and the file that process runs, and the release folders."""
    link = host.file(LINK)
    pid, exe = main_process(host, UNIT)
    return {"link": link.linked_to if link.is_symlink else "",
            "running": host.service(UNIT).is_running,
            "pid": pid,
            "exe": exe,
            "releases": sorted(host.file(RELEASES_DIR).listdir())}


def run_on(host, command):
    res = host.run(command)
    assert res.rc == 0, f"{command}: {res.stderr}"


def test_a_release_that_refuses_the_live_config_is_not_switched_to(host, tmp_path):
    """The new release accepts the config this run renders (the template's validate, a temporary
    file) but refuses the live one, as a release would refuse one config of several: the deploy
    stops with the release's own words, the link still points at the running release, and the
    Collector was not restarted, although the changed config notified its restart (handlers run
    even on failure here, force_handlers)."""
    version = "0.999.0"
    live_config = "/etc/otel-collector/config.yaml"
    before = collector_state(host)
    assert before["link"] == RELEASE_BINARY and before["running"], before
    refusal = f"fake release {version}: unknown component type in this config"
    install = publish_release(host, tmp_path, version, (
        f'#!/bin/sh\ncase "$*" in *{live_config}*) echo \'{refusal}\' >&2; exit 1;; esac\nexit 0\n').encode())
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
        after = collector_state(host)
        assert after["link"] == before["link"] and after["pid"] == before["pid"] and after["running"], (before, after)
        print(f"refused: {version} stays in {after['releases']}, PID {after['pid']} unchanged "
              "(its restart handler, notified by the changed config, skipped)")
    finally:
        run_on(host, f"rm -rf {RELEASES_DIR}/{version}")
        restored = deploy_lab(*COLLECTOR_TAGS)
    assert restored.returncode == 0, f"the deploy with the defaults failed:\n{restored.stdout[-3000:]}"


def test_upgrades_and_a_downgrade_switch_the_release_and_keep_the_one_before(host, real_binary, tmp_path):
    """Two upgrades and the way back, each a deploy that only changes the version: the link moves
    to the new release, the Collector restarts on it (its process runs the new release's file) and
    answers its health check, the release it replaced stays, older ones are removed. The newer
    releases hold the real binary. On the way back, a run that was stopped between its switch and
    the restart is made up for: the link already on the release to run, the Collector still on the
    one before, the next deploy restarts it without moving anything."""
    collector_addr = addr(COLLECTOR_HOST)
    install_1 = publish_release(host, tmp_path, "0.999.1", real_binary)
    binary_1 = f"{RELEASES_DIR}/0.999.1/otelcol-contrib"
    # (version, deploy arguments, what happened on the host before the deploy, releases after it)
    steps = [("0.999.1", install_1, None, [VERSION, "0.999.1"]),
             ("0.999.2", publish_release(host, tmp_path, "0.999.2", real_binary), None, ["0.999.1", "0.999.2"]),
             ("0.999.1", install_1, f"ln -sfn {binary_1} {LINK}", ["0.999.1", "0.999.2"]),
             (VERSION, COLLECTOR_TAGS, None, [VERSION, "0.999.1"])]
    try:
        for version, args, interrupted_switch, releases in steps:
            if interrupted_switch:
                run_on(host, interrupted_switch)
            before = collector_state(host)
            res = deploy_lab(*args)
            assert res.returncode == 0, f"the deploy of {version} failed:\n{res.stdout[-3000:]}"
            after = collector_state(host)
            assert after["link"] == after["exe"] == f"{RELEASES_DIR}/{version}/otelcol-contrib", after
            assert after["running"] and after["pid"] != before["pid"], (before, after)
            assert after["releases"] == sorted(releases), after
            assert http_get_on(collector_addr, f"http://{collector_addr}:{HEALTH_PORT}/", timeout=5)[0] == 200
            print(f"{before['exe']} -> {after['exe']}: PID {before['pid']} -> {after['pid']}, "
                  f"releases {after['releases']}" + (" (link switched before the deploy)" if interrupted_switch else ""))
    finally:
        state = collector_state(host)
        if state["link"] != RELEASE_BINARY or state["exe"] != RELEASE_BINARY:
            deploy_lab(*COLLECTOR_TAGS)
        run_on(host, f"rm -rf {RELEASES_DIR}/0.999.1 {RELEASES_DIR}/0.999.2")


def test_a_binary_copied_in_place_by_an_older_deploy_is_replaced_by_the_link(host):
    """Deployments before releases had folders copied the binary to the link's path. The next
    deploy checks the live config with the release, replaces that file with the link and restarts
    the Collector on the release; a deploy after that changes nothing on the host."""
    try:
        run_on(host, f"cp --remove-destination {RELEASE_BINARY} {LINK}")
        before = collector_state(host)
        assert before["link"] == "", before
        res = deploy_lab(*COLLECTOR_TAGS)
        assert res.returncode == 0, f"the deploy failed:\n{res.stdout[-3000:]}"
        after = collector_state(host)
        assert after["link"] == after["exe"] == RELEASE_BINARY, after
        assert after["pid"] != before["pid"] and after["running"], (before, after)
        again = deploy_lab(*COLLECTOR_TAGS)
        assert again.returncode == 0 and re.search(rf"{COLLECTOR_HOST}\s*: ok=\d+\s+changed=0 ", again.stdout), \
            again.stdout[-3000:]
        print(f"regular file -> link to {after['link']}, PID {before['pid']} -> {after['pid']}; next deploy changed=0")
    finally:
        state = collector_state(host)
        if state["link"] != RELEASE_BINARY or state["exe"] != RELEASE_BINARY:
            deploy_lab(*COLLECTOR_TAGS)


# Where the roles keep their releases (their *_releases_dir defaults), each with a trailing slash.
RELEASES_DIRS = tuple(
    f"{value.rstrip('/')}/" for defaults in sorted(ANSIBLE_DIR.glob("roles/*/defaults/main.yml"))
    for key, value in (yaml.safe_load(defaults.read_text()) or {}).items() if key.endswith("_releases_dir"))


def release_processes(hosts):
    """{(host name, unit): (main PID, the file it runs)} of the stack's running units whose
    process runs a release's binary: a file under one of RELEASES_DIRS."""
    found = {}
    for name, lab_host in sorted(hosts.items()):
        for unit in STACK_UNITS:
            pid, exe = main_process(lab_host, unit)
            if exe.startswith(RELEASES_DIRS):
                found[(name, unit)] = (pid, exe)
    return found


def test_units_that_run_a_replaced_binary_are_restarted_with_the_links_in_place(hosts):
    """The links are where they belong, but each release unit's process runs a file that was
    replaced since it started, as when the same version was rebuilt and copied again. The next
    deploy restarts each of them (in the lab: the Collector, jaeger's units, Prometheus), and a
    deploy after it changes nothing."""
    before = release_processes(hosts)
    assert (COLLECTOR_HOST, UNIT) in before, before
    try:
        for name, exe in sorted({(name, exe) for (name, _), (_, exe) in before.items()}):
            run_on(hosts[name], f"cp -p {exe} {exe}.new && mv {exe}.new {exe}")
        replaced = {key: running_file(hosts[key[0]], pid) for key, (pid, _) in before.items()}
        assert all(exe.endswith(" (deleted)") for exe in replaced.values()), replaced
        res = deploy_lab()
        assert res.returncode == 0, f"the deploy failed:\n{res.stdout[-3000:]}"
        after = release_processes(hosts)
        assert after.keys() == before.keys(), (before, after)
        for key, (pid, exe) in after.items():
            assert pid != before[key][0] and exe == before[key][1], (key, before[key], after[key])
        again = deploy_lab()
        assert again.returncode == 0 and len(re.findall(r"\bok=\d+\s+changed=0 ", again.stdout)) == len(hosts), \
            again.stdout[-3000:]
    finally:
        still = {key for key, (pid, exe) in release_processes(hosts).items() if exe.endswith(" (deleted)")}
        if still:
            deploy_lab()
    for (name, unit), (pid, exe) in sorted(after.items()):
        print(f"{name} {unit}: PID {before[(name, unit)][0]} ran {exe} (deleted): restarted as PID {pid}")
    print("next deploy changed=0 on every host")


def test_a_new_version_under_the_configure_tag_alone_is_refused_as_not_installed(host):
    """Only the _install tag fetches and installs a release: a version change run with the
    _configure tag alone stops with that, before a changed config is validated by the missing
    binary (a "No such file" error), and nothing is changed or restarted."""
    version = "0.999.3"
    before = collector_state(host)
    res = deploy_lab("--limit", COLLECTOR_HOST, "--tags", "otel_collector_configure",
                     "-e", f"otel_collector_version={version}", "-e", "otel_collector_log_level=debug")
    assert res.returncode != 0, "the deploy passed with a version that is not installed"
    assert re.search(rf"{COLLECTOR_HOST}\s*: ok=\d+\s+changed=0 ", res.stdout), res.stdout[-3000:]
    assert (f"{COLLECTOR_HOST}: release {version} is not installed (otelcol-contrib missing in "
            f"{RELEASES_DIR}/{version}); run the role with its _install tag") in res.stdout, res.stdout[-3000:]
    assert collector_state(host) == before
