"""Fixtures of the lab verification (pytest + testinfra over SSH with the lab's key).

Run from the repository root after ansible/lab/up.sh and ansible/lab/deploy.sh:
    $LAB_CACHE/venv/bin/pytest ansible/tests
The hosts, their addresses and app instances come from the lab inventory itself (rendered by
ansible), the SSH key and network settings from ansible/lab/lab.env.
"""
import base64
import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import testinfra
import yaml

ANSIBLE_DIR = Path(__file__).resolve().parent.parent
# The lint check that keeps site.yml's placement play equal to the roles' units also reads that
# play; the tests read it through the same function.
sys.path.insert(0, str(ANSIBLE_DIR.parent / "scripts"))
from check_placement import placement_map  # noqa: E402  (found through the path set just above)

LAB_ENV = ANSIBLE_DIR / "lab" / "lab.env"
INVENTORY = ANSIBLE_DIR / "inventories" / "lab" / "hosts.yml"
# The firewall role's nftables table (the lab inventory keeps the role's name for it).
FIREWALL_TABLE = yaml.safe_load((ANSIBLE_DIR / "roles/firewall/defaults/main.yml").read_text())["firewall_table"]
# The stack's systemd units (apps aside, named per instance): those site.yml's placement play maps
# to inventory groups, which `make lint` (scripts/check_placement.py) keeps equal to the units the
# roles install.
STACK_UNITS = sorted(placement_map(ANSIBLE_DIR / "site.yml"))
SSH_OPTIONS = [
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
    "-o", "BatchMode=yes",
]


