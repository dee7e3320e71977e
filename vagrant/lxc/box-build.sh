#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds the Vagrant box the Vagrantfile's lxc provider uses ($VAGRANT_LXC_BOX, default
# helidon-otel/trixie) and adds it to Vagrant (VAGRANT_HOME, default ~/.vagrant.d):
#   - Debian trixie debootstrapped with the nspawn lab's builder (ansible/lab/lib/rootfs.sh,
#     cached in $VLXC_CACHE/rootfs/base) through host-setup.sh's apt-cacher-ng;
#   - like Debian's own Vagrant boxes: user vagrant with Vagrant's insecure public key (the one
#     the vagrant package ships; Vagrant replaces it with a key of its own on first boot),
#     NOPASSWD sudo, systemd-networkd DHCP on eth0, systemd-resolved, sshd host keys made at
#     first boot, empty machine-id, apt sources of the host's Debian mirror;
#   - vagrant-lxc's box format: rootfs.tar.gz holding ./rootfs/..., lxc-config, metadata.json
#     (version 1.0.0, template-opts {}).
# Cached: does nothing when the box of this recipe is already added (--force rebuilds it).
# Needs root and host-setup.sh run first. Settings: lxc.env.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=../../ansible/lab/lib/rootfs.sh
. "$VLXC_ROOT/ansible/lab/lib/rootfs.sh"

# Bump when anything below changes the box.
VLXC_BOX_RECIPE=2
LAB_ROOTFS_BASE="$VLXC_CACHE/rootfs/base"
# The lab's packages, and the network stack of a box that gets its address by DHCP.
LAB_BASE_PACKAGES+=",systemd-resolved,libnss-resolve"
BOX_DIR="$VLXC_CACHE/box"
WORK=""

cleanup() {
  local rc=$?
  [[ -z $WORK ]] || rm -rf "$WORK"
  ((rc == 0)) || log "box-build.sh failed (exit $rc)" >&2
}
trap cleanup EXIT

box_recipe() { echo "box=$VLXC_BOX_RECIPE $(base_recipe)"; }

box_is_current() {
  [[ "$(cat "$BOX_DIR/recipe" 2>/dev/null)" == "$(box_recipe)" ]] &&
    vagrant box list --machine-readable 2>/dev/null | grep -q ",box-name,$VAGRANT_LXC_BOX\$"
}

insecure_public_key() {
  local key
  for key in /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub \
    /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub; do
    [[ ! -s $key ]] || { echo "$key"; return 0; }
  done
  die "Vagrant's insecure public key (keys/vagrant.pub of the vagrant package) not found"
}

# Turns a copy of the base tree into the box's root file system.
customize_tree() {
  local root=$1 mirror security
  mirror=$(debian_mirror)
  security=$(debian_security_mirror)
  chroot "$root" useradd --create-home --shell /bin/bash --groups sudo vagrant
  install -d -m 700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
  install -m 600 -o 1000 -g 1000 "$(insecure_public_key)" "$root/home/vagrant/.ssh/authorized_keys"
  [[ $(chroot "$root" id -u vagrant) == 1000 ]] || die "user vagrant is not uid 1000"
  echo 'vagrant ALL=(ALL) NOPASSWD:ALL' >"$root/etc/sudoers.d/vagrant"
  chmod 440 "$root/etc/sudoers.d/vagrant"

  printf '[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n' >"$root/etc/systemd/network/10-eth0.network"
  chroot "$root" systemctl enable systemd-networkd.service systemd-resolved.service >/dev/null 2>&1
  ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
  # The base tree has no host keys (each host must get its own): sshd makes them at first boot.
  install -d "$root/etc/systemd/system/ssh.service.d"
  printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
    >"$root/etc/systemd/system/ssh.service.d/host-keys.conf"
  echo "$VLXC_SUITE" >"$root/etc/hostname"
  printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  : >"$root/etc/machine-id"

  rm -f "$root/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' \
      "$mirror" "$VLXC_SUITE" "$VLXC_SUITE"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [[ -n $security ]]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$security" "$VLXC_SUITE"
      printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
  } >"$root/etc/apt/sources.list.d/debian.sources"
}

write_box() {
  local stage=$1 out=$2 arch
  arch=$(dpkg --print-architecture)
  [[ $arch == amd64 ]] || die "only amd64 boxes are built (lxc.arch in lxc-config); this host is $arch"
  cat >"$stage/lxc-config" <<'CONF'
lxc.include = /usr/share/lxc/config/debian.common.conf
lxc.arch = amd64
lxc.sysctl.net.ipv4.ping_group_range = 0 2147483647
CONF
  printf '{"provider": "lxc", "version": "1.0.0", "built-on": "%s", "template-opts": {}}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$stage/metadata.json"
  tar --numeric-owner -C "$stage" -czf "$stage/rootfs.tar.gz" ./rootfs
  tar -C "$stage" -czf "$out" metadata.json lxc-config rootfs.tar.gz
  log "box file $out: $(du -h "$out" | cut -f1)"
}

build_box() {
  local box_file="$BOX_DIR/helidon-otel-trixie-lxc.box"
  mkdir -p "$BOX_DIR"
  # Work folders of a build that was killed (a copy of the whole tree each); vagrant-test.sh runs
  # one box build at a time.
  rm -rf --one-file-system "$VLXC_CACHE"/box-build.*
  WORK=$(mktemp -d "$VLXC_CACHE/box-build.XXXXXX")
  cp -a "$LAB_ROOTFS_BASE" "$WORK/rootfs"
  customize_tree "$WORK/rootfs"
  write_box "$WORK" "$box_file.new"
  mv "$box_file.new" "$box_file"
  vagrant box add --force --name "$VAGRANT_LXC_BOX" "$box_file"
  box_recipe >"$BOX_DIR/recipe"
}

main() {
  ((EUID == 0)) || die "needs root (debootstrap, the box's file ownership)"
  [[ ${1:-} != --force ]] || rm -f "$BOX_DIR/recipe"
  mkdir -p "$VLXC_CACHE/rootfs"
  if box_is_current; then
    log "box $VAGRANT_LXC_BOX is current ($(box_recipe | cut -d' ' -f1-3))"
    return 0
  fi
  daemon_alive apt-cacher-ng || die "no apt proxy: run vagrant/lxc/host-setup.sh first"
  run_stage "base tree (debootstrap)" build_base_rootfs
  run_stage "box $VAGRANT_LXC_BOX" build_box
}

main "$@"
