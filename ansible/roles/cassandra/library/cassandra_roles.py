#!/usr/bin/python3
# Copyright: helidon-otel-vms. Apache-2.0.
"""Ansible module of the cassandra role: Cassandra's roles and Jaeger's grants, over CQL."""

DOCUMENTATION = r"""
module: cassandra_roles
short_description: Replace Cassandra's default superuser and set up an application role
description:
  - Connects over CQL (python3-cassandra) as the admin superuser, or, while that role does not
    exist yet, as the default superuser C(cassandra), which then creates the admin role.
  - As the admin it disables the default superuser (random password, LOGIN and SUPERUSER false;
    the role is kept so that Cassandra never creates it again), creates the application role
    (LOGIN, not SUPERUSER) or resets its password when that no longer logs in, creates the
    application keyspace when missing, and converges the role's permissions on ALL KEYSPACES and
    on that keyspace to exactly the ones given.
  - Waits up to I(timeout) seconds for CQL and for the default superuser, which Cassandra creates
    a few seconds after its first start.
  - Reports changed only when it changed something; supports check mode.
options:
  host: {description: CQL contact point (address of this node)., type: str, required: true}
  port: {description: CQL port., type: int, default: 9042}
  admin_role: {description: Name of the superuser role to create and use., type: str, required: true}
  admin_password: {description: Its password., type: str, required: true}
  default_role: {description: Cassandra's default superuser., type: str, default: cassandra}
  default_password: {description: Its default password., type: str, default: cassandra}
  app_role: {description: The application's role (LOGIN, not SUPERUSER)., type: str, required: true}
  app_password: {description: Its password., type: str, required: true}
  keyspace: {description: The application's keyspace, created by the admin when missing., type: str, required: true}
  replication: {description: "Replication of that keyspace: data center -> replicas (NetworkTopologyStrategy).", type: dict, required: true}
  keyspace_permissions: {description: Permissions of app_role on the keyspace., type: list, elements: str, required: true}
  all_keyspaces_permissions: {description: Permissions of app_role on ALL KEYSPACES., type: list, elements: str, default: []}
  timeout: {description: Seconds to wait for CQL and the default superuser., type: int, default: 300}
"""

import logging
import re
import secrets
import string
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from cassandra import AuthenticationFailed
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
    from cassandra.policies import WhiteListRoundRobinPolicy
    DRIVER_ERROR = None
except ImportError as exc:  # reported by main()
    DRIVER_ERROR = exc

NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
DATACENTER = re.compile(r"^[A-Za-z0-9_-]+$")
PERMISSIONS = {"CREATE", "ALTER", "DROP", "SELECT", "MODIFY", "AUTHORIZE", "DESCRIBE"}


class Refused(Exception):
    """The node answered and refused these credentials."""


class Unreachable(Exception):
    """No CQL connection (node not up yet)."""


class Cql:
    """One authenticated CQL session to a single node."""

    def __init__(self, host, port, user, password):
        profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([host]), request_timeout=30)
        self.cluster = Cluster(
            [host], port=port, auth_provider=PlainTextAuthProvider(user, password),
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connect_timeout=10, control_connection_timeout=10,
            schema_metadata_enabled=False, token_metadata_enabled=False)
        try:
            self.session = self.cluster.connect()
        except NoHostAvailable as exc:
            self.cluster.shutdown()
            if any(isinstance(e, AuthenticationFailed) for e in exc.errors.values()):
                raise Refused(str(exc)) from exc
            raise Unreachable(str(exc)) from exc
        except Exception as exc:  # driver timeouts and socket errors while the node starts
            self.cluster.shutdown()
            raise Unreachable(str(exc)) from exc

    def rows(self, query, params=None):
        return list(self.session.execute(query, params))

    def close(self):
        self.cluster.shutdown()


def role_row(cql, role):
    rows = cql.rows("SELECT can_login, is_superuser FROM system_auth.roles WHERE role = %s", (role,))
    return rows[0] if rows else None


def random_password():
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))


