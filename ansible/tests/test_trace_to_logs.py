"""Grafana's traces -> logs link, built from a real trace of the lab, finds that trace's log lines.

The lab runs without Loki and Grafana (logs_enabled: false; they cannot be downloaded here), so
this renders what the grafana and promtail roles would write for the lab inventory and plays
Grafana's part by hand:

1. renders the provisioned datasources file (role grafana) and each app host's Promtail config
   (role promtail, with the timezone its configure step reads from the host's /etc/localtime
   through the common role's host_timezone entry point, run here on the lab hosts);
2. sends GET /chain to app-a with a fresh W3C traceparent and reads the trace back from
   jaeger-query's HTTP API (bounded), as Grafana's Jaeger datasource does;
3. for every span, builds the Loki query of the Jaeger datasource's tracesToLogsV2 settings the
   way Grafana 12 does: a custom query has its ${__span.*} / ${__trace.*} / ${__tags} variables
   filled in from the span (span tags and process tags as jaeger-query returns them), and a
   variable the span does not define means no link at all; without a custom query, the
   configured tags that the span has become the stream selector (none: no link);
4. checks the query would find the trace's lines: its stream selector matches the labels
   Promtail gives that span's app log file, its line filters keep real lines of the trace in
   that file on the lab host (read over ssh) and drop the file's other lines, and those lines lie
   within the link's time range (the span's, shifted) once stamped as Promtail stamps them.

It also shows why the old provisioning (a tag mapping service.name -> service_name) never gave a
link: jaeger-query returns service.name as the process's serviceName, in no tag of the span.

Run on a deployed lab, from the repository root (it does not deploy):
    $LAB_CACHE/venv/bin/pytest ansible/tests/test_trace_to_logs.py
"""
import json
import re
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import yaml

from conftest import CHAIN_APPS, GROUPS, addr, run_test_playbook, send_chain, ssh, wait_for_chain_trace

SERVICES = set(CHAIN_APPS)
TRACE_TIMEOUT = 120         # seconds from the request to a complete trace in jaeger-query
LOG_WAIT = 30               # seconds for the trace's lines to reach every log file
TAIL_MARK = "==== last lines ===="
OLD_TAG_MAPPING = [{"key": "service.name", "value": "service_name"}]   # the provisioning before
# Grafana's default tags when tracesToLogsV2 lists none (createSpanLink.tsx, Grafana 12).
DEFAULT_TAGS = [{"key": k, "value": k.replace(".", "_", 1) if "." in k else None}
                for k in ("cluster", "hostname", "namespace", "pod", "service.name", "service.namespace")]


# ---- the lab inventory and rendered configs ---------------------------------------------------

def render(role, group, templates, out, extra=None):
    """Renders a role's templates for the lab inventory as tests/render/render.yml does for the
    config tests (on the controller, nothing touches the hosts)."""
    variables = {"render_role": role, "render_group": group, "render_out": str(out),
                 "render_templates": templates, "logs_enabled": True, **(extra or {})}
    proc = run_test_playbook("render.yml", variables)
    assert proc.returncode == 0, f"rendering {role} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"


def linked_timezone(ssh_key, host):
    """The zone the host's /etc/localtime links to, read over ssh (UTC when there is none)."""
    res = ssh(addr(host), ssh_key, "if [ -e /etc/localtime ]; then readlink -f /etc/localtime; fi")
    assert res.returncode == 0, res.stderr
    path = res.stdout.strip()
    if not path:
        return "UTC"
    assert "/zoneinfo/" in path, f"{host}: /etc/localtime -> {path} names no zone"
    return re.sub(r"^.*/zoneinfo/", "", path)


def role_timezones(out):
    """{host: zone} of the promtail group as the roles name it: the common role's host_timezone
    entry point, run on the lab hosts (tests/render/host_timezone.yml)."""
    proc = run_test_playbook("host_timezone.yml", {"render_group": "promtail", "render_out": str(out)})
    assert proc.returncode == 0, f"host_timezone failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    return {host: (out / f"{host}.timezone").read_text().strip() for host in GROUPS["promtail"]}


