"""Checks of the logs topology (loki, promtail, grafana roles) that need no lab: Loki, Promtail and
Grafana cannot be built or downloaded here, so their roles were never run. This renders the
roles' templates with Ansible for the Vagrant inventory (both switches on) on the controller, then:

- every rendered config parses (YAML, JSON, INI, systemd units);
- Promtail's multiline and extraction regexes match real log lines of the app: the jar runs on
  loopback with LOG_FILE set (spans exported to a local sink), serves /, /chain and /error_test
  (stack trace), and the regexes are applied to its log file with Python's re (the regexes keep
  to the subset RE2 and Python share);
- the Alloy config (log_shipper: alloy) is well-formed Alloy syntax (a small tokenizer: balanced
  blocks, valid string literals) and ships the same files with the same labels and regexes as
  Promtail's;
- the Grafana datasource uids and links cross-reference (Jaeger -> Loki by a custom query on the
  shipper's job label and the trace id, Loki's derived field trace_id=<32 hex> -> Jaeger, never
  trace_id=0) and point at the inventory's hosts; with spm_enabled off the Prometheus
  datasource is deleted, not just left out;
- the dashboard JSON is valid and every PromQL query names metrics (and labels) the collector's
  span_metrics connector config produces.

Runs with the venv's pytest from the repository root: $LAB_CACHE/venv/bin/pytest
ansible/tests/test_logs_config.py (the app jar is built with scripts/build-app.sh if missing).
"""
import configparser
import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from conftest import ANSIBLE_DIR, MAX_EXPOSURE, http_get, run_test_playbook

ROOT = ANSIBLE_DIR.parent
INVENTORY = ANSIBLE_DIR / "inventories" / "vagrant" / "hosts.yml"
JAR = ROOT / "app" / "target" / "app.jar"

# role -> (inventory group, templates under the repository root)
RENDER = {
    "loki": ("loki", ["etc/loki/config.yaml.j2", "systemd/loki.service.j2"]),
    "promtail": ("promtail", ["etc/promtail/config.yaml.j2", "systemd/promtail.service.j2"]),
    "grafana": ("grafana", [
        "etc/grafana/grafana.ini.j2",
        "etc/grafana/provisioning/datasources/datasources.yaml.j2",
        "etc/grafana/provisioning/dashboards/dashboards.yaml.j2",
        "systemd/grafana.service.j2",
    ]),
    "otel_collector": ("otel_collector", ["etc/otel-collector/config.yaml.j2"]),
    "prometheus": ("prometheus", ["etc/prometheus/prometheus.yml.j2", "etc/prometheus/web.yml.j2",
                                  "systemd/prometheus.service.j2"]),
    "jaeger": ("jaeger_query", ["etc/jaeger/query.yaml.j2"]),
    "alloy": ("promtail", ["etc/alloy/config.alloy.j2", "systemd/alloy.service.j2"]),
    "cassandra": ("cassandra", ["systemd/cassandra.service.j2"]),
}
# Python-only regex syntax that RE2 (Promtail, Grafana) rejects.
NOT_RE2 = [r"(?=", r"(?!", r"(?<=", r"(?<!", r"(?>", r"\1", r"(?P="]


def render(role, out, **overrides):
    group, templates = RENDER[role]
    # Secrets the roles generate on the controller go to the output folder, not to the
    # inventory's folder under ~/.config (test_web_auth_config.py reads them there).
    extra = {"render_role": role, "render_group": group, "render_out": str(out),
             "render_templates": templates, "spm_enabled": True, "logs_enabled": True,
             "prometheus_web_password_file": str(out / "prometheus-password"), **overrides}
    proc = run_test_playbook("render.yml", extra, inventory=INVENTORY)
    assert proc.returncode == 0, f"rendering {role} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("rendered")
    for role in RENDER:
        render(role, out)
    return out


def hosts_of(rendered, path):
    """{host: rendered file} for every host that got this file."""
    return {p.relative_to(rendered).parts[0]: p
            for p in rendered.glob(f"*/{path}")}


def one(rendered, path):
    files = hosts_of(rendered, path)
    assert files, f"{path} was not rendered"
    return next(iter(sorted(files.items())))


def load_yaml(path):
    return yaml.safe_load(path.read_text())


def inventory_groups():
    return load_yaml(INVENTORY)["all"]


# ---- every rendered config parses ---------------------------------------------------------

YAML_FILES = ["etc/loki/config.yaml", "etc/promtail/config.yaml",
              "etc/grafana/provisioning/datasources/datasources.yaml",
              "etc/grafana/provisioning/dashboards/dashboards.yaml",
              "etc/otel-collector/config.yaml", "etc/prometheus/prometheus.yml",
              "etc/prometheus/web.yml", "etc/jaeger/query.yaml"]
UNITS = {"loki": "loki", "promtail": "promtail", "grafana": "grafana", "alloy": "alloy"}


@pytest.mark.parametrize("path", YAML_FILES)
def test_rendered_yaml_parses(rendered, path):
    files = hosts_of(rendered, path)
    assert files
    for host, f in files.items():
        assert isinstance(load_yaml(f), dict), f"{host}:{path} is not a YAML mapping"


