# The lab hosts' file systems: one cached debootstrap tree, one overlay per host on top of it.
# shellcheck shell=bash

base_recipe() {
  echo "recipe=$LAB_ROOTFS_RECIPE suite=$LAB_SUITE arch=$(dpkg --print-architecture) packages=$LAB_BASE_PACKAGES"
}

any_host_tree_mounted() {
  grep -q " $LAB_CACHE/rootfs/[^ ]*/root " /proc/mounts
}

# unmount_under DIR: a debootstrap killed part-way leaves its proc and sys mounts in its tree,
# where `rm -rf` would fail on them and every later build with it. Deepest first.
unmount_under() {
  local mnt
  mounts_under "$1" | while read -r mnt; do
    log "unmounting $mnt (left by an interrupted build)"
    umount -l "$mnt"
  done
}

# Debootstraps the base tree once; later runs reuse it unless the recipe changed. Packages come
# through the lab's apt-cacher-ng, so even a rebuild downloads nothing twice.
build_base_rootfs() {
  local stamp="$LAB_CACHE/rootfs/base.recipe" new="$LAB_CACHE/rootfs/base.new" mirror proxy=()
  if [[ -x $LAB_ROOTFS_BASE/usr/lib/systemd/systemd && "$(cat "$stamp" 2>/dev/null)" == "$(base_recipe)" ]]; then
    log "base tree cached: $LAB_ROOTFS_BASE ($(base_recipe | cut -d' ' -f1-2))"
    return 0
  fi
  any_host_tree_mounted && die "the base tree must be rebuilt but hosts use it: run down.sh first"
  mirror=$(debian_mirror)
  [[ $mirror != http://* ]] || proxy=(env "http_proxy=http://$LAB_BRIDGE_ADDR:$LAB_APT_PROXY_PORT")
  unmount_under "$new"
  rm -rf --one-file-system "$new"
  mkdir -p "$new"
  log "debootstrap $LAB_SUITE from $mirror (log: $LAB_CACHE/rootfs/debootstrap.log)"
  if ! "${proxy[@]}" debootstrap --variant=minbase --include="$LAB_BASE_PACKAGES" \
    --keyring="$(lab_keyring)" "$LAB_SUITE" "$new" "$mirror" >"$LAB_CACHE/rootfs/debootstrap.log" 2>&1; then
    tail -n 30 "$LAB_CACHE/rootfs/debootstrap.log" >&2
    die "debootstrap failed"
  fi
  # Per-host identity is created by configure_host_tree, not shared through the base tree.
  rm -f "$new"/etc/ssh/ssh_host_*
  : >"$new/etc/machine-id"
  rm -f "$new/var/lib/dbus/machine-id"
  rm -f "$new"/var/cache/apt/archives/*.deb "$new"/var/lib/apt/lists/*_dists_* 2>/dev/null || true
  # sshd must start at boot; a container has no use for getty on a console nobody reads.
  ln -sf /usr/lib/systemd/system/ssh.service "$new/etc/systemd/system/multi-user.target.wants/ssh.service"
  ln -sf /dev/null "$new/etc/systemd/system/console-getty.service"
  rm -rf "$LAB_ROOTFS_BASE"
  mv "$new" "$LAB_ROOTFS_BASE"
  base_recipe >"$stamp"
  log "base tree ready: $(du -sh "$LAB_ROOTFS_BASE" | cut -f1)"
}

# Mounts a fresh overlay (base tree below, empty upper layer) for a host that is not running;
# leaves a running host's tree alone so a second up.sh destroys nothing.
mount_host_tree() {
  local host=$1 dir root
  dir=$(host_dir "$host")
  root=$(host_root "$host")
  if mountpoint -q "$root" 2>/dev/null; then
    log "$host: tree already mounted"
    return 0
  fi
  rm -rf "$dir/upper" "$dir/work"
  mkdir -p "$dir/upper" "$dir/work" "$root"
  mount -t overlay "lab-$host" \
    -o "lowerdir=$LAB_ROOTFS_BASE,upperdir=$dir/upper,workdir=$dir/work" "$root"
  log "$host: fresh tree at $root"
}

# Writes the host's identity and lab settings into its tree (idempotent).
configure_host_tree() {
  local host=$1 root mirror security h
  root=$(host_root "$host")
  mirror=$(debian_mirror)
  security=$(debian_security_mirror)

  echo "$host" >"$root/etc/hostname"
  {
    echo "127.0.0.1 localhost"
    echo "::1 localhost ip6-localhost ip6-loopback"
    for h in $LAB_HOSTS; do echo "$(lab_addr "$h") $h"; done
  } >"$root/etc/hosts"
  # No DNS in the lab: names are in /etc/hosts, apt goes through the proxy on the bridge.
  rm -f "$root/etc/resolv.conf"
  echo "# lab host: no DNS server; host names are in /etc/hosts" >"$root/etc/resolv.conf"

  [[ -s $root/etc/machine-id ]] || tr -d '-' </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
  compgen -G "$root/etc/ssh/ssh_host_*_key" >/dev/null || ssh-keygen -q -A -f "$root" >/dev/null

  install -d -m 700 "$root/root/.ssh"
  install -m 600 "$LAB_SSH_KEY.pub" "$root/root/.ssh/authorized_keys"

  echo "Acquire::http::Proxy \"http://$LAB_BRIDGE_ADDR:$LAB_APT_PROXY_PORT\";" \
    >"$root/etc/apt/apt.conf.d/01lab-proxy"
  rm -f "$root/etc/apt/sources.list"
  {
    # Requests go through apt-cacher-ng, which forwards them to the host's own mirror.
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' \
      "http://${mirror#*://}" "$LAB_SUITE" "$LAB_SUITE"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [[ -n $security ]]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' \
        "http://${security#*://}" "$LAB_SUITE"
      printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
  } >"$root/etc/apt/sources.list.d/debian.sources"
}

unmount_host_tree() {
  local root=$1
  if mountpoint -q "$root" 2>/dev/null; then
    umount "$root" 2>/dev/null || umount --lazy "$root"
    log "unmounted $root"
  fi
}