@pytest.fixture(scope="module")
def configs(tmp_path_factory, ssh_key):
    out = tmp_path_factory.mktemp("rendered")
    render("grafana", "grafana", ["etc/grafana/provisioning/datasources/datasources.yaml.j2"], out / "grafana")
    (grafana_host,) = GROUPS["grafana"][:1]
    datasources = yaml.safe_load(
        (out / "grafana" / grafana_host / "etc/grafana/provisioning/datasources/datasources.yaml").read_text())
    promtail = {}
    zones = role_timezones(out)
    for host in GROUPS["promtail"]:
        zone = zones[host]
        assert zone == linked_timezone(ssh_key, host), f"{host}: the role named {zone}"
        render("promtail", host, ["etc/promtail/config.yaml.j2"], out / "promtail" / host,
               {"promtail_timestamp_location": zone})
        promtail[host] = yaml.safe_load((out / "promtail" / host / host / "etc/promtail/config.yaml").read_text())
    return {"datasources": {d["uid"]: d for d in datasources["datasources"]}, "promtail": promtail}


# ---- a real trace ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trace():
    """A /chain trace as jaeger-query returns it (the API Grafana's Jaeger datasource reads)."""
    return wait_for_chain_trace(*send_chain(), TRACE_TIMEOUT)[0]


def grafana_span(trace, span):
    """The span as Grafana's trace view holds it: process with serviceName and tags, span tags."""
    return {"traceID": span["traceID"], "spanID": span["spanID"], "operationName": span["operationName"],
            "startTime": span["startTime"], "duration": span["duration"], "tags": span.get("tags", []),
            "process": trace["processes"][span["processID"]]}


def trace_scope(trace):
    """__trace: Grafana's trace id, duration (µs) and name ("<root service>: <root operation>")."""
    spans = trace["spans"]
    start = min(s["startTime"] for s in spans)
    end = max(s["startTime"] + s["duration"] for s in spans)
    ids = {s["spanID"] for s in spans}
    root = next(s for s in spans if not any(r["spanID"] in ids for r in s.get("references", [])))
    name = f"{trace['processes'][root['processID']]['serviceName']}: {root['operationName']}"
    return {"traceId": trace["traceID"], "duration": end - start, "name": name}


# ---- Grafana's query building (public/app/features/explore/TraceView/createSpanLink.tsx) -------

def js_string(value):
    return "true" if value is True else "false" if value is False else str(value)


def formatted_tags(span, tags):
    """getFormattedTags: `label="value"` for each configured tag the span has, joined by ", "."""
    candidates = [*span["process"].get("tags", []), *span["tags"],
                  {"key": "spanId", "value": span["spanID"]}, {"key": "traceId", "value": span["traceID"]},
                  {"key": "name", "value": span["operationName"]}, {"key": "duration", "value": span["duration"]}]
    out = []
    for tag in candidates:
        wanted = next((t for t in tags if t["key"] == tag["key"]), None)
        if wanted:
            out.append(f'{wanted.get("value") or wanted["key"]}="{js_string(tag["value"])}"')
    return ", ".join(out)


def scoped_vars(span, trace_vars, tags_string):
    span_tags = {}
    for tag in [*span["process"].get("tags", []), *span["tags"]]:
        span_tags[tag["key"]] = tag["value"]
    return {"__span": {"spanId": span["spanID"], "traceId": span["traceID"], "duration": span["duration"],
                       "name": span["operationName"], "tags": span_tags},
            "__trace": trace_vars, "__tags": tags_string}


# Grafana's template variable syntax: $name, [[name]] or [[name:format]], ${name.path:format}.
VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
PATH_PART = re.compile(r'\.?([A-Za-z_$][\w$]*)|\[\s*"([^"]*)"\s*\]|\[\s*\'([^\']*)\'\s*\]|\[\s*(\d+)\s*\]')


def lookup(value, path):
    """lodash property(path) on a scoped variable's value; None when a step is missing."""
    pos = 0
    while pos < len(path):
        m = PATH_PART.match(path, pos)
        if not m or m.end() == pos:
            return None
        key = next(g for g in m.groups() if g is not None)
        if not isinstance(value, dict) or key not in value:
            return None
        value, pos = value[key], m.end()
    return value


def interpolate(query, variables):
    """(query with variables replaced, names of undefined variables)."""
    undefined = []

    def replace(m):
        name = m.group(1) or m.group(2) or m.group(4)
        path = m.group(5)
        if name not in variables:
            undefined.append(m.group(0))
            return m.group(0)
        value = variables[name] if path is None else lookup(variables[name], path)
        if value is None:
            undefined.append(m.group(0))
            return m.group(0)
        return js_string(value)

    return VARIABLE.sub(replace, query), undefined


def provisioned(value):
    """A provisioning file's string as Grafana reads it: `$$` is a literal `$` (a lone `$NAME`
    would be an environment variable: the template must not contain one)."""
    assert "$" not in value.replace("$$", ""), f"unescaped $ in {value!r}"
    return value.replace("$$", "$")