class Bootstrap:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.changes = []
        self.deadline = time.monotonic() + self.p["timeout"]

    def connect(self, user, password):
        return Cql(self.p["host"], self.p["port"], user, password)

    def change(self, cql, what, query, params=None):
        """Records a change and runs it (not in check mode). `what` never holds a secret."""
        self.changes.append(what)
        if not self.module.check_mode:
            cql.rows(query, params)

    def first_session(self):
        """(session, True) as the admin, or (session, False) as the default superuser; waits for
        CQL and for the default superuser that Cassandra creates after its first start."""
        last = "no attempt"
        while True:
            for user, password, is_admin in ((self.p["admin_role"], self.p["admin_password"], True),
                                             (self.p["default_role"], self.p["default_password"], False)):
                try:
                    return self.connect(user, password), is_admin
                except Refused as exc:
                    last = f"{user}: {exc}"
                except Unreachable as exc:
                    last = f"CQL at {self.p['host']}:{self.p['port']}: {exc}"
                    break  # the node is not up: the default superuser would fail the same way
            if time.monotonic() > self.deadline:
                self.module.fail_json(msg=(
                    f"neither the admin role {self.p['admin_role']} nor the default superuser "
                    f"{self.p['default_role']} could log in within {self.p['timeout']}s; if the admin "
                    f"password file on the controller was lost, reset the role by hand. Last error: {last}"),
                    changed=bool(self.changes), changes=self.changes)
            time.sleep(3)

    def admin_session(self):
        """Logs in as the admin, retrying briefly (Cassandra's auth caches lag role changes)."""
        while True:
            try:
                return self.connect(self.p["admin_role"], self.p["admin_password"])
            except (Refused, Unreachable) as exc:
                if time.monotonic() > self.deadline:
                    self.module.fail_json(msg=f"the admin role {self.p['admin_role']} cannot log in: {exc}",
                                          changed=bool(self.changes), changes=self.changes)
                time.sleep(2)

    def create_admin(self, cql):
        admin = self.p["admin_role"]
        verb = "ALTER" if role_row(cql, admin) else "CREATE"
        self.change(cql, f"{verb.lower()} superuser role {admin}",
                    f"{verb} ROLE {admin} WITH PASSWORD = %s AND LOGIN = true AND SUPERUSER = true",
                    (self.p["admin_password"],))

    def disable_default(self, cql):
        default = self.p["default_role"]
        row = role_row(cql, default)
        if row and (row.can_login or row.is_superuser):
            self.change(cql, f"disable the default superuser {default} (random password, LOGIN false, SUPERUSER false)",
                        f"ALTER ROLE {default} WITH PASSWORD = %s AND LOGIN = false AND SUPERUSER = false",
                        (random_password(),))

    def app_role(self, cql):
        app, password = self.p["app_role"], self.p["app_password"]
        row = role_row(cql, app)
        if row is None:
            self.change(cql, f"create role {app}",
                        f"CREATE ROLE {app} WITH PASSWORD = %s AND LOGIN = true AND SUPERUSER = false", (password,))
            return
        if row.is_superuser or not row.can_login:
            self.change(cql, f"role {app}: LOGIN true, SUPERUSER false",
                        f"ALTER ROLE {app} WITH LOGIN = true AND SUPERUSER = false")
            if self.module.check_mode:
                return
        try:
            self.connect(app, password).close()
        except Refused:
            self.change(cql, f"reset the password of role {app}", f"ALTER ROLE {app} WITH PASSWORD = %s", (password,))

    def keyspace(self, cql):
        ks = self.p["keyspace"]
        if cql.rows("SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", (ks,)):
            return
        replicas = ", ".join(f"'{dc}': {int(n)}" for dc, n in sorted(self.p["replication"].items()))
        self.change(cql, f"create keyspace {ks}",
                    f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = "
                    f"{{'class': 'NetworkTopologyStrategy', {replicas}}}")

    def permissions(self, cql):
        app, ks = self.p["app_role"], self.p["keyspace"]
        wanted = {("<all keyspaces>", "ALL KEYSPACES", p) for p in self.p["all_keyspaces_permissions"]}
        wanted |= {(f"<keyspace {ks}>", f"KEYSPACE {ks}", p) for p in self.p["keyspace_permissions"]}
        resources = {"<all keyspaces>": "ALL KEYSPACES", f"<keyspace {ks}>": f"KEYSPACE {ks}"}
        if self.module.check_mode and not role_row(cql, app):
            have = set()
        else:
            have = {(r.resource, resources[r.resource], r.permission)
                    for r in cql.rows(f"LIST ALL PERMISSIONS OF {app} NORECURSIVE") if r.resource in resources}
        for resource, cql_resource, perm in sorted(wanted - have):
            self.change(cql, f"grant {perm} on {resource} to {app}", f"GRANT {perm} ON {cql_resource} TO {app}")
        # Only these two resources are converged: tables Jaeger created itself carry its owner grants.
        for resource, cql_resource, perm in sorted(have - wanted):
            self.change(cql, f"revoke {perm} on {resource} from {app}", f"REVOKE {perm} ON {cql_resource} FROM {app}")

    def run(self):
        cql, is_admin = self.first_session()
        if not is_admin:
            self.create_admin(cql)
            cql.close()
            if self.module.check_mode:
                return
            cql = self.admin_session()
        try:
            self.disable_default(cql)
            self.app_role(cql)
            self.keyspace(cql)
            self.permissions(cql)
        finally:
            cql.close()


def main():
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "required": True},
            "port": {"type": "int", "default": 9042},
            "admin_role": {"type": "str", "required": True},
            "admin_password": {"type": "str", "required": True, "no_log": True},
            "default_role": {"type": "str", "default": "cassandra"},
            # Cassandra's well-known default: masking it would mask the word "cassandra" in all output.
            "default_password": {"type": "str", "default": "cassandra", "no_log": False},
            "app_role": {"type": "str", "required": True},
            "app_password": {"type": "str", "required": True, "no_log": True},
            "keyspace": {"type": "str", "required": True},
            "replication": {"type": "dict", "required": True},
            "keyspace_permissions": {"type": "list", "elements": "str", "required": True},
            "all_keyspaces_permissions": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "int", "default": 300},
        },
        supports_check_mode=True,
    )
    if DRIVER_ERROR is not None:
        module.fail_json(msg=missing_required_lib("cassandra-driver (Debian: python3-cassandra)"),
                         exception=str(DRIVER_ERROR))
    p = module.params
    bad = [n for n in (p["admin_role"], p["default_role"], p["app_role"], p["keyspace"]) if not NAME.match(n)]
    bad += [dc for dc in p["replication"] if not DATACENTER.match(dc)]
    if bad or len({p["admin_role"], p["default_role"], p["app_role"]}) != 3:
        module.fail_json(msg=f"role, keyspace and data center names must be plain and the three roles distinct: {bad}")
    perms = set(p["keyspace_permissions"]) | set(p["all_keyspaces_permissions"])
    if not perms <= PERMISSIONS:
        module.fail_json(msg=f"unknown permissions: {sorted(perms - PERMISSIONS)}")
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    bootstrap = Bootstrap(module)
    bootstrap.run()
    module.exit_json(changed=bool(bootstrap.changes), changes=bootstrap.changes)


if __name__ == "__main__":
    main()
