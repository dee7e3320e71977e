"""Upgrades through role common's install_release and switch_release, on the lab's Collector,
jaeger and Prometheus: each release in a folder of its own, the links switched only once the new
release accepts the live config, one release kept to go back to, a unit restarted whenever its
process runs another file than the linked release's. The lab has one real release of each
component, so the newer ones are made here: release archives (with their checksums file, as the
roles fetch them) holding either the real binaries under a new version or a shell script,
published under a file:// base URL in the test's own folder, with a controller cache of their own."""
import functools
import hashlib
import io
import re
import tarfile
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import pytest
import yaml

from conftest import (ANSIBLE_DIR, GROUPS, LAB_BACKEND_UNITS, STACK_UNITS, addr, assert_refused, changed_tasks, deploy_back,
                      deploy_lab, http_get, http_get_on, prometheus_auth_header)


@dataclass(frozen=True)
class Unit:
    """A unit of a component: its inventory group, its name, the role's variable of its health port
    and its health path. `auth` gives the headers a health check needs; such a unit is checked from
    the controller, which its UI port answers (role firewall), the others on their host."""
    group: str
    name: str
    port: str
    path: str
    auth: Optional[Callable[[], dict]] = None


class Placement(NamedTuple):
    host: str
    unit: str
    health_url: str
    auth: Optional[Callable[[], dict]]

    def healthy(self):
        if self.auth:
            return http_get(self.health_url, headers=self.auth(), timeout=5)[0] == 200
        return http_get_on(addr(self.host), self.health_url, timeout=5)[0] == 200


@dataclass(frozen=True)
class Component:
    """A component installed as releases, as these tests publish and deploy it. `role` names the
    role and its variables' prefix; `archive`, `binaries` ((name, archive member) each; the units
    run the first) and `checksums` are the release layout the role fetches (formatted with version
    and arch: <base>/v<version>/<archive>); `link_pattern` is where a binary's link is, formatted
    with the binary's name and the role's defaults."""
    role: str
    archive: str
    binaries: tuple
    checksums: str
    link_pattern: str
    units: tuple
    # Variables that make the role fetch <base>/v<version>/, when it does not by itself.
    extra_vars: tuple = ()

    @functools.cached_property
    def defaults(self):
        return yaml.safe_load((ANSIBLE_DIR / "roles" / self.role / "defaults/main.yml").read_text())

    def default(self, name):
        return self.defaults[f"{self.role}_{name}"]

    @property
    def binary(self):
        return self.binaries[0][0]

    @property
    def version(self):
        return self.default("version")

    @property
    def releases_dir(self):
        return self.default("releases_dir")

    @functools.cached_property
    def links(self):
        """{binary name: its link's path}."""
        return {name: self.link_pattern.format(name=name, **self.defaults) for name, _ in self.binaries}

    @property
    def link(self):
        """The link of the binary the units run."""
        return self.links[self.binary]

    def release_binary(self, version=None, name=None):
        return f"{self.releases_dir}/{version or self.version}/{name or self.binary}"

    @functools.cached_property
    def placements(self):
        """[Placement] of its units in the lab: each on the first host of its group."""
        hosts = [GROUPS[unit.group][0] for unit in self.units]
        return [Placement(host, unit.name, f"http://{addr(host)}:{self.default(unit.port)}{unit.path}", unit.auth)
                for host, unit in zip(hosts, self.units)]

    @property
    def hosts(self):
        return sorted({placement.host for placement in self.placements})

    @property
    def tags(self):
        """Deploy arguments that run its role's install and configure parts on its hosts only."""
        return ["--limit", ",".join(self.hosts), "--tags", f"{self.install_tag},{self.role}_configure"]

    @property
    def install_tag(self):
        """Its role's tag of the install part, which runs the release switch."""
        return f"{self.role}_install"


def role_var(role, name):
    return yaml.safe_load((ANSIBLE_DIR / "roles" / role / "vars/main.yml").read_text())[f"{role}_{name}"]


COLLECTOR = Component(
    role="otel_collector", archive="otelcol-contrib_{version}_linux_{arch}.tar.gz",
    binaries=(("otelcol-contrib", "otelcol-contrib"),), checksums=role_var("otel_collector", "checksums_file"),
    link_pattern="{otel_collector_binary_path}",
    units=(Unit("otel_collector", "otel-collector", "health_port", "/"),))
