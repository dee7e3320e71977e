"""Prometheus's basic auth and the secrets behind it, checked on the controller (no lab):

- the rendered web config lists one user with a bcrypt hash of the password the role generated
  on the controller (the hash verifies it and no other), and `promtool check web-config` accepts
  it when a promtool is at hand;
- hashing is idempotent: the same password and salt file give the same hash on the next run; a
  new salt gives a new hash (the salt file is what keeps it stable);
- the generated password and salt files are 0600, letters and digits;
- Prometheus's scrape of itself, its unit, and jaeger-query's metric backend use the credentials
  (jaeger-query's URL names the password file, never the password);
- every task of every role that writes a generated secret is no_log and diff: false.

The lab side (401 without credentials, Monitor tab through jaeger-query, no secret in --diff)
is tests/test_web_auth.py. Runs with the venv's pytest: $LAB_CACHE/venv/bin/pytest
ansible/tests/test_web_auth_config.py
"""
import glob
import os
import re
import stat
import subprocess
import urllib.parse
from pathlib import Path

import bcrypt
import pytest
import yaml

from conftest import ANSIBLE_DIR
from test_logs_config import INVENTORY, load_yaml, one, render

ROOT = ANSIBLE_DIR.parent
PROMETHEUS_DEFAULTS = yaml.safe_load((ANSIBLE_DIR / "roles/prometheus/defaults/main.yml").read_text())
USER = PROMETHEUS_DEFAULTS["prometheus_web_user"]


def secret(path):
    """A secret file the password lookup wrote (one line)."""
    return Path(path).read_text().rstrip("\n")


def render_prometheus(out, **overrides):
    render("prometheus", out, **overrides)
    password_file = Path(overrides.get("prometheus_web_password_file", out / "prometheus-password"))
    _, web = one(out, "etc/prometheus/web.yml")
    return password_file, load_yaml(web)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("web-auth")
    render("prometheus", out)
    render("jaeger", out)
    return out


def prometheus_address():
    inv = load_yaml(INVENTORY)["all"]
    host = next(iter(inv["children"]["prometheus"]["hosts"]))
    return inv["hosts"][host]["ansible_host"]


def test_web_config_holds_a_bcrypt_hash_of_the_generated_password(rendered):
    password = secret(rendered / "prometheus-password")
    _, web = one(rendered, "etc/prometheus/web.yml")
    users = load_yaml(web)["basic_auth_users"]
    assert list(users) == [USER]
    hashed = users[USER]
    assert re.fullmatch(r"\$2b\$12\$[./A-Za-z0-9]{53}", hashed), hashed
    assert bcrypt.checkpw(password.encode(), hashed.encode())
    assert not bcrypt.checkpw(password[:-1].encode(), hashed.encode())
    assert password not in web.read_text()


def test_generated_secrets_are_private_letters_and_digits(rendered):
    for name, length in (("prometheus-password", 24), ("prometheus-password.bcrypt-salt", 22)):
        f = rendered / name
        assert re.fullmatch(r"[A-Za-z0-9]{%d}" % length, secret(f)), name
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f"{name}: {oct(f.stat().st_mode)}"


def test_hash_is_stable_with_the_kept_salt_and_changes_with_a_new_one(rendered, tmp_path):
    """A second run must not rewrite the web config (changed=0): same password, same salt file,
    same hash. Without the kept salt the hash would differ on every run."""
    password_file = rendered / "prometheus-password"
    _, first = one(rendered, "etc/prometheus/web.yml")
    _, again = render_prometheus(tmp_path / "again", prometheus_web_password_file=str(password_file))
    assert again == load_yaml(first)
    moved = tmp_path / "moved" / "prometheus-password"
    moved.parent.mkdir()
    moved.write_text(password_file.read_text())
    _, fresh_salt = render_prometheus(tmp_path / "fresh", prometheus_web_password_file=str(moved))
    assert fresh_salt["basic_auth_users"][USER] != load_yaml(first)["basic_auth_users"][USER]
    assert bcrypt.checkpw(secret(moved).encode(), fresh_salt["basic_auth_users"][USER].encode())


def test_a_given_password_is_hashed_instead(tmp_path):
    password = "Given0Password0For0Tests"
    _, web = render_prometheus(tmp_path, prometheus_web_password=password)
    assert bcrypt.checkpw(password.encode(), web["basic_auth_users"][USER].encode())
    assert not (tmp_path / "prometheus-password").exists(), "generated although one was given"


def local_promtool():
    version = PROMETHEUS_DEFAULTS["prometheus_version"]
    cache = Path(os.environ.get("LAB_CACHE", Path.home() / ".cache/helidon-otel-vms"))
    found = sorted(glob.glob(str(cache / f"downloads/prometheus/{version}/*/prometheus-{version}.linux-*/promtool")))
    return found[0] if found else None


