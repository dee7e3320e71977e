"""Checks site.yml's placement play against the roles (run by scripts/lint.sh).

  check_placement.py ANSIBLE_DIR

The play "Stop what the inventory no longer places on a host" names, for each systemd unit a role
installs, the inventory group whose hosts run it. That map restates the roles' unit names, so a
role that gains, renames or drops a unit without it would leave the unit running on a host taken
out of the group. Fails unless the map's units are exactly those the roles install under
/etc/systemd/system (the app role's, named per instance, aside: the play retires those through the
role) and each group it names exists in every inventory under inventories/.

Prints one line per difference; exits 1 when there is any.
"""
import pathlib
import re
import sys

import yaml

PLAY_TAG = "placement"
UNIT_DEST = re.compile(r"^\s*dest: /etc/systemd/system/([\w.-]+)\.service\s*$", re.M)


def placement_map(site):
    plays = [play for play in yaml.safe_load(site.read_text()) if PLAY_TAG in play.get("tags", [])]
    if len(plays) != 1:
        sys.exit(f"  site.yml: expected one play tagged {PLAY_TAG}, found {len(plays)}")
    return plays[0]["vars"]["placement_unit_groups"]


def installed_units(roles):
    """unit name -> role, for the units the roles' tasks install under a fixed name."""
    units = {}
    for tasks in sorted(roles.glob("*/tasks/*.yml")):
        for unit in UNIT_DEST.findall(tasks.read_text()):
            units[unit] = tasks.parent.parent.name
    return units


def inventory_groups(inventory):
    groups = set()

    def walk(children):
        for name, group in (children or {}).items():
            groups.add(name)
            walk((group or {}).get("children"))

    walk(yaml.safe_load(inventory.read_text()))
    return groups


def main(ansible_dir):
    ansible_dir = pathlib.Path(ansible_dir)
    mapped = placement_map(ansible_dir / "site.yml")
    units = installed_units(ansible_dir / "roles")
    bad = 0
    for unit in sorted(set(units) - set(mapped)):
        print(f"  site.yml: the {units[unit]} role installs {unit}.service, which the placement play does not map to a group")
        bad += 1
    for unit in sorted(set(mapped) - set(units)):
        print(f"  site.yml: the placement play maps {unit}, which no role installs under /etc/systemd/system")
        bad += 1
    for inventory in sorted(ansible_dir.glob("inventories/*/hosts.yml")):
        groups = inventory_groups(inventory)
        for unit, group in sorted(mapped.items()):
            if group not in groups:
                print(f"  site.yml: the placement play maps {unit} to group {group}, which {inventory.relative_to(ansible_dir)} lacks")
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
