"""The tracing pipeline end to end, in every MODE, on the deployed lab.

First the inventory's own topology (each app instance its own MODE, app_instance_modes): one
/chain trace whose spans reached Jaeger by three paths, shown by the receivers' span counters.
Then for each of the four modes in turn: deploy with `-e tracing_mode=<mode>` (ansible/lab/deploy.sh;
the whole site.yml for the first mode, only the apps' configuration for the others), send
GET /chain to app-a with a fresh W3C traceparent, poll jaeger-query's HTTP API until the trace
is there (bounded), and check it: spans of all three services, the CLIENT -> SERVER parent links
of the chain, at least the 7 spans of the original demo's chain, and the same trace id in the
log files of every app host; and that switching MODE restarted none of otel-collector,
jaeger-collector and jaeger-query (only the apps follow MODE). Then, with the apps sending to
the OpenTelemetry Collector: stop jaeger-collector, send a bounded burst of /chain, start
jaeger-collector again and check that every trace of the burst arrives (the Collector's
sending queue and retries; the queue's persistence across a Collector restart is not tested).

Slow (one deployment per mode). Run after ansible/lab/up.sh and a first deployment:
    $LAB_CACHE/venv/bin/pytest ansible/tests/test_pipeline.py
Settings (environment): PIPELINE_MODES (comma-separated, default all four; the first one gets the
whole deployment), PIPELINE_BURST (default 20), PIPELINE_DEPLOY_ARGS (extra ansible-playbook
arguments for every deploy).
"""
import itertools
import json
import os
import shlex
import subprocess
import time
import urllib.parse

import pytest

from conftest import (ANSIBLE_DIR, APP_RELOAD_HANDLER, APP_RESTART_HANDLER, CHAIN_APPS, CHAIN_MIN_SPANS, GROUPS,
                      INVENTORY_HOSTS, QUERY_PORT, addr, app_url, deploy_lab, env_file, fetch_chain_trace, http_get,
                      http_get_many_on, query_url, run_in_group, send_chain, send_traced, ssh, task_results, wait_for,
                      wait_for_chain_trace)

# The services' own telemetry (roles' defaults otel_collector_metrics_port, jaeger_collector_metrics_port).
OTEL_COLLECTOR_METRICS_PORT = 8888
JAEGER_COLLECTOR_METRICS_PORT = 14269
SERVICES = set(CHAIN_APPS)
VISIBLE_TIMEOUT = 120        # seconds from request to a complete trace in jaeger-query
LOG_WAIT = 30                # seconds for the trace id to reach every log file
BURST = int(os.environ.get("PIPELINE_BURST", "20"))
BURST_TIMEOUT = 240          # seconds for the whole burst to arrive after jaeger-collector is back
DEPLOY_TIMEOUT = 1800
# The part of the deployment that reads MODE: the app role's configuration (its environment files
# and the restarts they notify), as a user re-runs it after switching MODE.
APPS_ONLY = ("--tags", "app_configure")
MODES = [m for m in os.environ.get(
    "PIPELINE_MODES", "jaeger-grpc,jaeger-http,otel-collector-http,otel-collector-grpc").split(",") if m]
REPO = ANSIBLE_DIR.parent
STATS = {"traces": 0, "spans": 0, "visible_s": []}
# Pipeline units and the group whose hosts run them: a MODE change must not restart them.
PIPELINE_UNITS = {"otel-collector": "otel_collector", "jaeger-collector": "jaeger_collector",
                  "jaeger-query": "jaeger_query"}


def first(group):
    assert GROUPS.get(group), f"the lab inventory has no host in group {group}"
    return GROUPS[group][0]