def test_web_config_passes_promtool(rendered, tmp_path):
    promtool = local_promtool()
    if promtool is None:
        pytest.skip("no promtool in the lab's download cache (the lab test checks the deployed file)")
    _, web = one(rendered, "etc/prometheus/web.yml")
    proc = subprocess.run([promtool, "check", "web-config", str(web)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = tmp_path / "broken.yml"
    hashed = load_yaml(web)["basic_auth_users"][USER]
    broken.write_text(web.read_text().replace(hashed, hashed[:30]))
    proc = subprocess.run([promtool, "check", "web-config", str(broken)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, "promtool accepted a broken hash"


def test_prometheus_scrapes_itself_with_the_password_file(rendered):
    _, f = one(rendered, "etc/prometheus/prometheus.yml")
    jobs = {j["job_name"]: j for j in load_yaml(f)["scrape_configs"]}
    assert jobs["prometheus"]["basic_auth"] == {"username": USER, "password_file": "/etc/prometheus/web-password"}
    _, unit = one(rendered, "systemd/prometheus.service")
    assert "--web.config.file=/etc/prometheus/web.yml" in unit.read_text()


def test_jaeger_query_names_the_password_file_not_the_password(rendered):
    """Jaeger 2.12's Prometheus client has no basic auth setting; the URL's user:password is
    sent as basic auth by Go's HTTP client, the password coming from ${file:...} at start."""
    password = secret(rendered / "prometheus-password")
    _, f = one(rendered, "etc/jaeger/query.yaml")
    assert password not in f.read_text()
    endpoint = load_yaml(f)["extensions"]["jaeger_storage"]["metric_backends"]["prometheus_spm"]["prometheus"]["endpoint"]
    assert endpoint == f"http://{USER}:${{file:/etc/jaeger/prometheus-password}}@{prometheus_address()}:9090"
    parts = urllib.parse.urlsplit(endpoint.replace("${file:/etc/jaeger/prometheus-password}", password))
    assert (parts.username, parts.password, parts.port) == (USER, password, 9090)


SECRET = re.compile(r"password|secret")


def tasks_of(node):
    """Every task dict in a tasks file (blocks, rescue and always included)."""
    for task in node or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from tasks_of(task.get(key))


# A Jinja expression that reads a password or secret variable (not the word in a comment, nor a
# path such as Grafana's $__file{.../admin-password}, which the service reads at start). A bcrypt
# hash (Prometheus's web config) is no password: its task only keeps it out of the diff.
SECRET_EXPRESSION = re.compile(r"\{\{[^}]*(password|secret)(?!_hash)[^}]*\}\}")
# The roles' templates live at the repository's root: src is "{{ <role>_template_root }}/etc/...".
TEMPLATE_ROOT = re.compile(r"^\{\{ *\w+_template_root *\}\}/")


def writes_a_secret(task):
    """Whether a copy task's content, or a template task's template, names a password or secret."""
    copy = task.get("ansible.builtin.copy")
    if isinstance(copy, dict):
        return bool(SECRET.search(str(copy.get("content", ""))))
    template = task.get("ansible.builtin.template")
    if isinstance(template, dict) and TEMPLATE_ROOT.match(template.get("src", "")):
        # A looped task's src names its templates with {{ item... }}: each file it can be.
        pattern = re.sub(r"\{\{[^}]*\}\}", "**/*", TEMPLATE_ROOT.sub("", template["src"]))
        sources = sorted(p for p in ROOT.glob(pattern) if p.is_file())
        assert sources, f"no template at {template['src']} ({ROOT / pattern})"
        return any(SECRET_EXPRESSION.search(source.read_text()) for source in sources)
    return False


def test_every_task_writing_a_generated_secret_hides_it():
    """A copy task whose content, or a template task whose template, names a password or secret
    variable must be no_log (its result, the diff included, is censored) and diff: false (no diff
    is even computed)."""
    checked = []
    for path in sorted((ANSIBLE_DIR / "roles").glob("*/tasks/*.yml")):
        for task in tasks_of(yaml.safe_load(path.read_text())):
            if writes_a_secret(task):
                where = f"{path.relative_to(ANSIBLE_DIR)}: {task.get('name')}"
                assert task.get("no_log") is True, f"{where}: not no_log"
                assert task.get("diff") is False, f"{where}: not diff: false"
                checked.append(where)
    # copies: prometheus, jaeger, grafana (admin, secret key, prometheus); templates: the Jaeger
    # configs holding the Cassandra password
    assert len(checked) >= 6, checked


GENERATED_SECRET = re.compile(r"""lookup\('generated_secret', '([^']+)'(, (want|file)=)?""")


def test_each_secret_has_one_rule_every_role_uses():
    """The secrets that several roles read (Prometheus's web password: prometheus, jaeger,
    grafana; Jaeger's Cassandra password: cassandra, jaeger) are generated by whichever role runs
    first, so every role must generate them by the same rule: all go through the lookup
    lookup_plugins/generated_secret.py, whose table is the only place a length is given; no role
    calls the password lookup itself."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("generated_secret", ANSIBLE_DIR / "lookup_plugins/generated_secret.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    readers = {}
    for path in sorted((ANSIBLE_DIR / "roles").glob("*/*/*.yml")):
        text = path.read_text()
        assert "ansible.builtin.password'" not in text, f"{path}: generates a secret outside generated_secret"
        for name, _, kind in GENERATED_SECRET.findall(text):
            assert name in plugin.SECRETS, f"{path}: no rule for {name}"
            if kind != "want":
                readers.setdefault(name, set()).add(path.parts[-3])
    assert readers["prometheus-password"] == {"prometheus", "jaeger", "grafana"}, readers
    assert readers["cassandra-jaeger-password"] == {"cassandra", "jaeger"}, readers
    assert set(readers) == set(plugin.SECRETS), readers
    assert (plugin.SECRETS["prometheus-password"], plugin.SECRETS["cassandra-jaeger-password"]) == (24, 32)
