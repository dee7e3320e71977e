"""Cassandra's authentication and authorization in the lab (issue 19, point 2).

CQL is tried from the Cassandra host itself (node2, over ssh: the firewall lets CQL in only from
the cluster's hosts), with the Python driver the cassandra role installs there (python3-cassandra).
The script goes to the host on ssh's standard input, so no password is on a command line. The
passwords are those the deployment generated on the controller (~/.config/helidon-otel-vms/lab/).

Proves: without credentials and with the default cassandra/cassandra CQL is refused; Jaeger's
role reads its keyspace but cannot create roles, drop a keyspace it does not own, alter its
keyspace or read the role table; the admin works and the default superuser is disabled; JMX
listens on the loopback address only and refuses nodetool without its password or with a wrong
one; Jaeger's configs holding the password are 0640 root:<service>; and a /chain trace still
reaches jaeger-query through the authenticated store.
"""
import json
import secrets
import subprocess
from pathlib import Path

import pytest

from conftest import GROUPS, SETTINGS, SSH_OPTIONS, addr, send_chain, ssh, wait_for_chain_trace

SECRETS_DIR = Path.home() / ".config" / "helidon-otel-vms" / "lab"
ADMIN_ROLE = "cassandra_admin"        # cassandra_admin_role
JAEGER_ROLE = "jaeger"                # cassandra_jaeger_role / jaeger_cassandra_username
KEYSPACE = "jaeger_v1_dc1"            # cassandra_jaeger_keyspace
CASSANDRA_HOST = GROUPS["cassandra"][0]
CQL_ADDR = addr(CASSANDRA_HOST)
CQL_PORT = 9042
JMX_PORT = 7199
JMX_USER = "cassandra_jmx"            # cassandra_jmx_username
# The lab's Cassandra reads the config the role rendered here (ansible/lab/cassandra.sh).
LAB_CASSANDRA = Path(__file__).resolve().parents[1] / "lab" / "cassandra.sh"
JMX_PASSWORD_FILE = Path(SETTINGS["state"]) / "cassandra" / "conf" / "jmxremote.password"
TRACE_TIMEOUT = 90

# Runs on the Cassandra host: reads one JSON request from stdin (user, password, statements),
# prints one JSON answer: the login outcome and each statement's outcome (error class + text).
PROBE = r'''
import json, logging, sys
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, NoHostAvailable
logging.getLogger("cassandra").setLevel(logging.CRITICAL)
req = json.loads(sys.stdin.readline())
auth = PlainTextAuthProvider(req["user"], req["password"]) if req["user"] else None
cluster = Cluster([req["host"]], port=req["port"], auth_provider=auth, connect_timeout=10,
                  schema_metadata_enabled=False, token_metadata_enabled=False)
out = {"login": "ok", "results": []}
try:
    session = cluster.connect()
except NoHostAvailable as exc:
    errs = list(exc.errors.values())
    out.update(login="refused", error=type(errs[0]).__name__ + ": " + str(errs[0]) if errs else str(exc))
    print(json.dumps(out)); sys.exit(0)
for stmt in req["statements"]:
    try:
        rows = [list(r) for r in session.execute(stmt, timeout=30)]
        out["results"].append({"ok": True, "rows": [[str(c) for c in r] for r in rows]})
    except Exception as exc:
        out["results"].append({"ok": False, "error": type(exc).__name__ + ": " + str(exc)})
cluster.shutdown()
print(json.dumps(out))
'''


def password(name):
    path = SECRETS_DIR / name
    assert path.is_file(), f"{path} missing: deploy the lab first (the cassandra role generates it)"
    assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others: {oct(path.stat().st_mode)}"
    return path.read_text().strip()