def test_grafana_ini_parses_and_is_locked_down(rendered):
    _, f = one(rendered, "etc/grafana/grafana.ini")
    ini = configparser.ConfigParser(interpolation=None, strict=True)
    ini.read_string(f.read_text())
    assert ini["auth.anonymous"]["enabled"] == "false"
    assert ini["auth.anonymous"]["org_role"] != "Admin"
    password = ini["security"]["admin_password"]
    assert password != "admin" and password.startswith("$__file{/"), password
    assert ini["users"]["allow_sign_up"] == "false"
    assert ini["paths"]["provisioning"].endswith("/provisioning")


# Grafana's expander syntax in grafana.ini and provisioning files (pkg/setting/expanders.go):
# $__file{<path>} is replaced by the file's content, trimmed.
GRAFANA_FILE_EXPANDER = re.compile(r"\$__file\{([^}]+)\}")
# The secret_key of Grafana's conf/defaults.ini: public, so it protects nothing.
GRAFANA_DEFAULT_SECRET_KEY = "SW2YcwTIb9zpOOhoPsMm"


def role_tasks(role, name="configure"):
    return yaml.safe_load((ANSIBLE_DIR / f"roles/{role}/tasks/{name}.yml").read_text())


def task_writing(role, dest_suffix):
    """The copy task of a role's configure.yml whose dest ends with dest_suffix."""
    found = [t for t in role_tasks(role) if str(t.get("ansible.builtin.copy", {}).get("dest", "")).endswith(dest_suffix)]
    assert len(found) == 1, f"{role}: {len(found)} copy tasks write *{dest_suffix}"
    return found[0]


def test_grafana_secret_key_is_generated_not_the_default(rendered):
    """secret_key comes from a file the role writes from a key generated on the controller; the
    ini holds no secret and never Grafana's public default."""
    _, f = one(rendered, "etc/grafana/grafana.ini")
    ini = configparser.ConfigParser(interpolation=None, strict=True)
    ini.read_string(f.read_text())
    key = ini["security"]["secret_key"]
    assert GRAFANA_DEFAULT_SECRET_KEY not in f.read_text()
    (path,) = GRAFANA_FILE_EXPANDER.fullmatch(key).groups()
    assert path == "/etc/grafana/secret-key"
    task = task_writing("grafana", "/secret-key")
    assert task["no_log"] is True and task["diff"] is False
    assert task["ansible.builtin.copy"]["mode"] == "0640"
    assert "grafana_secret_key_effective" in task["ansible.builtin.copy"]["content"]
    derived = yaml.safe_load((ANSIBLE_DIR / "roles/grafana/vars/main.yml").read_text())["grafana_secret_key_effective"]
    assert "lookup('generated_secret', 'grafana-secret-key'" in derived and "grafana_secret_key_file" in derived


def rendered_unit(rendered, unit):
    """{host: (file, its [Service] section)} of each rendered copy of a unit; at least one."""
    files = hosts_of(rendered, f"systemd/{unit}.service")
    assert files, f"no {unit}.service rendered"
    sections = {}
    for host, f in files.items():
        cp = configparser.ConfigParser(interpolation=None, strict=False)
        cp.optionxform = str
        cp.read_string(f.read_text())
        sections[host] = (f, cp["Service"])
    return sections


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_units_parse_and_are_hardened(rendered, unit):
    for host, (f, svc) in rendered_unit(rendered, unit).items():
        assert svc["User"] == unit and svc["Group"] == unit
        for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                           "ProtectHome": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
                           "CapabilityBoundingSet": "", "Restart": "on-failure"}.items():
            assert svc.get(key) == value, f"{host} {unit}: {key}={svc.get(key)!r}"
        assert svc["ReadWritePaths"].startswith("/var/lib/")
        assert "managed" in f.read_text().splitlines()[0].lower()


# The rendered units: those the lab does not run (their binaries cannot be had here, or the lab
# runs Cassandra outside the role's unit), and Prometheus's, which test_lab.py also rates running.
RATED_OFFLINE = ["alloy", "cassandra", "grafana", "loki", "prometheus", "promtail"]


@pytest.mark.parametrize("unit", RATED_OFFLINE)
def test_rendered_units_keep_exposure_low(rendered, unit):
    """The rendered unit, rated by systemd's own measure without a running systemd
    (`systemd-analyze security --offline`), stays within the exposure the running units keep."""
    files = hosts_of(rendered, f"systemd/{unit}.service")
    assert files
    for host, f in files.items():
        result = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--threshold={MAX_EXPOSURE}", str(f)],
                                capture_output=True, text=True, timeout=60)
        lines = result.stdout.strip().splitlines()
        assert result.returncode == 0, f"{host} {unit}: {lines[-1] if lines else result.stderr}"
        assert "Overall exposure level" in lines[-1], result.stdout[-2000:]


@pytest.mark.parametrize("unit", RATED_OFFLINE)
def test_rendered_units_have_a_memory_bound(rendered, unit):
    """As test_bounds.py checks on the running units: MemoryHigh below MemoryMax, no swap, for
    the units the lab renders but does not run (and Prometheus's)."""
    for host, (_, svc) in rendered_unit(rendered, unit).items():
        high, limit = (re.fullmatch(r"(\d+)M", svc[key]) for key in ("MemoryHigh", "MemoryMax"))
        assert high and limit and 0 < int(high[1]) < int(limit[1]), \
            f"{host} {unit}: MemoryHigh={svc['MemoryHigh']} MemoryMax={svc['MemoryMax']}"
        assert svc.get("MemorySwapMax") == "0", f"{host} {unit}"