def lab_settings():
    """The lab.env settings as the lab scripts see them (environment overrides included)."""
    names = {"ssh_key": "LAB_SSH_KEY", "net_prefix": "LAB_NET_PREFIX", "bridge": "LAB_BRIDGE",
             "netns_prefix": "LAB_NETNS_PREFIX", "state": "LAB_STATE"}
    out = subprocess.run(
        ["bash", "-c", f'. "{LAB_ENV}" && printf "%s\\n" ' + " ".join(f'"${v}"' for v in names.values())],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout.splitlines()
    return dict(zip(names, out, strict=True))


def lab_inventory():
    """{host: {"addr": ..., "apps": [...], "ports": {app: port}, "modes": {app: MODE}, "spm": bool,
    "logs": bool}} of the lab inventory, with its variables rendered ("modes" is the inventory's
    app_instance_modes, "spm" and "logs" its spm_enabled and logs_enabled)."""
    # Not the project's ansible.cfg (its extra callbacks print to stdout): plain JSON output.
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    env.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json")
    ansible = Path(sys.executable).parent / "ansible"
    msg = "{{ {'addr': ansible_host | default(inventory_hostname), " \
          "'apps': app_instances | default([]), " \
          "'ports': dict(app_instances | default([]) | product([app_port | default(8000)]))" \
          " | combine(app_instance_ports | default({})), " \
          "'modes': app_instance_modes | default({}), " \
          "'spm': spm_enabled | default(false) | bool, 'logs': logs_enabled | default(false) | bool} | to_json }}"
    proc = subprocess.run(
        [str(ansible), "all", "-i", str(INVENTORY), "-m", "ansible.builtin.debug", "-a", f"msg={msg}"],
        cwd="/", env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"cannot read the lab inventory:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(proc.stdout)
    hosts = {}
    for host, res in result["plays"][0]["tasks"][0]["hosts"].items():
        hosts[host] = json.loads(res["msg"]) if isinstance(res["msg"], str) else res["msg"]
    return hosts


def inventory_groups():
    """{group: [hosts]} of the lab inventory (children's hosts included)."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(INVENTORY), "--list"],
        cwd="/", capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    data = json.loads(out)

    def members(group):
        entry = data.get(group, {})
        found = list(entry.get("hosts", []))
        for child in entry.get("children", []):
            found += members(child)
        return found

    return {g: sorted(set(members(g))) for g in data if g != "_meta"}


def addr(host):
    return INVENTORY_HOSTS[host]["addr"]


SETTINGS = lab_settings()
INVENTORY_HOSTS = lab_inventory()
GROUPS = inventory_groups()
# The inventory's optional topologies (group_vars/all): span metrics, and logs shipped to Loki.
SPM_ENABLED = any(values["spm"] for values in INVENTORY_HOSTS.values())
LOGS_ENABLED = any(values["logs"] for values in INVENTORY_HOSTS.values())
# Highest overall exposure `systemd-analyze security` may rate a unit, in its tenths (20 = 2.0;
# the scale ends at 10.0 "UNSAFE"). The app units rate 1.1, the Go services 1.5.
MAX_EXPOSURE = 20
# The backends that run under the roles' own units in the lab, each from a release's binary (the
# lab runs Cassandra outside its role's unit, and Loki, Grafana, Promtail, Alloy not at all).
LAB_BACKEND_UNITS = {"otel-collector", "jaeger-collector", "jaeger-query", "prometheus"}
# (host, app instance) pairs, e.g. ("node1", "app-a").
APP_PLACEMENTS = [(h, a) for h, v in sorted(INVENTORY_HOSTS.items()) for a in v["apps"]]


# The instances one /chain on app-a reaches: app-a and its targets (the app role's app_target_one
# and app_target_two). app-d, on the fourth export path, is not among them.
CHAIN_APPS = ("app-a", "app-b", "app-c")
CHAIN_PLACEMENTS = [(h, a) for h, a in APP_PLACEMENTS if a in CHAIN_APPS]
CHAIN_MIN_SPANS = 7  # /chain: 4 SERVER spans (a, a "/", b, c) + 3 CLIENT spans from app-a
QUERY_PORT = int(os.environ.get("PIPELINE_QUERY_PORT", "16686"))  # jaeger-query's HTTP API and UI


def query_url(trace_id):
    """jaeger-query's API address of a trace (the first host of group jaeger_query)."""
    return f"http://{addr(GROUPS['jaeger_query'][0])}:{QUERY_PORT}/api/traces/{trace_id}"


def fetch_chain_trace(trace_id):
    """A /chain trace as jaeger-query (the first host of group jaeger_query) returns it, or None
    while it is not (completely) there (chain_trace_in)."""
    try:
        return chain_trace_in(*http_get(query_url(trace_id), timeout=10))
    except OSError:
        return None


def wait_for_chain_trace(trace_id, sent, timeout):
    """(the /chain trace, seconds from `sent` (monotonic) until jaeger-query returned it complete);
    fails the test, with jaeger-query's last answer, when that takes longer than `timeout` s."""
    deadline = sent + timeout
    while (trace := fetch_chain_trace(trace_id)) is None:
        if time.monotonic() > deadline:
            status, body = http_get(query_url(trace_id), timeout=10)
            pytest.fail(f"trace {trace_id} not complete in jaeger-query after {timeout}s "
                        f"(HTTP {status}: {body[:400]})")
        time.sleep(1)
    return trace, time.monotonic() - sent


def chain_trace_in(status, body):
    """The /chain trace in jaeger-query's answer (status, body) to GET /api/traces/<id>, or None
    while it is not (completely) there: at least CHAIN_MIN_SPANS spans, of every instance in
    CHAIN_APPS."""
    data = (json.loads(body).get("data") or []) if status == 200 else []
    if not data:
        return None
    trace = data[0]
    services = {p["serviceName"] for p in trace["processes"].values()}
    if len(trace["spans"]) < CHAIN_MIN_SPANS or not set(CHAIN_APPS) <= services:
        return None
    return trace


def pytest_generate_tests(metafunc):
    for name, placements in (("placement", APP_PLACEMENTS), ("chain_placement", CHAIN_PLACEMENTS)):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, placements, ids=[f"{h}-{a}" for h, a in placements])


@pytest.fixture(scope="session")
def inventory():
    return INVENTORY_HOSTS


@pytest.fixture(scope="session")
def ssh_key():
    return SETTINGS["ssh_key"]


@pytest.fixture(scope="session")
def hosts(ssh_key):
    """testinfra hosts by inventory name."""
    return {
        name: testinfra.get_host(
            f"ssh://root@{v['addr']}", ssh_identity_file=ssh_key,
            ssh_extra_args=" ".join(SSH_OPTIONS), controlpersist=0,
        )
        for name, v in INVENTORY_HOSTS.items()
    }


def app_url(app, path=""):
    """http://<addr>:<port><path> of an app instance, from the lab inventory."""
    host = next(h for h, a in APP_PLACEMENTS if a == app)
    return f"http://{INVENTORY_HOSTS[host]['addr']}:{INVENTORY_HOSTS[host]['ports'][app]}{path}"


def send_traced(path):
    """GET <path> on app-a with a fresh sampled traceparent; returns (trace_id, status, body, send time)."""
    trace_id = secrets.token_hex(16)
    sent = time.monotonic()
    status, body = http_get(app_url("app-a", path),
                            headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}, timeout=30)
    return trace_id, status, body, sent