def deploy(mode=None, whole=False):
    """Runs the lab deployment with that MODE for every instance (None: the inventory's own
    per-instance modes); fails the test when the playbook fails. Returns the seconds it took and
    the playbook's output. Only the app role reads MODE, so unless `whole` is set the run is
    limited to APPS_ONLY, which spares the lab the rest of site.yml's tasks."""
    start = time.monotonic()
    args = [*([] if whole else APPS_ONLY), *shlex.split(os.environ.get("PIPELINE_DEPLOY_ARGS", ""))]
    proc = deploy_lab(*(["-e", f"tracing_mode={mode}"] if mode else []), *args, timeout=DEPLOY_TIMEOUT)
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    assert proc.returncode == 0, f"deploy with tracing_mode={mode} {shlex.join(args)} failed:\n{tail}"
    return time.monotonic() - start, proc.stdout


def pipeline_invocations(ssh_key):
    """{(host, unit): systemd InvocationID} of the pipeline's units (changes on every restart)."""
    found = {}
    for unit, group in PIPELINE_UNITS.items():
        for host in GROUPS.get(group, []):
            res = ssh(addr(host), ssh_key, f"systemctl show --property=InvocationID --value {unit}.service")
            assert res.returncode == 0 and res.stdout.strip(), f"{unit} on {host}: {res.stdout}{res.stderr}"
            found[(host, unit)] = res.stdout.strip()
    return found


def span_kind(span):
    return next((t["value"] for t in span.get("tags", []) if t["key"] == "span.kind"), None)