def test_cassandra_unit_asks_jmx_for_a_password(rendered):
    """LOCAL_JMX=yes makes cassandra-env.sh pass jmxremote.authenticate=false; the unit's
    JVM_EXTRA_OPTS, which it appends last, turn JMX's password on (the lab's Cassandra runs with the
    same options and test_cassandra_auth.py shows nodetool refused without it)."""
    for host, (f, _) in rendered_unit(rendered, "cassandra").items():
        env = dict(token.split("=", 1) for line in f.read_text().splitlines()
                   if line.startswith("Environment=") for token in shlex.split(line[len("Environment="):]))
        opts = env.get("JVM_EXTRA_OPTS", "").split()
        assert env.get("LOCAL_JMX") == "yes", f"{host}: LOCAL_JMX={env.get('LOCAL_JMX')!r}"
        for opt in ("-Dcom.sun.management.jmxremote.authenticate=true",
                    "-Dcom.sun.management.jmxremote.password.file=/etc/cassandra/jmxremote.password",
                    "--add-exports=java.management/com.sun.jmx.remote.security=ALL-UNNAMED"):
            assert opt in opts, f"{host}: {opt} not in JVM_EXTRA_OPTS {opts}"


def test_dashboard_json_is_valid():
    dash = json.loads((ROOT / "etc/grafana/dashboards/span-metrics.json").read_text())
    assert dash["uid"] and dash["title"] and dash["panels"]
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for word in ("request rate", "error rate", "latency"):
        assert word in titles


# ---- Loki -------------------------------------------------------------------------------------

def test_loki_filesystem_storage_and_retention(rendered):
    _, f = one(rendered, "etc/loki/config.yaml")
    cfg = load_yaml(f)
    assert cfg["auth_enabled"] is False
    assert "filesystem" in cfg["common"]["storage"]
    schema = cfg["schema_config"]["configs"][0]
    assert (schema["store"], schema["object_store"], schema["schema"]) == ("tsdb", "filesystem", "v13")
    assert cfg["compactor"]["retention_enabled"] is True
    assert re.fullmatch(r"\d+h", cfg["limits_config"]["retention_period"])
    assert cfg["compactor"]["delete_request_store"] == "filesystem"


# Loki 3.7's sizes (flagext.ByteSize: datasize, upper-cased) and the deletion modes it knows
# (pkg/compactor/deletionmode).
LOKI_SIZE = re.compile(r"(\d+)(B|KB|MB|GB)", re.I)
LOKI_DELETION_MODES = {"disabled", "filter-only", "filter-and-delete"}