JAEGER = Component(
    role="jaeger", archive="jaeger-{version}-linux-{arch}.tar.gz",
    binaries=(("jaeger", "jaeger-{version}-linux-{arch}/jaeger"),), checksums="jaeger-{version}.sha256sum.txt",
    link_pattern="{jaeger_binary_path}",
    units=(Unit("jaeger_collector", "jaeger-collector", "collector_health_port", "/status"),
           Unit("jaeger_query", "jaeger-query", "query_http_port", "/api/services")),
    # The lab inventory names the tag of the lab's own release (its v1 twin, see the role's
    # defaults); the releases made here are under v<version>.
    extra_vars=("jaeger_release_tag=v{version}",))
PROMETHEUS = Component(
    role="prometheus", archive="prometheus-{version}.linux-{arch}.tar.gz",
    binaries=(("prometheus", "prometheus-{version}.linux-{arch}/prometheus"),
              ("promtool", "prometheus-{version}.linux-{arch}/promtool")),
    checksums=role_var("prometheus", "checksums_file"), link_pattern="{prometheus_binary_dir}/{name}",
    # Every request needs the basic auth, /-/ready included.
    units=(Unit("prometheus", "prometheus", "port", "/-/ready", auth=prometheus_auth_header),))
# The install parts of the roles of every release unit in the lab (LAB_BACKEND_UNITS): they run
# the release switch, which restarts a unit whose binary changed; the rest of site.yml does not
# touch these units.
RELEASE_INSTALL_TAGS = ("--tags", ",".join(c.install_tag for c in (COLLECTOR, JAEGER, PROMETHEUS)))
# The Collector's host and unit, for the tests that drive the Collector only.
COLLECTOR_HOST, UNIT = COLLECTOR.placements[0][:2]


@pytest.fixture(scope="module")
def host(hosts):
    return hosts[COLLECTOR_HOST]