def check_trace(trace, trace_id):
    """Three services, >= 7 spans, and every SERVER span below the root has a CLIENT parent."""
    spans = {s["spanID"]: s for s in trace["spans"]}
    service = {sid: trace["processes"][s["processID"]]["serviceName"] for sid, s in spans.items()}
    assert all(s["traceID"] == trace_id for s in spans.values())
    assert SERVICES <= set(service.values()), f"services in the trace: {sorted(set(service.values()))}"
    assert len(spans) >= CHAIN_MIN_SPANS, f"{len(spans)} spans, expected at least {CHAIN_MIN_SPANS}"

    def parent(span):
        refs = [r for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
        return spans.get(refs[0]["spanID"]) if refs else None

    links = set()  # (client service, server service)
    for sid, span in spans.items():
        if span_kind(span) != "server":
            continue
        up = parent(span)
        if up is None:  # the root: its parent is the caller's span of our traceparent
            continue
        assert span_kind(up) == "client", (
            f"SERVER span {span['operationName']} of {service[sid]} has a {span_kind(up)} parent")
        links.add((service[up["spanID"]], service[sid]))
    for callee in ("app-b", "app-c"):
        assert ("app-a", callee) in links, f"no CLIENT(app-a) -> SERVER({callee}) link; links: {sorted(links)}"
    roots = [s for s in spans.values() if parent(s) is None]
    assert len(roots) == 1 and service[roots[0]["spanID"]] == "app-a" and span_kind(roots[0]) == "server", \
        f"expected one root, app-a's SERVER span; got {[(service[r['spanID']], span_kind(r)) for r in roots]}"
    return len(spans)


def read_metrics(urls):
    """{url: body} of Prometheus text-format pages, read in the order given, each on its own host
    (its metrics port is open to the cluster's hosts only): consecutive URLs of one host in one
    SSH session, so a snapshot costs one session per change of host."""
    bodies = {}
    for host, run in itertools.groupby(dict.fromkeys(urls), key=lambda u: urllib.parse.urlsplit(u).hostname):
        run = list(run)
        for url, (status, body) in zip(run, http_get_many_on(host, run, timeout=10)):
            assert status == 200, f"{url}: HTTP {status}"
            bodies[url] = body
    return bodies


def metric_sum(body, name, **labels):
    """Sum of the samples of a Prometheus text-format counter whose labels include `labels`.
    The counter may carry the `_total` suffix or not: the Collector's own telemetry leaves it
    off, Jaeger's adds it."""
    total = 0.0
    for line in body.splitlines():
        metric, brace, rest = line.partition("{")
        if not brace or metric not in (name, name + "_total"):
            continue
        sample_labels, value = rest.rsplit("} ", 1)
        if all(f'{k}="{v}"' in sample_labels for k, v in labels.items()):
            total += float(value)
    return total


def path_counters(jaeger_first=False):
    """Spans the pipeline's receivers accepted and the Collector forwarded to Jaeger, so far: the
    Collector's OTLP gRPC and HTTP receivers, its exporter to Jaeger, and jaeger-collector's OTLP
    gRPC and HTTP receivers (each service's own telemetry on its metrics port, each page read
    once). Read Collector first before a request and Jaeger first after it, the forwarded count
    brackets what Jaeger received from the Collector in between (see test_mixed_modes_one_trace)."""
    collector = f"http://{addr(first('otel_collector'))}:{OTEL_COLLECTOR_METRICS_PORT}/metrics"
    jaeger = f"http://{addr(first('jaeger_collector'))}:{JAEGER_COLLECTOR_METRICS_PORT}/metrics"
    pages = read_metrics([jaeger, collector] if jaeger_first else [collector, jaeger])
    accepted = "otelcol_receiver_accepted_spans"
    return {"collector_grpc": metric_sum(pages[collector], accepted, receiver="otlp", transport="grpc"),
            "collector_http": metric_sum(pages[collector], accepted, receiver="otlp", transport="http"),
            "forwarded": metric_sum(pages[collector], "otelcol_exporter_sent_spans", exporter="otlp_grpc/jaeger"),
            "jaeger_grpc": metric_sum(pages[jaeger], accepted, receiver="otlp", transport="grpc"),
            "jaeger_http": metric_sum(pages[jaeger], accepted, receiver="otlp", transport="http")}


def check_logs(hosts, trace_id):
    """The trace id reaches the log file of every instance of the chain (app-d is not in it)."""
    for name, v in sorted(INVENTORY_HOSTS.items()):
        for app in sorted(SERVICES & set(v["apps"])):
            log_file = env_file(hosts[name], app)["LOG_FILE"]
            deadline = time.monotonic() + LOG_WAIT
            while hosts[name].run(f"grep -q -F 'trace_id={trace_id}' {log_file}").rc != 0:
                assert time.monotonic() < deadline, f"trace_id={trace_id} not in {log_file} on {name}"
                time.sleep(1)


@pytest.fixture(scope="module", autouse=True)
def lab_cassandra():
    """The lab's Cassandra must run (no-op when it already does)."""
    proc = run_in_group([str(REPO / "ansible" / "lab" / "cassandra.sh"), "start"], cwd=REPO, timeout=900)
    assert proc.returncode == 0, f"ansible/lab/cassandra.sh start failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"


def inventory_modes():
    """{instance: MODE} as the inventory's app_instance_modes gives them."""
    return {app: mode for v in INVENTORY_HOSTS.values() for app, mode in v["modes"].items()}


def deployed_modes(hosts):
    """{instance: MODE} of every instance's deployed environment file."""
    return {app: env_file(hosts[name], app)["MODE"] for name, v in INVENTORY_HOSTS.items() for app in v["apps"]}


def deploy_inventory_modes(hosts):
    """Deploys without a tracing_mode override unless the lab already runs the inventory's modes."""
    wanted, deployed = inventory_modes(), deployed_modes(hosts)
    if deployed != {app: wanted.get(app) for app in deployed}:
        deploy()


@pytest.fixture(scope="module", autouse=True)
def lab_left_as_the_inventory_says(hosts):
    """The mode tests deploy with tracing_mode overrides; afterwards the lab runs the inventory's
    own modes again, so later tests (and their deploys) start from what the inventory says."""
    yield
    deploy_inventory_modes(hosts)


@pytest.fixture(scope="module")
def report():
    """Totals over the module's tests (printed by the last test)."""
    return STATS


def count_trace(report, spans, seconds):
    """Adds one checked trace to the module's totals."""
    report["traces"] += 1
    report["spans"] += spans
    report["visible_s"].append(seconds)


def totals_line():
    times = STATS["visible_s"]
    seen = (f"; request -> visible in jaeger-query: min {min(times):.1f} s, max {max(times):.1f} s"
            if times else "")
    return f"pipeline totals: {STATS['traces']} traces, {STATS['spans']} spans checked{seen}"


def collector_accepted_spans():
    """Spans the Collector's OTLP receivers (gRPC and HTTP) have accepted so far."""
    url = f"http://{addr(first('otel_collector'))}:{OTEL_COLLECTOR_METRICS_PORT}/metrics"
    body = read_metrics([url])[url]
    return sum(metric_sum(body, "otelcol_receiver_accepted_spans", receiver="otlp", transport=transport)
               for transport in ("grpc", "http"))


def spans_by_path(delta, mode):
    """Spans the receiver of `mode` took in `delta` (path_counters after minus before): the
    Collector's OTLP receivers for its modes; jaeger-collector's for the jaeger modes, where its
    gRPC receiver's count, which includes what the Collector forwarded, is taken net of that."""
    return {"otel-collector-grpc": delta["collector_grpc"],
            "otel-collector-http": delta["collector_http"],
            "jaeger-grpc": delta["jaeger_grpc"] - delta["forwarded"],
            "jaeger-http": delta["jaeger_http"]}[mode]


def test_mixed_modes_one_trace(hosts, ssh_key, report, capsys):
    """The inventory's own topology, as the original's base compose file: each app instance has
    its own MODE, so one /chain trace is assembled from spans that reached Jaeger by different
    paths. Runs first; deploys the inventory's modes (no tracing_mode override) unless the lab
    already runs them.

    Proof of the paths: the receivers' own counters. Between two readings, the Collector's gRPC
    receiver must have taken at least app-a's spans of the trace, its HTTP receiver at least
    app-b's, and jaeger-collector's gRPC receiver at least app-c's spans more than the Collector
    forwarded (the counters are read Collector first, then Jaeger, before; and Jaeger first,
    then Collector, after: so the forwarded count can only overstate what Jaeger got from the
    Collector in between, never hide a direct span)."""
    deploy_inventory_modes(hosts)
    modes, expected = deployed_modes(hosts), inventory_modes()
    assert modes == {app: expected.get(app) for app in modes}, \
        f"deployed MODEs {modes} differ from the inventory's app_instance_modes {expected}"
    paths = {modes[app] for app in SERVICES}
    assert len(paths) == 3, f"the inventory gives app-a, app-b, app-c {len(paths)} distinct modes: {modes}"
    assert (modes["app-a"], modes["app-b"], modes["app-c"]) == \
        ("otel-collector-grpc", "otel-collector-http", "jaeger-grpc"), modes

    before = path_counters()
    trace_id, sent = send_chain()
    trace, seconds = wait_for_chain_trace(trace_id, sent, VISIBLE_TIMEOUT)
    span_count = check_trace(trace, trace_id)
    by_service = {}
    for span in trace["spans"]:
        service = trace["processes"][span["processID"]]["serviceName"]
        by_service[service] = by_service.get(service, 0) + 1
    after = path_counters(jaeger_first=True)
    delta = {k: after[k] - before[k] for k in before}
    for app in sorted(SERVICES):  # three distinct modes (asserted above): one receiver each
        taken = spans_by_path(delta, modes[app])
        assert taken >= by_service[app], (
            f"{modes[app]}'s receiver took {taken:.0f} spans, {app} sent {by_service[app]} "
            f"(counters: {delta})")
    direct = spans_by_path(delta, "jaeger-grpc")
    check_logs(hosts, trace_id)
    count_trace(report, span_count, seconds)
    with capsys.disabled():
        print(f"\n[mixed modes] trace {trace_id}: {span_count} spans ({by_service}), visible after "
              f"{seconds:.1f} s; spans taken: Collector gRPC +{delta['collector_grpc']:.0f}, "
              f"Collector HTTP +{delta['collector_http']:.0f}, forwarded +{delta['forwarded']:.0f}, "
              f"jaeger-collector gRPC +{delta['jaeger_grpc']:.0f} (direct {direct:.0f}), "
              f"HTTP +{delta['jaeger_http']:.0f}")


def test_trace_script_prints_the_jaeger_url_of_its_trace():
    """scripts/trace.sh, the user's one-request check: its /chain becomes a trace in jaeger-query,
    and the URL it prints is that trace's page in the UI."""
    jaeger = f"http://{addr(first('jaeger_query'))}:{QUERY_PORT}"
    proc = subprocess.run([str(REPO / "scripts" / "trace.sh"), "-n", "-w", str(VISIBLE_TIMEOUT),
                           app_url("app-a"), jaeger],
                          capture_output=True, text=True, timeout=VISIBLE_TIMEOUT + 90)
    assert proc.returncode == 0, f"trace.sh failed:\n{proc.stdout}{proc.stderr}"
    lines = proc.stdout.strip().splitlines()
    trace_id = lines[-1].removeprefix(f"{jaeger}/trace/")
    assert len(trace_id) == 32 and lines[-1] == f"{jaeger}/trace/{trace_id}", lines[-1]
    assert lines[-2].startswith(f"trace {trace_id}: ") and "app-a, app-b, app-c" in lines[-2], lines[-2]
    status, _ = http_get(lines[-1], timeout=10)  # the UI serves its page for the trace's path
    assert status == 200, f"{lines[-1]}: HTTP {status}"
    check_trace(wait_for_chain_trace(trace_id, time.monotonic(), VISIBLE_TIMEOUT)[0], trace_id)


def server_span(trace_id, sent):
    """app-a's SERVER span of a one-request trace, as jaeger-query returns it (bounded wait)."""
    deadline = sent + VISIBLE_TIMEOUT
    while True:
        status, body = http_get(query_url(trace_id), timeout=10)
        data = json.loads(body).get("data") if status == 200 else None
        spans = [s for s in (data[0]["spans"] if data else []) if span_kind(s) == "server"]
        if spans:
            return spans[0]
        assert time.monotonic() < deadline, f"trace {trace_id} not in jaeger-query after {VISIBLE_TIMEOUT}s"
        time.sleep(1)


def test_server_span_status_follows_http_conventions(capsys):
    """OpenTelemetry's HTTP semantic conventions: a 4xx answer is the client's error, so the
    SERVER span's status stays unset (Jaeger shows no error tag and counts no error in SPM); a
    5xx is the server's, status ERROR. /items/<not a number> answers 422, /error_test 500."""
    checked = {}
    for path, expected_status, expect_error in (("/items/not-a-number", 422, False), ("/error_test", 500, True)):
        trace_id, status, _, sent = send_traced(path)
        assert status == expected_status, f"GET {path}: HTTP {status}, expected {expected_status}"
        span = server_span(trace_id, sent)
        tags = {t["key"]: t["value"] for t in span.get("tags", [])}
        is_error = tags.get("error") is True or tags.get("otel.status_code") == "ERROR"
        assert is_error == expect_error, (
            f"SERVER span {span['operationName']} of a {status} answer: error={tags.get('error')}, "
            f"otel.status_code={tags.get('otel.status_code')}, expected {'ERROR' if expect_error else 'unset'}")
        checked[path] = (status, tags.get("otel.status_code", "unset"), trace_id)
    with capsys.disabled():
        print(f"\n[span status] {checked}")


@pytest.mark.parametrize("mode", MODES)
def test_mode_end_to_end(mode, hosts, ssh_key, report, capsys):
    """Every instance on one MODE: the /chain trace is complete and in every log file, and its
    spans came in through that mode's receiver (its span counter grew by at least the trace's
    spans; read as in test_mixed_modes_one_trace), so an endpoint variable pointing at another
    receiver fails here. The first mode is deployed by the whole site.yml, as a user switches it;
    the others by the apps' configuration alone, which is all that reads MODE."""
    # Only the apps follow MODE: switching it (from whatever the lab ran) must leave the
    # collectors and jaeger-query running as they were (same systemd invocation).
    before = pipeline_invocations(ssh_key)
    modes_before = deployed_modes(hosts)
    whole = mode == MODES[0]
    took, output = deploy(mode, whole=whole)
    restarted = sorted(f"{u} on {h}" for (h, u), i in pipeline_invocations(ssh_key).items()
                       if before.get((h, u)) != i)
    assert not restarted, f"switching to MODE={mode} restarted {restarted}"
    # A MODE change writes environment files only: the instances restart, systemd is not
    # reloaded (only a changed unit needs that).
    handlers = [name for kind, name, _ in task_results(output) if kind == "RUNNING HANDLER"]
    if set(modes_before.values()) != {mode}:  # some instance's environment file changed
        assert APP_RESTART_HANDLER in handlers, f"switching to MODE={mode} restarted no instance: {handlers}"
    assert APP_RELOAD_HANDLER not in handlers, f"switching to MODE={mode} reloaded systemd: {handlers}"
    for name, v in INVENTORY_HOSTS.items():
        for app in v["apps"]:
            assert env_file(hosts[name], app)["MODE"] == mode, f"{app} on {name} did not get MODE={mode}"
    before = path_counters()
    trace_id, sent = send_chain()
    trace, seconds = wait_for_chain_trace(trace_id, sent, VISIBLE_TIMEOUT)
    spans = check_trace(trace, trace_id)
    after = path_counters(jaeger_first=True)
    taken = spans_by_path({k: after[k] - before[k] for k in before}, mode)
    assert taken >= spans, f"MODE={mode}: its receiver took {taken:.0f} spans, the trace has {spans}"
    check_logs(hosts, trace_id)
    count_trace(report, spans, seconds)
    with capsys.disabled():
        how = "whole site.yml" if whole else shlex.join(APPS_ONLY)
        print(f"\n[{mode}] deploy ({how}) {took:.0f} s; trace {trace_id}: {spans} spans of "
              f"{len(SERVICES)} services, visible after {seconds:.1f} s, in every log file; "
              f"{taken:.0f} spans through {mode}'s receiver")


def test_burst_survives_jaeger_collector_outage(hosts, ssh_key, report, capsys):
    """Spans sent while jaeger-collector is down reach Cassandra once it is back."""
    modes = {env_file(hosts[n], a)["MODE"] for n, v in INVENTORY_HOSTS.items() for a in v["apps"]}
    if not modes <= {"otel-collector-grpc", "otel-collector-http"}:
        deploy("otel-collector-grpc")
    collector = addr(first("jaeger_collector"))

    def systemctl(action):
        res = ssh(collector, ssh_key, f"systemctl {action} jaeger-collector.service", timeout=120)
        assert res.returncode == 0, f"systemctl {action} jaeger-collector: {res.stdout}{res.stderr}"

    systemctl("stop")
    try:
        accepted = collector_accepted_spans()
        sent = [send_chain() for _ in range(BURST)]
        # The outage is what is tested only when the Collector holds the burst while Jaeger is
        # down: wait (bounded) until its receivers took every span the apps' batch exporters send.
        wait_for("the Collector to accept the burst's spans",
                 lambda: collector_accepted_spans() - accepted >= BURST * CHAIN_MIN_SPANS, 60)
        # jaeger-query answers (it runs apart from jaeger-collector) and has none of them: a 404
        # each, not an error or a partial trace, which fetch_chain_trace would also call None.
        answers = {tid: http_get(query_url(tid), timeout=10)[0] for tid, _ in sent}
        assert set(answers.values()) == {404}, f"jaeger-query while jaeger-collector was stopped: {answers}"
    finally:
        restarted = time.monotonic()
        systemctl("start")
    pending = {tid: t0 for tid, t0 in sent}
    deadline = restarted + BURST_TIMEOUT
    spans = 0
    while pending and time.monotonic() < deadline:
        for tid in list(pending):
            trace = fetch_chain_trace(tid)
            if trace is not None:
                spans += check_trace(trace, tid)
                del pending[tid]
        time.sleep(2)
    arrived = BURST - len(pending)
    report["traces"] += arrived
    report["spans"] += spans
    with capsys.disabled():
        print(f"\n[burst] {arrived}/{BURST} traces ({spans} spans) sent while jaeger-collector was down "
              f"arrived {time.monotonic() - restarted:.1f} s after it started again")
        print(totals_line())
    assert not pending, f"{len(pending)} of {BURST} traces never arrived: {sorted(pending)[:5]}"