def loki_bytes(size):
    number, unit = LOKI_SIZE.fullmatch(str(size)).groups()
    return int(number) * {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[unit.upper()]


def test_loki_deletion_api_is_off(rendered):
    """Loki 3.7 registers /loki/api/v1/delete (and the compactor's delete requests) whenever
    retention is on, each behind a per-tenant check of limits_config.deletion_mode: `disabled`
    answers 403. Its default is filter-and-delete, so the setting must be there. Loki is not
    run here: this checks the rendered config, not a running Loki."""
    _, f = one(rendered, "etc/loki/config.yaml")
    cfg = load_yaml(f)
    assert cfg["limits_config"]["deletion_mode"] == "disabled"
    assert cfg["compactor"]["retention_enabled"] is True  # retention does not use the API
    assert "allow_deletes" not in cfg["compactor"]  # deprecated, ignored by Loki 3
    spec = yaml.safe_load((ANSIBLE_DIR / "roles/loki/meta/argument_specs.yml").read_text())
    assert set(spec["argument_specs"]["main"]["options"]["loki_deletion_mode"]["choices"]) == LOKI_DELETION_MODES


def test_loki_deletion_mode_is_a_variable(tmp_path):
    render("loki", tmp_path, loki_deletion_mode="filter-only")
    _, f = one(tmp_path, "etc/loki/config.yaml")
    assert load_yaml(f)["limits_config"]["deletion_mode"] == "filter-only"


def test_loki_ingestion_is_bounded(rendered):
    _, f = one(rendered, "etc/loki/config.yaml")
    limits = load_yaml(f)["limits_config"]
    assert 0 < limits["ingestion_rate_mb"] <= limits["ingestion_burst_size_mb"]
    rate, burst = loki_bytes(limits["per_stream_rate_limit"]), loki_bytes(limits["per_stream_rate_limit_burst"])
    assert 0 < rate <= burst
    assert rate <= limits["ingestion_rate_mb"] << 20, "a stream may not outrun its tenant"
    assert 0 < loki_bytes(limits["max_line_size"]) <= 1 << 20
    assert isinstance(limits["max_line_size_truncate"], bool)
    assert limits["max_global_streams_per_user"] > 0  # 0 would be no limit
    assert limits["reject_old_samples"] is True
    assert limits["reject_old_samples_max_age"] == limits["retention_period"]


def test_loki_limits_are_variables(tmp_path):
    render("loki", tmp_path, loki_ingestion_rate_mb=2, loki_ingestion_burst_size_mb=4,
           loki_per_stream_rate_limit="512KB", loki_max_line_size="64KB", loki_max_global_streams_per_user=50)
    _, f = one(tmp_path, "etc/loki/config.yaml")
    limits = load_yaml(f)["limits_config"]
    assert (limits["ingestion_rate_mb"], limits["ingestion_burst_size_mb"]) == (2, 4)
    assert loki_bytes(limits["per_stream_rate_limit"]) == 512 << 10
    assert loki_bytes(limits["max_line_size"]) == 64 << 10
    assert limits["max_global_streams_per_user"] == 50


# ---- Promtail ---------------------------------------------------------------------------------

def promtail_configs(rendered):
    return {h: load_yaml(f) for h, f in hosts_of(rendered, "etc/promtail/config.yaml").items()}


def stage(pipeline, name):
    found = [s[name] for s in pipeline if name in s]
    assert found, f"no {name} stage"
    return found[0]


def test_promtail_tails_each_app_log_file_with_labels(rendered):
    inv = inventory_groups()
    env_template = (ROOT / "etc/helidon-apps/app.env.j2").read_text()
    assert "LOG_FILE={{ app_log_dir }}/{{ app_instance }}/{{ app_instance }}.log" in env_template
    configs = promtail_configs(rendered)
    promtail_hosts = set(inv["children"]["apps"]["hosts"])
    assert set(configs) == promtail_hosts
    loki_host = next(iter(inv["children"]["loki"]["hosts"]))
    loki_addr = inv["hosts"][loki_host]["ansible_host"]
    for host, cfg in configs.items():
        instances = inv["hosts"][host]["app_instances"]
        jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
        assert set(jobs) == set(instances)
        for instance, job in jobs.items():
            labels = job["static_configs"][0]["labels"]
            assert labels["__path__"] == f"/var/log/helidon-apps/{instance}/{instance}.log"
            assert labels["host"] == host and labels["service_name"] == instance
            assert stage(job["pipeline_stages"], "labels") == {"level": None}
        assert cfg["positions"]["filename"].startswith("/var/lib/promtail/")
        assert cfg["clients"][0]["url"] == f"http://{loki_addr}:3100/loki/api/v1/push"


def promtail_regexes(rendered):
    cfg = next(iter(promtail_configs(rendered).values()))
    pipeline = cfg["scrape_configs"][0]["pipeline_stages"]
    return stage(pipeline, "multiline")["firstline"], stage(pipeline, "regex")["expression"]


def test_promtail_regexes_stay_in_the_re2_subset(rendered):
    for regex in promtail_regexes(rendered):
        assert regex.startswith("^")
        for bad in NOT_RE2:
            assert bad not in regex, f"{bad} is not RE2 syntax: {regex}"
        re.compile(regex)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, console, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the app exited ({proc.returncode}):\n{console.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status in (200, 204):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer 2xx within {timeout}s:\n{console.read_text()[-3000:]}")


def stop_process(proc):
    """SIGTERM, then SIGKILL when it has not ended within 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def app_log(tmp_path_factory):
    """The log file of the real app jar after /, a traced /chain and /error_test on loopback."""
    if not JAR.exists():
        subprocess.run([str(ROOT / "scripts" / "build-app.sh")], cwd=ROOT, check=True, timeout=900)
    java_home = subprocess.run([str(ROOT / "scripts" / "java-home.sh")], cwd=ROOT, check=True,
                               capture_output=True, text=True, timeout=60).stdout.strip()
    work = tmp_path_factory.mktemp("app")
    log_file = work / "app-a" / "app-a.log"
    port, sink_port = free_port(), free_port()
    trace_id = secrets.token_hex(16)
    env = {"PATH": os.environ["PATH"], "MODE": "otel-collector-http", "OTEL_SERVICE_NAME": "app-a",
           "EXPOSE_PORT": str(port), "OTEL_HTTP_ENDPOINT": f"http://127.0.0.1:{sink_port}/v1/traces",
           "TARGET_ONE_HOST": f"127.0.0.1:{port}", "TARGET_TWO_HOST": f"127.0.0.1:{port}",
           "LOG_FILE": str(log_file)}
    # Each process is stopped by its own finally: one that fails to start leaves none running.
    sink = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "otlp-sink.py"), "--port", str(sink_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with (work / "console.out").open("w") as console:
            app = subprocess.Popen([f"{java_home}/bin/java", "-Xmx128m", "-jar", str(JAR)], env=env,
                                   stdout=console, stderr=subprocess.STDOUT)
            try:
                base = f"http://127.0.0.1:{port}"
                wait_http(f"{base}/observe/health", app, work / "console.out")
                assert http_get(f"{base}/")[0] == 200
                headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
                assert http_get(f"{base}/chain", headers=headers, timeout=30)[0] == 200
                assert http_get(f"{base}/error_test")[0] == 500
                time.sleep(1)
            finally:
                stop_process(app)
    finally:
        stop_process(sink)
    text = log_file.read_text()
    assert text, "the app wrote no log lines"
    return {"text": text, "trace_id": trace_id}


def entries(text, firstline):
    """Groups lines into entries the way Promtail's multiline stage does."""
    start = re.compile(firstline)
    out = []
    for line in text.splitlines():
        if start.search(line) or not out:
            out.append([line])
        else:
            out[-1].append(line)
    return ["\n".join(e) for e in out]


def test_multiline_joins_stack_traces_to_their_entry(rendered, app_log):
    firstline, _ = promtail_regexes(rendered)
    lines = app_log["text"].splitlines()
    assert re.search(firstline, lines[0]), f"the first line is no entry start: {lines[0]!r}"
    trace_lines = [l for l in lines if l.startswith("\tat ") or l.startswith("Caused by")]
    assert trace_lines, "no stack trace in the log after /error_test"
    for line in trace_lines:
        assert not re.search(firstline, line), f"a stack trace line starts an entry: {line!r}"
    errors = [e for e in entries(app_log["text"], firstline) if "value error" in e and "\tat " in e]
    assert errors, "the stack trace was not joined to a log entry"
    assert re.search(firstline, errors[0].splitlines()[0])


def test_line_regex_extracts_level_and_ids_from_every_entry(rendered, app_log):
    firstline, expression = promtail_regexes(rendered)
    regex = re.compile(expression)
    levels = set()
    for entry in entries(app_log["text"], firstline):
        m = regex.match(entry)
        assert m, f"the line regex does not match: {entry.splitlines()[0]!r}"
        levels.add(m["level"])
        assert m["trace_id"] == "0" or re.fullmatch(r"[0-9a-f]{32}", m["trace_id"])
    assert "INFO" in levels and "ERROR" in levels, levels
    traced = [regex.match(e) for e in entries(app_log["text"], firstline) if app_log["trace_id"] in e]
    assert traced and all(m["trace_id"] == app_log["trace_id"] for m in traced)


# ---- Grafana datasources ---------------------------------------------------------------------

def datasources(rendered):
    _, f = one(rendered, "etc/grafana/provisioning/datasources/datasources.yaml")
    return {d["uid"]: d for d in load_yaml(f)["datasources"]}


def test_datasource_uids(rendered):
    ds = datasources(rendered)
    assert {uid: d["type"] for uid, d in ds.items()} == {
        "jaeger": "jaeger", "loki": "loki", "prometheus": "prometheus"}


def provisioned(value):
    """A string of a provisioning file as Grafana reads it: `$$` is a literal `$`; a lone `$NAME` or
    `${NAME}` would be an environment variable (the templates must not contain one)."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        assert not re.match(r"\$(\{[A-Za-z_]|[A-Za-z_])", value[i:]), \
            f"unescaped $ (an environment variable for Grafana) in {value!r}"
        out.append(value[i])
        i += 1
    return "".join(out)


def test_traces_to_logs_and_logs_to_traces_cross_reference(rendered, app_log):
    ds = datasources(rendered)
    t2l = ds["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert t2l["datasourceUid"] in ds and ds[t2l["datasourceUid"]]["type"] == "loki"
    # A custom query: Jaeger spans have no service.name tag to map (test_trace_to_logs.py shows
    # that on a real span), so a tag mapping built no query at all.
    assert t2l["customQuery"] is True and not t2l.get("tags")
    query = provisioned(t2l["query"])
    assert "${__span.traceId}" in query
    selector = dict(re.findall(r'(\w+)="([^"]*)"', re.match(r"\s*\{([^}]*)\}", query)[1]))
    assert selector, query
    for host, cfg in promtail_configs(rendered).items():
        for job in cfg["scrape_configs"]:
            labels = job["static_configs"][0]["labels"]
            assert selector.items() <= labels.items(), f"{host} {job['job_name']}: {labels} lack {selector}"
    # The line filter finds the lines of a real trace, and only those.
    (needle,) = re.findall(r'\|=\s*"([^"]*)"', query)
    needle = needle.replace("${__span.traceId}", app_log["trace_id"])
    lines = app_log["text"].splitlines()
    assert [l for l in lines if needle in l] == [l for l in lines if app_log["trace_id"] in l] != []
    for shift in ("spanStartTimeShift", "spanEndTimeShift"):
        assert re.fullmatch(r"-?\d+(ms|s|m|h)", t2l[shift])
    (field,) = ds["loki"]["jsonData"]["derivedFields"]
    assert field["datasourceUid"] in ds and ds[field["datasourceUid"]]["type"] == "jaeger"
    assert provisioned(field["url"]) == "${__value.raw}"
    # The derived field finds the trace id in a real log line.
    line = next(l for l in lines if app_log["trace_id"] in l)
    assert re.search(field["matcherRegex"], line)[1] == app_log["trace_id"]


def test_derived_field_links_only_real_trace_ids(rendered, app_log):
    """trace_id=0 (a line outside any span) is no trace: the derived field must not link it."""
    (field,) = datasources(rendered)["loki"]["jsonData"]["derivedFields"]
    regex = re.compile(field["matcherRegex"])
    untraced = [l for l in app_log["text"].splitlines() if "trace_id=0 " in l]
    assert untraced, "no line outside a span in the app's log"
    for line in untraced:
        assert not regex.search(line), f"the derived field links {line!r}"
    for bad in ("trace_id=abc", "trace_id=" + "a" * 31, "trace_id=" + "a" * 33, "trace_id=" + "g" * 32):
        assert not regex.search(bad + " span_id=0"), bad
    assert regex.search("trace_id=" + "0af7" * 8 + " span_id=1")[1] == "0af7" * 8


def test_prometheus_datasource_is_deleted_when_spm_is_off(tmp_path):
    """Provisioning only adds and updates: a datasource dropped from the file stays in Grafana's
    database unless the file lists it under deleteDatasources."""
    render("grafana", tmp_path, spm_enabled=False)
    _, f = one(tmp_path, "etc/grafana/provisioning/datasources/datasources.yaml")
    cfg = load_yaml(f)
    assert "prometheus" not in {d["uid"] for d in cfg["datasources"]}
    assert {"name": "Prometheus", "orgId": 1} in cfg.get("deleteDatasources", [])


def test_prometheus_datasource_is_not_deleted_when_spm_is_on(rendered):
    _, f = one(rendered, "etc/grafana/provisioning/datasources/datasources.yaml")
    cfg = load_yaml(f)
    names = {d["name"] for d in cfg["datasources"]}
    assert "Prometheus" in names
    assert not names & {d["name"] for d in cfg.get("deleteDatasources") or []}


def test_prometheus_datasource_logs_in_with_basic_auth(rendered):
    """Prometheus answers only with its web config's user and password: the datasource sends
    them, the password read from a file the role writes (a single `$`: Grafana's $__file
    expander, not an escaped literal)."""
    prom = datasources(rendered)["prometheus"]
    assert prom["basicAuth"] is True and prom["basicAuthUser"] == "admin"
    (path,) = GRAFANA_FILE_EXPANDER.fullmatch(prom["secureJsonData"]["basicAuthPassword"]).groups()
    assert path == "/etc/grafana/prometheus-password"
    assert "basicAuthPassword" not in prom.get("jsonData", {}), "a password in jsonData is stored unencrypted"
    task = task_writing("grafana", "/prometheus-password")
    assert task["no_log"] is True and task["diff"] is False
    assert "grafana_prometheus_password_effective" in task["ansible.builtin.copy"]["content"]
    assert task["when"] == "grafana_prometheus_enabled | bool"


def test_datasource_urls_follow_the_inventory(rendered):
    inv = inventory_groups()
    addr = {h: v["ansible_host"] for h, v in inv["hosts"].items()}
    first = {g: addr[next(iter(inv["children"][g]["hosts"]))]
             for g in ("jaeger_query", "loki", "prometheus")}
    ds = datasources(rendered)
    assert ds["jaeger"]["url"] == f"http://{first['jaeger_query']}:16686"
    assert ds["loki"]["url"] == f"http://{first['loki']}:3100"
    assert ds["prometheus"]["url"] == f"http://{first['prometheus']}:9090"


# ---- dashboard vs span metrics ---------------------------------------------------------------

def spanmetrics_names(rendered):
    """Prometheus metric names and labels the collector's span_metrics config produces."""
    _, f = one(rendered, "etc/otel-collector/config.yaml")
    cfg = load_yaml(f)
    (name,) = [c for c in cfg["connectors"] if c.split("/")[0] in ("span_metrics", "spanmetrics")]
    conn = cfg["connectors"][name] or {}
    assert any(name in p.get("exporters", []) for p in cfg["service"]["pipelines"].values())
    prefix = conn.get("namespace", "traces.span.metrics").replace(".", "_")
    unit = {"ms": "milliseconds", "s": "seconds"}[(conn.get("histogram") or {}).get("unit", "ms")]
    metrics = {f"{prefix}_calls_total"} | {
        f"{prefix}_duration_{unit}_{s}" for s in ("bucket", "sum", "count")}
    labels = {"service_name", "span_name", "span_kind", "status_code", "le"} | {
        d["name"].replace(".", "_") for d in conn.get("dimensions", [])}
    return metrics, labels


def promql_of_dashboard():
    dash = json.loads((ROOT / "etc/grafana/dashboards/span-metrics.json").read_text())
    queries = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    queries += [v["definition"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return dash, queries


def test_dashboard_queries_name_span_metrics(rendered):
    metrics, labels = spanmetrics_names(rendered)
    assert "traces_span_metrics_calls_total" in metrics
    dash, queries = promql_of_dashboard()
    assert queries
    used = set()
    for q in queries:
        stripped = re.sub(r'"[^"]*"', '""', q)
        # metric names: identifiers followed by a selector or range, outside label matchers
        names = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]", stripped)) - {"by", "without"}
        names |= set(re.findall(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", stripped))
        assert names, f"no metric in {q}"
        assert names <= metrics, f"{q} names {names - metrics}, not produced by the connector"
        used |= names
        for matchers in re.findall(r"\{([^}]*)\}", stripped):
            for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
                assert label in labels, f"{q} filters on {label}, not a span metrics label"
        for group in re.findall(r"by\s*\(([^)]*)\)", stripped):
            assert {g.strip() for g in group.split(",")} <= labels, q
    assert "traces_span_metrics_calls_total" in used
    assert any(n.endswith("_bucket") for n in used)
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "prometheus"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus"


def test_dashboard_provider_points_at_the_dashboard_folder(rendered):
    _, f = one(rendered, "etc/grafana/provisioning/dashboards/dashboards.yaml")
    (provider,) = load_yaml(f)["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/etc/grafana/dashboards"
    # With spm_enabled false the role removes the dashboard's file; Grafana deletes a provisioned
    # dashboard whose file is gone only when deletion is not disabled, else it keeps it, unprovisioned,
    # reading a datasource that no longer exists.
    assert provider["disableDeletion"] is False, provider


# ---- Alloy (log_shipper: alloy) -----------------------------------------------------------------

ALLOY_TOKEN = re.compile(r'\s+|//[^\n]*|"(?:[^"\\\n]|\\.)*"|[{}\[\](),=.]|[A-Za-z_][A-Za-z0-9_]*|-?\d+(?:\.\d+)?')


def alloy_tokens(text):
    """Tokens of an Alloy config (comments and blanks dropped); fails on anything else."""
    pos, out = 0, []
    while pos < len(text):
        m = ALLOY_TOKEN.match(text, pos)
        assert m, f"not Alloy syntax at {text[pos:pos + 40]!r}"
        tok = m.group()
        if not tok.isspace() and not tok.startswith("//"):
            out.append(json.loads(tok) if tok.startswith('"') else tok)
            if tok.startswith('"'):
                out[-1] = ("str", out[-1])
        pos = m.end()
    return out


CLOSING = {"}": "{", "]": "[", ")": "("}
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def token_text(tok):
    """Tokens are punctuation or identifiers (str) or string literals (("str", value))."""
    return tok[1] if isinstance(tok, tuple) else tok


def block_header(tokens, brace):
    """(name, label) of the block opened by tokens[brace]: `loki.write "loki" {` gives
    ("loki.write", "loki"), `stage.multiline {` gives ("stage.multiline", None)."""
    end = brace
    label = None
    if end > 0 and isinstance(tokens[end - 1], tuple):
        label = tokens[end - 1][1]
        end -= 1
    start = end
    while start > 0 and not isinstance(tokens[start - 1], tuple) and (
            tokens[start - 1] == "." or IDENTIFIER.fullmatch(tokens[start - 1])):
        start -= 1
    return "".join(tokens[start:end]), label


def alloy_blocks(tokens):
    """Checks bracket balance; returns {(block, label): {attribute: first value token}} for the
    top-level blocks (attributes of nested blocks count towards their top-level block)."""
    stack, blocks, path = [], {}, []
    for i, tok in enumerate(tokens):
        if tok in ("{", "[", "("):
            stack.append(tok)
            if tok == "{":
                path.append(block_header(tokens, i))
        elif tok in CLOSING:
            assert stack and stack.pop() == CLOSING[tok], "unbalanced brackets"
            if tok == "}":
                path.pop()
        elif tok == "=" and path:
            blocks.setdefault(path[0], {}).setdefault(token_text(tokens[i - 1]), tokens[i + 1])
    assert not stack, "unclosed brackets"
    return blocks


def test_alloy_block_reader_finds_blocks_and_rejects_unbalanced_brackets():
    tokens = alloy_tokens('loki.write "loki" {\n  endpoint {\n    url = "http://l:3100"\n  }\n}\n'
                          'loki.process "app" {\n  stage.multiline { firstline = "^x" }\n}\n')
    blocks = alloy_blocks(tokens)
    assert set(blocks) == {("loki.write", "loki"), ("loki.process", "app")}
    assert blocks[("loki.write", "loki")]["url"] == ("str", "http://l:3100")
    assert blocks[("loki.process", "app")]["firstline"] == ("str", "^x")
    for broken in ('a "b" { c = [1, 2 }', 'a "b" { c = 1', 'a "b" { c = (1] }'):
        with pytest.raises(AssertionError, match="unbalanced|unclosed"):
            alloy_blocks(alloy_tokens(broken))


def test_alloy_config_is_well_formed_and_ships_what_promtail_ships(rendered):
    promtail = promtail_configs(rendered)
    alloy = hosts_of(rendered, "etc/alloy/config.alloy")
    assert alloy and set(alloy) == set(promtail), (sorted(alloy), sorted(promtail))
    for host, f in alloy.items():
        tokens = alloy_tokens(f.read_text())
        blocks = alloy_blocks(tokens)
        strings = [t[1] for t in tokens if isinstance(t, tuple)]
        pcfg = promtail[host]
        assert ("loki.write", "loki") in blocks
        assert pcfg["clients"][0]["url"] in strings
        for job in pcfg["scrape_configs"]:
            labels = job["static_configs"][0]["labels"]
            ident = re.sub(r"[^A-Za-z0-9_]", "_", job["job_name"])
            for block in ("local.file_match", "loki.source.file", "loki.process"):
                assert (block, ident) in blocks, f"{host}: no {block} {ident!r}"
            targets = blocks[("local.file_match", ident)]
            for key in ("__path__", "host", "service_name", "job"):
                assert targets[key] == ("str", labels[key]), f"{host} {ident}: {key}"
            multiline = stage(job["pipeline_stages"], "multiline")
            assert multiline["firstline"] in strings
            assert stage(job["pipeline_stages"], "regex")["expression"] in strings


# ---- timestamps, Alloy's check and first reads ------------------------------------------------

GO_PARSE = """package main

import (
	"bufio"
	"fmt"
	"os"
	"time"
)

// Reads layout, location, then one time per line; prints each as Unix milliseconds, the way the
// timestamp stage of Promtail and Alloy parses a custom layout (time.ParseInLocation).
func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Scan()
	layout := in.Text()
	in.Scan()
	loc, err := time.LoadLocation(in.Text())
	if err != nil {
		fmt.Println("location:", err)
		os.Exit(2)
	}
	for in.Scan() {
		t, err := time.ParseInLocation(layout, in.Text(), loc)
		if err != nil {
			fmt.Println("parse:", err)
			os.Exit(3)
		}
		fmt.Println(t.UnixMilli())
	}
}
"""


def go_binary():
    for candidate in (os.environ.get("GO"), "/usr/local/go/bin/go", "go"):
        if candidate and subprocess.run(["sh", "-c", f'command -v "{candidate}"'],
                                        capture_output=True).returncode == 0:
            return candidate
    return None


def timestamp_stage(rendered):
    cfg = next(iter(promtail_configs(rendered).values()))
    return stage(cfg["scrape_configs"][0]["pipeline_stages"], "timestamp")


def test_promtail_stamps_entries_with_the_time_of_their_line(rendered, app_log, tmp_path):
    """Without a timestamp stage an entry gets the time it was read: a first start ships the
    whole file stamped "now". The stage must read the regex's time group with an explicit Go
    layout and timezone, and that layout must parse the app's real times as Go does."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    ts = timestamp_stage(rendered)
    firstline, expression = promtail_regexes(rendered)
    assert ts["source"] in re.compile(expression).groupindex
    assert ts["location"] and ZoneInfo(ts["location"])  # an IANA name Go can load as well
    assert ts["format"] == "2006-01-02 15:04:05,000"
    times = [re.match(expression, e)[ts["source"]] for e in entries(app_log["text"], firstline)][:50]
    go = go_binary()
    if go is None:
        pytest.skip("no Go toolchain to parse the layout as Promtail does")
    src = tmp_path / "parse.go"
    src.write_text(GO_PARSE)
    proc = subprocess.run([go, "run", str(src)], input="\n".join([ts["format"], ts["location"], *times]) + "\n",
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=dict(os.environ, GOFLAGS="-mod=mod", GO111MODULE="off", GOCACHE=str(tmp_path / "cache")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    zone = ZoneInfo(ts["location"])
    expected = [int(datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=zone).timestamp() * 1000)
                for t in times]
    assert [int(x) for x in proc.stdout.split()] == expected


def test_timestamp_location_is_a_variable(tmp_path):
    render("promtail", tmp_path / "p", promtail_timestamp_location="Asia/Kolkata")
    render("alloy", tmp_path / "a", alloy_timestamp_location="Asia/Kolkata")
    jobs = processes = 0
    for host, cfg in promtail_configs(tmp_path / "p").items():
        for job in cfg["scrape_configs"]:
            assert stage(job["pipeline_stages"], "timestamp")["location"] == "Asia/Kolkata", host
            jobs += 1
    for host, f in hosts_of(tmp_path / "a", "etc/alloy/config.alloy").items():
        blocks = alloy_blocks(alloy_tokens(f.read_text()))
        for (name, _), attrs in blocks.items():
            if name == "loki.process":
                assert attrs["location"] == ("str", "Asia/Kolkata"), host
                processes += 1
    assert jobs and processes, f"nothing checked: {jobs} Promtail jobs, {processes} Alloy loki.process blocks"


def test_alloy_stamps_entries_like_promtail(rendered):
    ts = timestamp_stage(rendered)
    configs = hosts_of(rendered, "etc/alloy/config.alloy")
    assert configs, "no Alloy config rendered"
    for host, f in configs.items():
        text = f.read_text()
        blocks = alloy_blocks(alloy_tokens(text))
        processes = {k: v for k, v in blocks.items() if k[0] == "loki.process"}
        assert processes
        for key, attrs in processes.items():
            body = text[text.index(f'loki.process "{key[1]}"'):]
            body = body[:body.index("forward_to")]
            assert "stage.timestamp {" in body, f"{host} {key}: no stage.timestamp"
            assert body.index("stage.regex") < body.index("stage.timestamp")
            for name in ("source", "format", "location"):
                assert attrs[name] == ("str", ts[name]), f"{host} {key}: {name}"


def test_alloy_reads_new_files_from_their_start(rendered):
    """tail_from_end true skipped the apps' start-up lines on a fresh install; positions are kept in
    Alloy's storage folder, so restarts do not ship lines again either way."""
    configs = hosts_of(rendered, "etc/alloy/config.alloy")
    assert configs, "no Alloy config rendered"
    for host, f in configs.items():
        blocks = alloy_blocks(alloy_tokens(f.read_text()))
        sources = {k: v for k, v in blocks.items() if k[0] == "loki.source.file"}
        assert sources
        for key, attrs in sources.items():
            assert attrs.get("tail_from_end", "false") == "false", f"{host} {key}"
    _, unit = one(rendered, "systemd/alloy.service")
    assert "--storage.path=/var/lib/alloy" in unit.read_text()


def test_alloy_config_is_checked_by_alloy_validate():
    """`alloy fmt` checks syntax only; `alloy validate` (Alloy 1.9 and later; the role pins 1.11.3)
    also checks component names, references and the arguments' names and types, but not what a
    component checks only when it is built, such as whether a regex compiles (the role's preflight
    compiles alloy_multiline_firstline and alloy_line_regex). It runs with the stability level the
    unit uses."""
    tasks = yaml.safe_load((ANSIBLE_DIR / "roles/alloy/tasks/configure.yml").read_text())
    (task,) = [t for t in tasks if str(t.get("ansible.builtin.template", {}).get("dest", "")).endswith("config.alloy")]
    validate = task["ansible.builtin.template"]["validate"]
    # The new release's binary (the one switch_release then runs), also for the live config's check.
    assert validate == "{{ alloy_release_dir }}/alloy validate %s", validate
    configure = yaml.safe_load((ANSIBLE_DIR / "roles/alloy/tasks/configure.yml").read_text())
    (switch,) = [t for t in configure if t.get("ansible.builtin.include_role", {}).get("tasks_from") == "switch_release"]
    assert switch["vars"]["common_release_checks"] == [
        "{{ alloy_release_dir }}/alloy validate {{ alloy_config_dir }}/config.alloy"], switch["vars"]
    version = yaml.safe_load((ANSIBLE_DIR / "roles/alloy/defaults/main.yml").read_text())["alloy_version"]
    assert tuple(int(x) for x in version.split(".")[:2]) >= (1, 9), f"alloy validate needs 1.9+, pinned {version}"
    unit = (ROOT / "systemd/alloy.service.j2").read_text()
    assert "--stability.level" not in unit and "--stability.level" not in validate