def publish_release(component, host, root, version, binaries):
    """A release archive of `version` whose binaries are `binaries` ({name: bytes}), named and laid
    out as the component's role fetches it, under root/mirror; returns the deploy arguments that
    install it."""
    # The architecture in the archive's name, as the roles' vars name it.
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(host.system_info.arch, host.system_info.arch)
    release = root / "mirror" / f"v{version}"
    release.mkdir(parents=True)
    archive = release / component.archive.format(version=version, arch=arch)
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for name, member_name in component.binaries:
            member = tarfile.TarInfo(member_name.format(version=version, arch=arch))
            member.size, member.mode = len(binaries[name]), 0o755
            tar.addfile(member, io.BytesIO(binaries[name]))
    (release / component.checksums.format(version=version)).write_text(
        f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  {archive.name}\n")
    extra = [arg for var in component.extra_vars for arg in ("-e", var.format(version=version))]
    return [*component.tags,
            "-e", f"{component.role}_version={version}",
            "-e", f"{component.role}_download_base_url=file://{root / 'mirror'}",
            "-e", f"{component.role}_cache_dir={root / 'cache'}", *extra]


def running_file(host, pid):
    """The file a process runs, as the kernel names it (" (deleted)" when it was replaced)."""
    return host.check_output(f"readlink /proc/{pid}/exe")


def main_process(host, unit):
    """(main PID, the file it runs) of a unit; ("0", "") when it runs no process."""
    pid = host.check_output(f"systemctl show --property=MainPID --value {unit}.service")
    return pid, running_file(host, pid) if pid != "0" else ""


def unit_state(component, host, unit):
    """What runs for one unit of a component: the links' targets on its host (empty when one is no
    link; `link` is the one of the binary the units run), whether the unit runs, its main PID and
    the file that process runs, and the release folders."""
    links = {name: host.file(path) for name, path in component.links.items()}
    targets = {name: link.linked_to if link.is_symlink else "" for name, link in links.items()}
    pid, exe = main_process(host, unit)
    return {"link": targets[component.binary],
            "links": targets,
            "running": host.service(unit).is_running,
            "pid": pid,
            "exe": exe,
            "releases": sorted(host.file(component.releases_dir).listdir())}


def collector_state(host):
    return unit_state(COLLECTOR, host, UNIT)


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
    assert before["link"] == COLLECTOR.release_binary() and before["running"], before
    refusal = f"fake release {version}: unknown component type in this config"
    install = publish_release(COLLECTOR, host, tmp_path, version, {COLLECTOR.binary: (
        f'#!/bin/sh\ncase "$*" in *{live_config}*) echo \'{refusal}\' >&2; exit 1;; esac\nexit 0\n').encode()})
    try:
        res = deploy_lab(*install, "-e", "otel_collector_log_level=debug")
        assert res.returncode != 0, "the deploy passed with a release that refuses the config"
        # The config changed (and notified the restart), accepted by the new release's validate.
        assert re.search(rf"TASK \[otel_collector : Render the collector config[^\n]*\n[^\n]*\nchanged: \[{COLLECTOR_HOST}\]",
                         res.stdout), res.stdout[-3000:]
        assert (f"{COLLECTOR_HOST}: release {version} in {COLLECTOR.releases_dir}/{version} refuses the live config, "
                f"so the links stay where they were ({COLLECTOR.releases_dir}/{COLLECTOR.version})") in res.stdout, res.stdout[-3000:]
        assert f"validate --config={live_config}` exited 1: {refusal}" in res.stdout, res.stdout[-3000:]
        # force_handlers ran the notified restart, which skipped.
        assert re.search(rf"RUNNING HANDLER \[otel_collector : Restart otel-collector\][^\n]*\n[^\n]*\nskipping: \[{COLLECTOR_HOST}\]",
                         res.stdout), res.stdout[-3000:]
        after = collector_state(host)
        assert after["link"] == before["link"] and after["pid"] == before["pid"] and after["running"], (before, after)
        print(f"refused: {version} stays in {after['releases']}, PID {after['pid']} unchanged "
              "(its restart handler, notified by the changed config, skipped)")
    finally:
        run_on(host, f"rm -rf {COLLECTOR.releases_dir}/{version}")
        restored = deploy_lab(*COLLECTOR.tags)
    assert restored.returncode == 0, f"the deploy with the defaults failed:\n{restored.stdout[-3000:]}"


def component_state(component, hosts):
    """{unit: unit_state} of each unit of a component, on its host."""
    return {p.unit: unit_state(component, hosts[p.host], p.unit) for p in component.placements}


def on_release(component, state, version=None):
    """Whether a unit's state (unit_state) has every link on the release of `version` (the
    role's default when None) and the unit's process running its binary."""
    return (state["exe"] == component.release_binary(version)
            and all(target == component.release_binary(version, name) for name, target in state["links"].items()))


def leave_a_switch_without_its_restart(component, host, unit, old_version, version):
    """What a run stopped between its switch from `old_version` to `version` and the restart leaves
    on a host: the unit's file as that run rendered it (its Description names the version) and
    loaded, the links on the new release, the process still on the release before. So the next
    deploy changes no file, and only the file the process runs tells that it must restart."""
    unit_file = f"/etc/systemd/system/{unit}.service"
    old, new = re.escape(old_version), re.escape(version)
    links = " && ".join(f"ln -sfn {component.release_binary(version, name)} {path}"
                        for name, path in component.links.items())
    run_on(host, f"sed -i -E '/^Description=/s/ {old}( |$)/ {version}\\1/' {unit_file} && "
                 f"grep -Eq '^Description=.* {new}( |$)' {unit_file} && systemctl daemon-reload && {links}")


@pytest.mark.parametrize("component", [COLLECTOR, JAEGER, PROMETHEUS], ids=lambda component: component.role)
def test_upgrades_and_a_downgrade_switch_the_release_and_keep_the_one_before(component, hosts, tmp_path):
    """Two upgrades and the way back, each a deploy that only changes the version: on each host of
    the component, the links move to the new release, each unit restarts on it (its process runs the
    new release's file) and answers its health check, the release it replaced stays, older ones are
    removed. The newer releases hold the real binaries. On the way back, a run that was stopped
    between its switch and the restart is made up for: the links already on the release to run, the
    units still on the one before, the next deploy restarts them without moving anything."""
    first = hosts[component.hosts[0]]
    real_binaries = {name: first.file(component.release_binary(name=name)).content for name, _ in component.binaries}
    major = component.version.split(".")[0]
    version_1, version_2 = f"{major}.999.1", f"{major}.999.2"
    install_1 = publish_release(component, first, tmp_path, version_1, real_binaries)
    # (version, deploy arguments, whether the links were switched before the deploy, releases after it)
    steps = [(version_1, install_1, False, [component.version, version_1]),
             (version_2, publish_release(component, first, tmp_path, version_2, real_binaries), False, [version_1, version_2]),
             (version_1, install_1, True, [version_1, version_2]),
             (component.version, component.tags, False, [component.version, version_1])]
    previous = component.version
    try:
        for version, args, interrupted_switch, releases in steps:
            if interrupted_switch:
                for placement in component.placements:
                    leave_a_switch_without_its_restart(component, hosts[placement.host], placement.unit, previous, version)
            before = component_state(component, hosts)
            res = deploy_lab(*args)
            assert res.returncode == 0, f"the deploy of {version} failed:\n{res.stdout[-3000:]}"
            if interrupted_switch:
                # No file changed: the switch task reports the outdated processes, the handlers restart them.
                changed = changed_tasks(res.stdout)
                assert changed and all(kind == "RUNNING HANDLER" or name.startswith("common : Point the links")
                                       for kind, name in changed), changed
            after = component_state(component, hosts)
            for placement in component.placements:
                was, now = before[placement.unit], after[placement.unit]
                assert on_release(component, now, version), (placement.unit, now)
                assert now["running"] and now["pid"] != was["pid"], (placement.unit, was, now)
                assert now["releases"] == sorted(releases), (placement.unit, now)
                assert placement.healthy(), (placement.unit, placement.health_url)
                print(f"{placement.host} {placement.unit}: {was['exe']} -> {now['exe']}: PID {was['pid']} -> {now['pid']}, "
                      f"links {sorted(now['links'].values())}, releases {now['releases']}"
                      + (" (links switched before the deploy)" if interrupted_switch else ""))
            previous = version
    finally:
        # The test's releases are removed only once no unit may run one of them.
        if not all(on_release(component, state) for state in component_state(component, hosts).values()):
            deploy_back(*component.tags)
        for name in component.hosts:
            run_on(hosts[name], f"rm -rf {component.releases_dir}/{version_1} {component.releases_dir}/{version_2}")


def test_a_binary_copied_in_place_by_an_older_deploy_is_replaced_by_the_link(host):
    """Deployments before releases had folders copied the binary to the link's path. The next
    deploy checks the live config with the release, replaces that file with the link and restarts
    the Collector on the release; a deploy after that changes nothing on the host."""
    try:
        run_on(host, f"cp --remove-destination {COLLECTOR.release_binary()} {COLLECTOR.link}")
        before = collector_state(host)
        assert before["link"] == "", before
        res = deploy_lab(*COLLECTOR.tags)
        assert res.returncode == 0, f"the deploy failed:\n{res.stdout[-3000:]}"
        after = collector_state(host)
        assert after["link"] == after["exe"] == COLLECTOR.release_binary(), after
        assert after["pid"] != before["pid"] and after["running"], (before, after)
        again = deploy_lab(*COLLECTOR.tags)
        assert again.returncode == 0 and re.search(rf"{COLLECTOR_HOST}\s*: ok=\d+\s+changed=0 ", again.stdout), \
            again.stdout[-3000:]
        print(f"regular file -> link to {after['link']}, PID {before['pid']} -> {after['pid']}; next deploy changed=0")
    finally:
        state = collector_state(host)
        if state["link"] != COLLECTOR.release_binary() or state["exe"] != COLLECTOR.release_binary():
            deploy_back(*COLLECTOR.tags)


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
    deploy of their roles restarts each of them (in the lab: the Collector, jaeger's units,
    Prometheus), and the same deploy after it changes nothing."""
    before = release_processes(hosts)
    # Each of them, so that none drops out unseen (release_processes keeps only what runs a
    # release's binary).
    assert {unit for _, unit in before} == LAB_BACKEND_UNITS, before
    try:
        for name, exe in sorted({(name, exe) for (name, _), (_, exe) in before.items()}):
            run_on(hosts[name], f"cp -p {exe} {exe}.new && mv {exe}.new {exe}")
        replaced = {key: running_file(hosts[key[0]], pid) for key, (pid, _) in before.items()}
        assert all(exe.endswith(" (deleted)") for exe in replaced.values()), replaced
        res = deploy_lab(*RELEASE_INSTALL_TAGS)
        assert res.returncode == 0, f"the deploy failed:\n{res.stdout[-3000:]}"
        after = release_processes(hosts)
        assert after.keys() == before.keys(), (before, after)
        for key, (pid, exe) in after.items():
            assert pid != before[key][0] and exe == before[key][1], (key, before[key], after[key])
        again = deploy_lab(*RELEASE_INSTALL_TAGS)
        assert again.returncode == 0 and len(re.findall(r"\bok=\d+\s+changed=0 ", again.stdout)) == len(hosts), \
            again.stdout[-3000:]
    finally:
        still = {key for key, (pid, exe) in release_processes(hosts).items() if exe.endswith(" (deleted)")}
        if still:
            deploy_back()
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
    assert_refused(res, f"otel_collector_version={version}, which is not installed",
                   *COLLECTOR.tags)
    assert re.search(rf"{COLLECTOR_HOST}\s*: ok=\d+\s+changed=0 ", res.stdout), res.stdout[-3000:]
    assert (f"{COLLECTOR_HOST}: release {version} is not installed (otelcol-contrib missing in "
            f"{COLLECTOR.releases_dir}/{version}); run the role with its _install tag") in res.stdout, res.stdout[-3000:]
    assert collector_state(host) == before