def send_chain():
    """GET /chain on app-a with a fresh traceparent; returns (trace_id, monotonic send time)."""
    trace_id, status, body, sent = send_traced("/chain")
    assert status == 200 and json.loads(body) == {"path": "/chain"}, f"/chain: HTTP {status} {body[:300]}"
    return trace_id, sent


def systemctl_show(host, unit, *props, options=""):
    """{property: value} of `systemctl show` for a unit (".service" added) on a testinfra host."""
    out = host.check_output(f"systemctl show {options} {unit}.service " + " ".join(f"-p {p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines())


def ssh(addr, key, command, timeout=30):
    """Runs a command on a lab host with plain ssh (no connection reuse); returns CompletedProcess."""
    return subprocess.run(
        ["ssh", "-i", key, *SSH_OPTIONS, f"root@{addr}", command],
        capture_output=True, text=True, timeout=timeout,
    )


@contextlib.contextmanager
def port_held(host_addr, key, port, unit="test-port-holder"):
    """Holds a TCP port on a lab host's address while the block runs: a transient unit listens on
    it (for 10 minutes at the most), and is stopped afterwards. For tests that make a service fail
    to bind its port."""
    try:
        # Inside the try: an SSH call that times out may still have started the unit.
        started = ssh(host_addr, key, (
            f"systemd-run --unit={unit} --collect python3 -c 'import socket, time; "
            f"s = socket.create_server((\"{host_addr}\", {port})); time.sleep(600)' && "
            f"for i in $(seq 1 50); do ss -Htln 'sport = :{port}' | grep -q . && exit 0; sleep 0.1; done; exit 1"))
        assert started.returncode == 0, f"no listener on {host_addr}:{port}: {started.stdout}{started.stderr}"
        yield
    finally:
        ssh(host_addr, key, f"systemctl stop {unit}")


def deploy_back(*args, timeout=1200):
    """deploy_lab(*args) to give the hosts their own settings back after a test changed them;
    raises AssertionError with the deploy's output when it fails: a host left with a test's
    settings would otherwise show only in the tests after it."""
    restore = deploy_lab(*args, timeout=timeout)
    assert restore.returncode == 0, f"restoring {args} failed:\n{restore.stdout[-3000:]}"


@contextlib.contextmanager
def restoring(*args, timeout=600):
    """Runs the block, then deploy_back(*args), which must pass; its failure is reported also when
    the block failed (with that error as its context)."""
    try:
        yield
    finally:
        deploy_back(*args, timeout=timeout)


def assert_refused(proc, what, *restore_args, timeout=1200):
    """Fails the test when the deploy `proc`, run with `what`, passed. It then changed the hosts:
    before failing, they are deployed again with their own settings (restoring), so that the
    tests after this one do not run on what it applied."""
    if proc.returncode == 0:
        with restoring(*restore_args, timeout=timeout):
            pytest.fail(f"the deploy passed with {what}; the hosts' own settings are deployed again")


@contextlib.contextmanager
def deploy_with_port_held(host, tags, port, extra_vars):
    """Deploys one host with the given tags and extra variables while a port they point a service
    at is held on it (port_held), and yields that deploy's result; afterwards the host is deployed
    again with the same tags and its own settings, which must pass (restoring). For tests of a
    start that fails."""
    args = ["--limit", host, "--tags", tags]
    with restoring(*args), port_held(addr(host), SETTINGS["ssh_key"], port):
        yield deploy_lab(*args, "-e", json.dumps(extra_vars), timeout=600)


def http_get(url, headers=None, timeout=10):
    """(status, body) of a GET; HTTP errors give their status instead of raising."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def http_get_on(host_addr, url, timeout=10):
    """(status, body) of a GET made with curl on a lab host over SSH: the backend ports (metrics,
    health) accept the cluster's hosts only (role firewall), not the controller. Raises OSError
    when curl gets no HTTP answer."""
    return http_get_many_on(host_addr, [url], timeout)[0]


def http_get_many_on(host_addr, urls, timeout=10):
    """[(status, body)] of GETs made one after the other, in the order given, with curl on a lab
    host in one SSH session (see http_get_on); timeout is per URL. Raises OSError naming the first
    URL that got no HTTP answer."""
    # Each answer ends with a line "<HTTP status> <curl exit> <boundary>"; the boundary is random.
    boundary = secrets.token_hex(16)
    script = "; ".join(f"curl -sS --max-time {int(timeout)} -o - -w '\\n%{{http_code}}' {shlex.quote(url)}; "
                       f"echo \" $? {boundary}\"" for url in urls)
    res = ssh(host_addr, SETTINGS["ssh_key"], script, timeout=len(urls) * int(timeout) + 30)
    answers = res.stdout.split(f" {boundary}\n")
    if res.returncode != 0 or len(answers) != len(urls) + 1:
        raise OSError(f"GET {' '.join(urls)} on {host_addr}: ssh exit {res.returncode}: {res.stderr.strip()}")
    results = []
    for url, answer in zip(urls, answers):
        body, _, tail = answer.rpartition("\n")
        status, _, curl_exit = tail.partition(" ")
        if curl_exit != "0" or not status.isdigit() or status == "000":
            raise OSError(f"GET {url} on {host_addr}: curl exit {curl_exit}: {res.stderr.strip()}")
        results.append((int(status), body))
    return results


def env_file(host, app):
    """The deployed environment file of an instance as a dict."""
    content = host.file(f"/etc/helidon-apps/{app}.env").content_string
    values = {}
    for line in content.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip().strip('"')
    return values


def group_running(pgid):
    """Whether a process of the process group still runs (zombies aside, as scripts/session-lib.sh)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if int(group) == pgid and state != "Z":
            return True
    return False


def run_in_group(cmd, timeout, grace=10, **kwargs):
    """subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs), but in a
    process group of its own, all of which a timeout stops: TERM, KILL after `grace` seconds. The
    lab's scripts run ansible-playbook as a child (deploy.sh, cassandra.sh), which subprocess.run's
    timeout would leave running against the hosts: it kills the script alone. A group, not a
    session: make test stops a stage by its session (scripts/session-lib.sh), which must still
    reach the playbook. Daemons a script starts in sessions of their own (the lab's Cassandra) are
    not stopped."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          process_group=0, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            signal_group(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while group_running(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.5)
            signal_group(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(proc.args, timeout, output=out, stderr=err) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the whole group has ended


def wait_for(what, check, timeout, interval=3):
    """Calls check() every `interval` seconds until it returns something true, which it returns;
    fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout}s")
        time.sleep(interval)


def deploy_lab(*args, timeout=1200, env=None):
    """Runs ansible/lab/deploy.sh (site.yml on the lab) with extra ansible-playbook arguments (and
    `env` as its environment, if given); returns the CompletedProcess, whatever its exit status.
    On the timeout, the playbook is stopped too (run_in_group)."""
    return run_in_group([str(ANSIBLE_DIR / "lab" / "deploy.sh"), *args], timeout=timeout, env=env)


def run_test_playbook(playbook, variables, inventory=INVENTORY, timeout=300):
    """ansible-playbook with one of this folder's playbooks (render/<playbook>) against `inventory`
    (the lab's unless named), `variables` as its extra variables; returns the CompletedProcess,
    whatever its exit status."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
         f"tests/render/{playbook}", "-e", json.dumps(variables)],
        cwd=ANSIBLE_DIR, env=dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg")),
        capture_output=True, text=True, timeout=timeout)


# The app role's handlers as ansible-playbook names them.
APP_RELOAD_HANDLER = "app : Reload systemd for the instances' units"
APP_RESTART_HANDLER = "app : Restart the instances whose jar, environment or unit changed"


def task_results(output):
    """[(TASK or RUNNING HANDLER, its name, its results' lines)] in ansible-playbook's output (the
    default callback's), in their order."""
    blocks = re.split(r"\n(?=(?:TASK|RUNNING HANDLER) \[)", output)
    headers = (re.match(r"(TASK|RUNNING HANDLER) \[([^\]]+)\]", block) for block in blocks)
    return [(*header.groups(), block) for header, block in zip(headers, blocks) if header]


def changed_tasks(output):
    """[(TASK or RUNNING HANDLER, its name)] of the tasks and handlers that reported a change on
    any host, from ansible-playbook's output (the default callback's "changed: [host]" lines)."""
    return [(kind, name) for kind, name, results in task_results(output)
            if re.search(r"^changed: ", results, re.MULTILINE)]


# Secrets the roles generate on the controller for the lab inventory (their *_file defaults).
SECRETS_DIR = Path(os.environ["HOME"]) / ".config" / "helidon-otel-vms" / INVENTORY.parent.name


def prometheus_auth_header(user="admin", password=None):
    """Authorization header for Prometheus's basic auth (role prometheus, its defaults: user
    admin, the password generated on the controller)."""
    if password is None:
        password = (SECRETS_DIR / "prometheus-password").read_text().strip()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}