def cql(user, pw, *statements):
    """Logs in on the Cassandra host as user (None: no credentials), runs the statements."""
    request = json.dumps({"host": CQL_ADDR, "port": CQL_PORT, "user": user, "password": pw,
                          "statements": list(statements)})
    proc = subprocess.run(
        ["ssh", "-i", SETTINGS["ssh_key"], *SSH_OPTIONS, f"root@{CQL_ADDR}",
         "f=$(mktemp) && cat >\"$f\" <<'PROBE_EOF'\n" + PROBE + "\nPROBE_EOF\n"
         "python3 \"$f\"; rc=$?; rm -f \"$f\"; exit $rc"],
        input=request + "\n", capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, f"CQL probe failed on {CASSANDRA_HOST}: {proc.stdout}{proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def refused_for_permission(result):
    return not result["ok"] and "Unauthorized" in result["error"] and "code=2100" in result["error"]


@pytest.fixture(scope="module")
def admin_pw():
    return password("cassandra-admin-password")


@pytest.fixture(scope="module")
def jaeger_pw():
    return password("cassandra-jaeger-password")


def test_cql_without_credentials_is_refused():
    out = cql(None, None, "SELECT release_version FROM system.local")
    print(f"no credentials: {out.get('error')}")
    assert out["login"] == "refused", f"CQL without credentials was let in: {out}"
    assert "requires authentication" in out["error"].lower(), out["error"]


def test_default_superuser_is_refused():
    out = cql("cassandra", "cassandra", "SELECT release_version FROM system.local")
    print(f"cassandra/cassandra: {out.get('error')}")
    assert out["login"] == "refused", f"the default cassandra/cassandra still logs in: {out}"
    assert "AuthenticationFailed" in out["error"], out["error"]


def test_wrong_jaeger_password_is_refused(jaeger_pw):
    out = cql(JAEGER_ROLE, jaeger_pw + "x", "SELECT release_version FROM system.local")
    assert out["login"] == "refused", f"a wrong password was accepted: {out}"


def test_admin_replaces_the_default_superuser(admin_pw):
    out = cql(ADMIN_ROLE, admin_pw,
              "SELECT role, can_login, is_superuser FROM system_auth.roles")
    assert out["login"] == "ok", f"the admin role cannot log in: {out}"
    roles = {r[0]: (r[1], r[2]) for r in out["results"][0]["rows"]}
    print(f"roles (can_login, is_superuser): {roles}")
    assert roles.get(ADMIN_ROLE) == ("True", "True"), roles
    assert roles.get("cassandra") == ("False", "False"), f"default superuser not disabled: {roles}"
    assert roles.get(JAEGER_ROLE) == ("True", "False"), roles
    assert [r for r, (_, su) in roles.items() if su == "True"] == [ADMIN_ROLE], roles


def test_jaeger_is_granted_only_its_keyspace_and_reads_it(admin_pw, jaeger_pw):
    """Jaeger's role holds SELECT and MODIFY on its keyspace and nothing outside it, and reads
    it. Its writes are not tried here: every trace the other tests find was written by
    jaeger-collector through this role."""
    # Recursive (the default): grants it holds through roles granted to it count too.
    out = cql(ADMIN_ROLE, admin_pw, f"LIST ALL PERMISSIONS OF {JAEGER_ROLE}")
    grants = sorted((r[2], r[3]) for r in out["results"][0]["rows"])
    owned = [res for res, _ in grants if res.startswith("<table ")]
    print(f"grants of {JAEGER_ROLE}: {[g for g in grants if not g[0].startswith('<table ')]}, plus "
          f"{len(owned)} owner grants on the {len(set(owned))} tables jaeger-collector created")
    on_keyspace = {p for res, p in grants if res == f"<keyspace {KEYSPACE}>"}
    assert {"SELECT", "MODIFY"} <= on_keyspace <= {"SELECT", "MODIFY", "CREATE"}, grants
    assert {p for res, p in grants if res == "<all keyspaces>"} <= {"CREATE"}, grants
    assert all(res.startswith(("<all keyspaces>", f"<keyspace {KEYSPACE}>", f"<table {KEYSPACE}."))
               for res, _ in grants), f"{JAEGER_ROLE} holds grants outside its keyspace: {grants}"

    out = cql(JAEGER_ROLE, jaeger_pw,
              f"SELECT service_name FROM {KEYSPACE}.service_names LIMIT 5",
              f"SELECT trace_id FROM {KEYSPACE}.traces LIMIT 1")
    assert out["login"] == "ok", f"Jaeger's role cannot log in: {out}"
    assert all(r["ok"] for r in out["results"]), out["results"]
    print(f"{JAEGER_ROLE} reads {KEYSPACE}.service_names: {out['results'][0]['rows']}")


def test_jaeger_cannot_do_admin_things(admin_pw, jaeger_pw):
    probe_ks = f"auth_probe_{secrets.token_hex(4)}"
    made = cql(ADMIN_ROLE, admin_pw,
               f"CREATE KEYSPACE {probe_ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}",
               f"CREATE TABLE {probe_ks}.probe (k int PRIMARY KEY)")
    assert made["login"] == "ok" and made["results"] and all(r["ok"] for r in made["results"]), made
    try:
        statements = [
            # another keyspace's data: neither written nor read
            f"INSERT INTO {probe_ks}.probe (k) VALUES (1)",
            f"SELECT k FROM {probe_ks}.probe",
            "CREATE ROLE auth_probe_role WITH PASSWORD = 'probe-password-1234' AND LOGIN = true",
            f"DROP KEYSPACE {probe_ks}",
            f"ALTER KEYSPACE {KEYSPACE} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}",
            "SELECT role, salted_hash FROM system_auth.roles",
            f"GRANT SELECT ON KEYSPACE {KEYSPACE} TO cassandra",
        ]
        out = cql(JAEGER_ROLE, jaeger_pw, *statements)
        assert out["login"] == "ok", out
        for stmt, res in zip(statements, out["results"]):
            print(f"{JAEGER_ROLE}: {stmt.split(' WITH')[0]} -> {res.get('error', 'ALLOWED')[:160]}")
        refused = [refused_for_permission(r) for r in out["results"]]
        assert all(refused), f"{JAEGER_ROLE} was allowed an admin statement: {list(zip(statements, out['results']))}"
    finally:
        cql(ADMIN_ROLE, admin_pw, f"DROP KEYSPACE IF EXISTS {probe_ks}", "DROP ROLE IF EXISTS auth_probe_role")


def test_jmx_listens_on_loopback_only():
    # /proc/net/tcp of node2's network namespace, where Cassandra runs (lab and unit alike).
    proc = ssh(CQL_ADDR, SETTINGS["ssh_key"], "cat /proc/net/tcp /proc/net/tcp6")
    assert proc.returncode == 0, proc.stderr
    port = f"{JMX_PORT:04X}"
    listeners = [line.split()[1] for line in proc.stdout.splitlines()[1:]
                 if len(line.split()) > 3 and line.split()[1].endswith(":" + port) and line.split()[3] == "0A"]
    print(f"JMX listeners (hex address:port): {listeners}")
    assert listeners, f"nothing listens on {JMX_PORT}: is Cassandra running with JMX?"
    loopback = {"0100007F:" + port, "00000000000000000000000001000000:" + port}
    assert set(listeners) <= loopback, f"JMX listens beyond loopback: {listeners}"


def nodetool(*args):
    """Cassandra's nodetool against JMX on 127.0.0.1:7199 of the Cassandra host's namespace."""
    proc = subprocess.run([str(LAB_CASSANDRA), "nodetool", *args], capture_output=True, text=True, timeout=180)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def test_jmx_asks_for_its_password():
    mode = JMX_PASSWORD_FILE.stat().st_mode & 0o777
    assert mode == 0o640, f"{JMX_PASSWORD_FILE} has mode {oct(mode)}, not 0640"
    # The form both Cassandra's JMX server and nodetool's --password-file read: "user password".
    assert JMX_PASSWORD_FILE.read_text() == f"{JMX_USER} {password('cassandra-jmx-password')}\n", \
        f"{JMX_PASSWORD_FILE} does not hold {JMX_USER} and the controller's generated password"
    refusals = {
        "without credentials": ((), "Credentials required"),
        "with a wrong password": (("-u", JMX_USER, "-pw", "wrong-" + secrets.token_hex(8)), "Invalid username or password"),
    }
    for what, (credentials, expected) in refusals.items():
        rc, out = nodetool(*credentials, "version")
        print(f"nodetool {what}: exit {rc}: {out.splitlines()[0] if out else ''}")
        assert rc != 0 and expected in out, f"JMX answered nodetool {what} (exit {rc}): {out[-1000:]}"
    rc, out = nodetool("-u", JMX_USER, "--password-file", str(JMX_PASSWORD_FILE), "version")
    print(f"nodetool with the password file: exit {rc}: {out.splitlines()[-1] if out else ''}")
    assert rc == 0 and "ReleaseVersion:" in out, f"nodetool with the password file failed (exit {rc}): {out[-1000:]}"


@pytest.mark.parametrize("group,path,service", [
    ("jaeger_collector", "/etc/jaeger/collector.yaml", "jaeger-collector"),
    ("jaeger_query", "/etc/jaeger/query.yaml", "jaeger-query"),
])
def test_jaeger_configs_holding_the_password_are_private(group, path, service, jaeger_pw):
    host = addr(GROUPS[group][0])
    # The password goes on stdin of the grep above, not on its command line.
    proc = subprocess.run(["ssh", "-i", SETTINGS["ssh_key"], *SSH_OPTIONS, f"root@{host}",
                           f"stat -c '%a %U %G' {path}; grep -c -F -f /dev/stdin {path}"],
                          input=jaeger_pw + "\n", capture_output=True, text=True, timeout=30)
    mode_owner, count = proc.stdout.split("\n")[:2]
    assert mode_owner == f"640 root {service}", f"{path}: {mode_owner}"
    assert count == "1", f"{path} does not hold Jaeger's Cassandra password once ({count})"


def test_chain_trace_reaches_jaeger_query():
    trace_id, sent = send_chain()
    trace, seconds = wait_for_chain_trace(trace_id, sent, TRACE_TIMEOUT)
    print(f"/chain trace {trace_id}: {len(trace['spans'])} spans in jaeger-query after "
          f"{seconds:.1f}s (stored and read with Jaeger's Cassandra role)")