def build_logs_query(t2l, span, trace_vars):
    """The Loki expr Grafana opens for this span, or (None, why) when it shows no logs link."""
    tags = t2l.get("tags") or DEFAULT_TAGS
    tags_string = formatted_tags(span, tags)
    if t2l.get("customQuery"):
        expr = t2l["query"]
    else:
        if not tags_string:
            return None, f"none of the tags {[t['key'] for t in tags]} is on the span"
        expr = "{${__tags}}"
        if t2l.get("filterByTraceID"):
            expr += (' | label_format log_line_contains_trace_id=`{{ contains "${__span.traceId}" __line__  }}`'
                     ' | log_line_contains_trace_id="true" OR trace_id="${__span.traceId}"')
        if t2l.get("filterBySpanID"):
            expr += (' | label_format log_line_contains_span_id=`{{ contains "${__span.spanId}" __line__  }}`'
                     ' | log_line_contains_span_id="true" OR span_id="${__span.spanId}"')
    query, undefined = interpolate(expr, scoped_vars(span, trace_vars, tags_string))
    if undefined:
        return None, f"undefined for this span: {undefined}"
    return query, None


def interval_ms(text):
    m = re.fullmatch(r"(-?\d+)(ms|s|m|h|d)", text or "0s")
    assert m, f"not a Grafana interval: {text!r}"
    return int(m[1]) * {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}[m[2]]


# ---- what Loki would do with the query ---------------------------------------------------------

