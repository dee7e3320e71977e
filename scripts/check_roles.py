"""Checks that each Ansible role documents exactly the variables it takes (run by scripts/lint.sh).

  check_roles.py specs ROLES_DIR    defaults/main.yml and meta/argument_specs.yml's main entry
                                    point list the same variables;
  check_roles.py readmes ROLES_DIR  README.md's table under "## Variables" lists the main entry
                                    point's variables, and the table under "## Entry point `<name>`"
                                    those of each other entry point (one taking main's variables,
                                    like preflight, is covered by the first).

Prints one line per difference; exits 1 when there is any.
"""
import pathlib
import re
import sys

import yaml


def report(role, first, second, only_in_first, only_in_second):
    """Prints the names in one set and not the other with the two messages; returns their number."""
    for name in sorted(first - second):
        print(f"  {role}: {only_in_first.format(name=name)}")
    for name in sorted(second - first):
        print(f"  {role}: {only_in_second.format(name=name)}")
    return len(first ^ second)


def argument_specs(role):
    return yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]


def options(spec):
    return set(spec.get("options") or {})


def check_specs(role):
    defaults_file = role / "defaults/main.yml"
    defaults = set((yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {})
    return report(role.name, defaults, options(argument_specs(role)["main"]),
                  "{name} has a default but no entry in meta/argument_specs.yml",
                  "{name} is in meta/argument_specs.yml but not in defaults/main.yml")


def table_names(readme, heading):
    """First-column `names` of the table rows in the README section under `heading`, or None."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    if match is None:
        return None
    return set(re.findall(r"^\| `([^`]+)` \|", match.group(1), re.M))


def check_readme(role):
    readme_file = role / "README.md"
    if not readme_file.exists():
        print(f"  {role.name}: no README.md")
        return 1
    readme, specs = readme_file.read_text(), argument_specs(role)
    main_options = options(specs["main"])
    bad = 0
    for entry_point, spec in specs.items():
        taken = options(spec)
        if entry_point != "main" and taken == main_options:
            continue
        heading = "Variables" if entry_point == "main" else f"Entry point `{entry_point}`"
        documented = table_names(readme, heading)
        if documented is None:
            if taken:
                print(f"  {role.name}: README.md has no section '## {heading}' for {len(taken)} variables")
                bad += 1
            continue
        bad += report(role.name, taken, documented,
                      f"{{name}} ({entry_point}) is not in README.md's table under '## {heading}'",
                      f"README.md's table under '## {heading}' lists {{name}}, which {entry_point} does not take")
    return bad


def main(check, roles_dir):
    bad = 0
    for role in sorted(p for p in pathlib.Path(roles_dir).iterdir() if (p / "tasks").is_dir()):
        if not (role / "meta/argument_specs.yml").exists():
            print(f"  {role.name}: no meta/argument_specs.yml")
            bad += 1
            continue
        bad += {"specs": check_specs, "readmes": check_readme}[check](role)
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("specs", "readmes"):
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
