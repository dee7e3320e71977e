# The secrets the roles generate on the controller, each with its one rule: file name, length and
# characters. Several roles read the same secret (Prometheus's web password: the prometheus,
# jaeger and grafana roles; Jaeger's Cassandra password: the cassandra and jaeger roles); the
# first of them to run creates the file, so all of them must create it the same way. This table
# is that one way. Ansible finds it next to site.yml (and through ansible.cfg's lookup_plugins).
from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.plugins.loader import lookup_loader
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = """
    name: generated_secret
    short_description: read, or on the first run generate, one of the project's secrets on the controller
    description:
      - Returns the secret kept in a file on the controller, generating it there first (mode 0600)
        with the secret's rule (length, letters and digits) when the file does not exist yet.
      - The file is O(file), by default ~/.config/helidon-otel-vms/<inventory folder name>/<name>.
      - The rules (name and length) are the table SECRETS of this plugin; the characters are always
        ASCII letters and digits (the secrets go into URLs and into files that expand $).
      - With O(want=file) it returns the default file instead (for the roles' *_file defaults).
    options:
      _terms:
        description: The secret's name, a key of SECRETS (e.g. prometheus-password).
        required: true
      file:
        description: The file that keeps it; empty or omitted is the default file.
        type: str
        default: ""
      want:
        description: V(secret) returns the secret, V(file) the default file of the secret.
        type: str
        default: secret
        choices: [secret, file]
"""

EXAMPLES = """
prometheus_web_password_file: "{{ lookup('generated_secret', 'prometheus-password', want='file') }}"
prometheus_web_password_effective: "{{ lookup('generated_secret', 'prometheus-password', file=prometheus_web_password_file) }}"
"""

RETURN = """
  _raw:
    description: The secret (or, with want=file, the default file), one per term.
    type: list
    elements: str
"""

# name (the default file's name) -> length in characters.
SECRETS = {
    "prometheus-password": 24,
    # bcrypt's salt for the web password's hash, drawn once (the hash then stays the same).
    "prometheus-password.bcrypt-salt": 22,
    "grafana-admin-password": 24,
    "grafana-secret-key": 40,
    "cassandra-admin-password": 32,
    "cassandra-jaeger-password": 32,
    "cassandra-jmx-password": 32,
}
CHARS = ["ascii_letters", "digits"]


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        want, given_file = self.get_option("want"), self.get_option("file")
        password = lookup_loader.get("ansible.builtin.password", loader=self._loader, templar=self._templar)
        ret = []
        for name in terms:
            if name not in SECRETS:
                raise AnsibleError(f"generated_secret: no rule for {name!r} (known: {', '.join(SECRETS)})")
            if want == "file":
                ret.append(self._default_file(name, variables))
            else:
                path = given_file or self._default_file(name, variables)
                ret.extend(password.run([path], variables, length=SECRETS[name], chars=CHARS))
        return ret

    @staticmethod
    def _default_file(name, variables):
        inventory_dir = (variables or {}).get("inventory_dir")
        if not inventory_dir:
            raise AnsibleError(f"generated_secret: the default file of {name} needs inventory_dir (an inventory file)")
        home = os.environ.get("HOME") or os.path.expanduser("~")
        return os.path.join(home, ".config/helidon-otel-vms", os.path.basename(inventory_dir), name)