SELECTOR = re.compile(r"\s*\{([^}]*)\}")
MATCHER = re.compile(r'\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
LINE_FILTER = re.compile(r'\s*(\|=|!=|\|~|!~)\s*(?:"((?:[^"\\]|\\.)*)"|`([^`]*)`)')


def parse_logql(query):
    """(stream matchers, line filters) of a query made of a selector and line filters only."""
    m = SELECTOR.match(query)
    assert m, f"no stream selector in {query!r}"
    matchers, body = [], m[1]
    pos = 0
    while pos < len(body.rstrip()):
        mm = MATCHER.match(body, pos)
        assert mm, f"cannot read the matchers of {query!r}"
        matchers.append((mm[1], mm[2], json.loads(f'"{mm[3]}"')))
        pos = mm.end()
    filters, pos = [], m.end()
    while pos < len(query.rstrip()):
        fm = LINE_FILTER.match(query, pos)
        assert fm, f"only line filters are understood after the selector: {query[pos:]!r}"
        filters.append((fm[1], json.loads(f'"{fm[2]}"') if fm[2] is not None else fm[3]))
        pos = fm.end()
    return matchers, filters


def stream_matches(matchers, labels):
    for name, op, value in matchers:
        have = labels.get(name, "")
        ok = {"=": have == value, "!=": have != value,
              "=~": re.fullmatch(value, have) is not None, "!~": re.fullmatch(value, have) is None}[op]
        if not ok:
            return False
    return True


def line_matches(filters, line):
    for op, value in filters:
        ok = {"|=": value in line, "!=": value not in line,
              "|~": re.search(value, line) is not None, "!~": re.search(value, line) is None}[op]
        if not ok:
            return False
    return True


def promtail_job(configs, service):
    """(host, job) of the Promtail job that tails this app instance's log file."""
    for host, cfg in configs["promtail"].items():
        for job in cfg["scrape_configs"]:
            if job["static_configs"][0]["labels"].get("service_name") == service:
                return host, job
    pytest.fail(f"no Promtail job ships the log file of {service}")


def stage(job, name):
    found = [s[name] for s in job["pipeline_stages"] if name in s]
    assert found, f"no {name} stage"
    return found[0]


def stamped(job, line):
    """The time Promtail gives the entry that starts with this line (regex + timestamp stages)."""
    ts = stage(job, "timestamp")
    m = re.match(stage(job, "regex")["expression"], line)
    assert m, f"the line regex does not match {line!r}"
    assert ts["format"] == "2006-01-02 15:04:05,000", f"layout {ts['format']} not handled here"
    local = datetime.strptime(m[ts["source"]], "%Y-%m-%d %H:%M:%S,%f")
    return local.replace(tzinfo=ZoneInfo(ts["location"]))


def log_lines(ssh_key, host, path, trace_id):
    """(lines of the trace, the file's last lines) of an app's log file on the lab host."""
    deadline = time.monotonic() + LOG_WAIT
    while True:
        res = ssh(addr(host), ssh_key,
                  f"grep -F -- 'trace_id={trace_id}' {path}; echo {TAIL_MARK}; tail -n 300 {path}")
        assert res.returncode == 0 and TAIL_MARK in res.stdout, f"{host}:{path}: {res.stderr}"
        traced, _, tail = res.stdout.partition(TAIL_MARK + "\n")
        if traced.strip() or time.monotonic() > deadline:
            return traced.splitlines(), tail.splitlines()
        time.sleep(1)


# ---- the tests ---------------------------------------------------------------------------------

def test_jaeger_spans_carry_no_service_name_tag(trace):
    """Why the tag mapping service.name -> service_name never produced a link."""
    for span in trace["spans"]:
        s = grafana_span(trace, span)
        keys = {t["key"] for t in s["tags"]} | {t["key"] for t in s["process"].get("tags", [])}
        assert "service.name" not in keys, "jaeger-query now returns service.name as a tag"
        assert s["process"]["serviceName"] in SERVICES
        query, why = build_logs_query({"datasourceUid": "loki", "tags": OLD_TAG_MAPPING,
                                       "filterByTraceID": True}, s, trace_scope(trace))
        assert query is None, f"the old tag mapping would build {query!r}"
        assert "service.name" in why


def test_traces_to_logs_query_finds_the_trace_lines(configs, trace, ssh_key):
    ds = configs["datasources"]
    jaeger = next(d for d in ds.values() if d["type"] == "jaeger")
    t2l = dict(jaeger["jsonData"]["tracesToLogsV2"])
    assert ds[t2l["datasourceUid"]]["type"] == "loki"
    if "query" in t2l:
        t2l["query"] = provisioned(t2l["query"])
    trace_vars = trace_scope(trace)
    start_shift, end_shift = interval_ms(t2l.get("spanStartTimeShift")), interval_ms(t2l.get("spanEndTimeShift"))
    files = {}
    for span in trace["spans"]:
        s = grafana_span(trace, span)
        service = s["process"]["serviceName"]
        name = f"{service} {s['operationName']} ({s['spanID']})"
        query, why = build_logs_query(t2l, s, trace_vars)
        assert query is not None, f"{name}: Grafana builds no logs query ({why})"
        matchers, filters = parse_logql(query)
        host, job = promtail_job(configs, service)
        labels = job["static_configs"][0]["labels"]
        assert stream_matches(matchers, labels), f"{name}: {query} does not select {labels}"
        assert filters, f"{name}: {query} has no line filter: it would show every line of the stream"
        if service not in files:
            files[service] = log_lines(ssh_key, host, labels["__path__"], trace["traceID"])
        traced, tail = files[service]
        found = [line for line in traced if line_matches(filters, line)]
        assert found, f"{name}: {query} keeps none of the {len(traced)} lines of the trace in {labels['__path__']}"
        assert found == traced, f"{name}: {query} drops lines of the trace: {set(traced) - set(found)}"
        others = [line for line in tail if trace["traceID"] not in line and line_matches(filters, line)]
        assert not others, f"{name}: {query} keeps lines of other traces: {others[:3]}"
        # The link's time range: the span's start and end in epoch microseconds, shifted.
        since = datetime.fromtimestamp(s["startTime"] / 1e6, timezone.utc) + timedelta(milliseconds=start_shift)
        until = datetime.fromtimestamp((s["startTime"] + s["duration"]) / 1e6, timezone.utc) + timedelta(
            milliseconds=end_shift)
        for line in found:
            at = stamped(job, line)
            assert since <= at <= until, f"{name}: {line[:60]!r} stamped {at}, outside {since}..{until}"


def test_logs_to_traces_derived_field_matches_the_trace_lines(configs, trace, ssh_key):
    loki = next(d for d in configs["datasources"].values() if d["type"] == "loki")
    (field,) = loki["jsonData"]["derivedFields"]
    for service in SERVICES:
        host, job = promtail_job(configs, service)
        path = job["static_configs"][0]["labels"]["__path__"]
        traced, _ = log_lines(ssh_key, host, path, trace["traceID"])
        assert traced, f"no line of the trace in {service}'s log file"
        for line in traced:
            assert re.search(field["matcherRegex"], line)[1] == trace["traceID"]
        # Lines outside any span (the start-up's at least) carry trace_id=0: no link for them.
        untraced = ssh(addr(host), ssh_key, f"grep -m 20 -F 'trace_id=0 ' {path}").stdout.splitlines()
        assert untraced, f"no line with trace_id=0 in {service}'s log file {path}"
        for line in untraced:
            assert not re.search(field["matcherRegex"], line), f"links trace_id=0: {line[:80]!r}"
