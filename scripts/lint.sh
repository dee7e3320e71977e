#!/usr/bin/env bash
# Lints the Ansible code: ansible-lint (production profile, ansible/.ansible-lint) over ansible/,
# a check that each role's argument specs and defaults list the same variables, a check that each
# role's README tables list the same variables as its argument specs, a check that the roles'
# default versions are those the lab builds, then `ansible-playbook --syntax-check` of site.yml
# against each inventory.
# Prints one result line; exits non-zero when anything fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INVENTORIES=(vagrant lab)
failures=()

log() { echo "lint.sh: $*" >&2; }

on_exit() {
  local rc=$?
  [ "$rc" -eq 0 ] || [ "${#failures[@]}" -gt 0 ] || echo "lint: FAILED (exit $rc before the checks ran)"
}
trap on_exit EXIT

run_stage() {  # run_stage <name> <command...>: runs a check, records a failure, prints duration
  local name=$1 start=$SECONDS; shift
  log "== $name"
  if "$@"; then
    log "   $name: ok ($((SECONDS - start))s)"
  else
    log "   $name: FAILED ($((SECONDS - start))s)"
    failures+=("$name")
  fi
}

# Every role documents exactly the variables it defaults: defaults/main.yml and the main entry
# point of meta/argument_specs.yml must list the same names.
check_argument_specs() {
  python - roles <<'PY'
import pathlib
import sys

import yaml

bad = 0
for role in sorted(p for p in pathlib.Path(sys.argv[1]).iterdir() if (p / "tasks").is_dir()):
    defaults_file, specs_file = role / "defaults/main.yml", role / "meta/argument_specs.yml"
    if not specs_file.exists():
        print(f"  {role.name}: no meta/argument_specs.yml")
        bad += 1
        continue
    defaults = set((yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {})
    options = set(yaml.safe_load(specs_file.read_text())["argument_specs"]["main"].get("options") or {})
    for name in sorted(defaults - options):
        print(f"  {role.name}: {name} has a default but no entry in meta/argument_specs.yml")
        bad += 1
    for name in sorted(options - defaults):
        print(f"  {role.name}: {name} is in meta/argument_specs.yml but not in defaults/main.yml")
        bad += 1
sys.exit(1 if bad else 0)
PY
}

# Every role's README documents exactly what the role takes: the table under "## Variables" lists
# the main entry point's variables, and the table under "## Entry point `<name>`" those of each
# other entry point (one taking main's variables, like preflight, is covered by the first).
check_role_readmes() {
  python - roles <<'PY'
import pathlib
import re
import sys

import yaml


def table_names(readme, heading):
    """First-column `names` of the table rows in the README section under `heading`."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    if match is None:
        return None
    return set(re.findall(r"^\| `([^`]+)` \|", match.group(1), re.M))


bad = 0
for role in sorted(p for p in pathlib.Path(sys.argv[1]).iterdir() if (p / "tasks").is_dir()):
    readme_file = role / "README.md"
    if not readme_file.exists():
        print(f"  {role.name}: no README.md")
        bad += 1
        continue
    readme = readme_file.read_text()
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]
    main_options = set(specs["main"].get("options") or {})
    for entry_point, spec in specs.items():
        options = set(spec.get("options") or {})
        if entry_point != "main" and options == main_options:
            continue  # an entry point taking main's variables (preflight): the Variables table covers it
        heading = "Variables" if entry_point == "main" else f"Entry point `{entry_point}`"
        documented = table_names(readme, heading)
        if documented is None:
            if options:
                print(f"  {role.name}: README.md has no section '## {heading}' for {len(options)} variables")
                bad += 1
            continue
        for name in sorted(options - documented):
            print(f"  {role.name}: {name} ({entry_point}) is not in README.md's table under '## {heading}'")
            bad += 1
        for name in sorted(documented - options):
            print(f"  {role.name}: README.md's table under '## {heading}' lists {name}, which {entry_point} does not take")
            bad += 1
sys.exit(1 if bad else 0)
PY
}

# The lab deploys the releases it builds (ansible/lab/artifacts/versions.env, read by the lab
# inventory); the roles' defaults, which every other inventory gets, must name the same ones, so
# that what the lab tested is what a Vagrant or real deployment installs. The build prints its
# versions under the roles' variable names (`build.sh --print-vars`): <role>_version.
check_lab_versions() {
  python - roles "$("$ROOT/ansible/lab/artifacts/build.sh" --print-vars)" <<'PY'
import pathlib
import sys

import yaml

roles, built = pathlib.Path(sys.argv[1]), yaml.safe_load(sys.argv[2])
bad = 0
for variable, version in built.items():
    if not variable.endswith("_version"):
        continue
    role = variable.removesuffix("_version")
    default = yaml.safe_load((roles / role / "defaults/main.yml").read_text())[variable]
    if str(default) != str(version):
        print(f"  {role}: {variable} is {default} in defaults/main.yml, but the lab builds {version} (ansible/lab/artifacts/versions.env)")
        bad += 1
sys.exit(1 if bad else 0)
PY
}

main() {
  local venv_bin
  venv_bin=$("$ROOT/scripts/venv.sh" | tail -1)
  export PATH="$venv_bin:$PATH"
  cd "$ROOT/ansible"
  export ANSIBLE_CONFIG="$ROOT/ansible/ansible.cfg"

  run_stage "ansible-lint" ansible-lint --nocolor
  run_stage "argument specs = defaults" check_argument_specs
  run_stage "role READMEs = argument specs" check_role_readmes
  run_stage "lab versions = role defaults" check_lab_versions
  local inv
  for inv in "${INVENTORIES[@]}"; do
    run_stage "syntax-check ($inv)" \
      ansible-playbook --syntax-check -i "inventories/$inv/hosts.yml" site.yml
  done

  if [ "${#failures[@]}" -eq 0 ]; then
    echo "lint: OK (ansible-lint production, argument specs = defaults, role READMEs = argument specs, lab versions = role defaults, syntax-check: ${INVENTORIES[*]})"
  else
    echo "lint: FAILED: ${failures[*]}"
    return 1
  fi
}

main "$@"
