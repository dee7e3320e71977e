#!/usr/bin/env bash
# Builds the release archives the lab serves in place of upstream downloads, from the Go module
# proxy with the ordinary `go` client: Jaeger v2, the OpenTelemetry Collector "otelcol-contrib"
# (a subset, see otelcol-contrib/manifest.yaml) and Prometheus + promtool. Each archive gets the
# upstream file name, layout and checksum file, under
#   $LAB_MIRROR_DIR (default $LAB_CACHE/artifacts/mirror)/<owner>/<repo>/releases/download/<tag>/
# so a role's download base URL can point at the lab's HTTP server instead of github.com.
# Versions: versions.env. An artifact whose archive is already in the mirror and matches its
# checksum file is not rebuilt, so a second run does nothing.
#
# Usage: build.sh [--print-vars] [--only jaeger|otelcol|prometheus] [--help]
set -euo pipefail

ARTIFACTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lab.env
source "${ARTIFACTS_DIR}/../lab.env"
# shellcheck source=versions.env
source "${ARTIFACTS_DIR}/versions.env"

MIRROR_DIR="${LAB_MIRROR_DIR:-${LAB_CACHE}/artifacts/mirror}"   # what up.sh serves
WORK_DIR="${LAB_CACHE}/artifacts/work"
GO_MIN_VERSION=1.26                    # every pinned module builds with it (see README.md)
GO_STEP_TIMEOUT="${LAB_GO_STEP_TIMEOUT:-3600}"   # seconds, per go download/build step
GO_BUILD_JOBS="${LAB_GO_BUILD_JOBS:-2}"          # go build -p; the CI machine has 2 cores

JAEGER_TARGET="jaeger-${JAEGER_VERSION}-linux-amd64"
JAEGER_RELEASE_DIR="${MIRROR_DIR}/jaegertracing/jaeger/releases/download/${JAEGER_GO_VERSION}"
OTELCOL_ARCHIVE="otelcol-contrib_${OTELCOL_VERSION}_linux_amd64.tar.gz"
OTELCOL_CHECKSUMS="opentelemetry-collector-releases_otelcol-contrib_checksums.txt"
OTELCOL_RELEASE_DIR="${MIRROR_DIR}/open-telemetry/opentelemetry-collector-releases/releases/download/v${OTELCOL_VERSION}"
PROMETHEUS_TARGET="prometheus-${PROMETHEUS_VERSION}.linux-amd64"
PROMETHEUS_RELEASE_DIR="${MIRROR_DIR}/prometheus/prometheus/releases/download/v${PROMETHEUS_VERSION}"

SCRATCH=""
cleanup() {
  local rc=$?
  if [[ -n "${SCRATCH}" && -d "${SCRATCH}" ]]; then rm -rf "${SCRATCH}"; fi
  if ((rc != 0)); then
    echo "[artifacts] FAILED (exit ${rc}); see the messages above. Nothing half-built was published." >&2
  fi
}
trap cleanup EXIT

log() { printf '[artifacts] %s\n' "$*"; }
die() { printf '[artifacts] ERROR: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# The lab inventory's values of the roles' version and download variables.
print_vars() {
  local base="http://${LAB_BRIDGE_ADDR}:${LAB_MIRROR_PORT}"
  cat <<EOF
jaeger_version: ${JAEGER_VERSION}
jaeger_release_tag: ${JAEGER_GO_VERSION}
jaeger_download_base_url: ${base}/jaegertracing/jaeger/releases/download
otel_collector_version: ${OTELCOL_VERSION}
otel_collector_download_base_url: ${base}/open-telemetry/opentelemetry-collector-releases/releases/download
prometheus_version: ${PROMETHEUS_VERSION}
prometheus_download_base_url: ${base}/prometheus/prometheus/releases/download
EOF
}

print_versions() {
  log "versions (versions.env): jaeger ${JAEGER_VERSION} (Go module ${JAEGER_GO_VERSION}), otelcol-contrib ${OTELCOL_VERSION} (builder ${OTELCOL_BUILDER_VERSION}), prometheus ${PROMETHEUS_VERSION} (Go module ${PROMETHEUS_GO_VERSION})"
}

# The go command, its caches under $LAB_CACHE (never in the repository), static linux/amd64.
# Set up by already_built for the first archive that must be built. (Called from an `&&` list
# there, where bash ignores `set -e`: every command that can fail says so itself.)
GO_READY=""
setup_go_env() {
  [[ -z "${GO_READY}" ]] || return 0
  GO_READY=1
  if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:${PATH}"; fi
  command -v go >/dev/null || die "the go command is not on PATH; install Go ${GO_MIN_VERSION} or newer (Debian 12's golang is too old)"
  local have
  have="$(go env GOVERSION)" || die "go env GOVERSION failed"
  have="${have#go}"
  if [[ "$(printf '%s\n%s\n' "${GO_MIN_VERSION}" "${have}" | sort -V | head -n1)" != "${GO_MIN_VERSION}" ]]; then
    die "go ${have} is older than the ${GO_MIN_VERSION} the pinned modules need"
  fi
  export GOMODCACHE="${LAB_CACHE}/go/mod" GOCACHE="${LAB_CACHE}/go/build"
  # Keep the machine's GOFLAGS (and its GOPROXY, untouched); make the module cache deletable.
  GOFLAGS="$(go env GOFLAGS)" || die "go env GOFLAGS failed"
  GOFLAGS="${GOFLAGS:+${GOFLAGS} }-modcacherw"
  export GOFLAGS CGO_ENABLED=0 GOOS=linux GOARCH=amd64
  mkdir -p "${GOMODCACHE}" "${GOCACHE}" || die "cannot create the Go caches under ${LAB_CACHE}/go"
  log "go ${have}, GOMODCACHE=${GOMODCACHE}, GOCACHE=${GOCACHE}, go build -p ${GO_BUILD_JOBS}"
}

# Runs a go step with a time bound, so a stuck download cannot hang the lab. --foreground keeps
# timeout in this script's process group: without it timeout moves to a group of its own, where
# neither Ctrl-C nor a signal to the group reaches it, and the build ran on after the script was
# stopped. (The price: when the bound is hit, timeout kills go alone; a compile or git process
# it started may finish on its own, and make test stops what is left of the stage.)
go_bounded() { timeout --foreground --kill-after=30 "${GO_STEP_TIMEOUT}" go "$@"; }

# A field of a module version's metadata: Hash (its git commit, from the proxy's Origin record),
# Time (tag date) or Dir (unpacked source in GOMODCACHE).
module_info() {
  local module="$1" field="$2"
  { go_bounded mod download -json "${module}"; go_bounded list -m -json "${module}"; } \
    | sed -n "s/^[[:space:]]*\"${field}\": \"\\([^\"]*\\)\",\\{0,1\\}\$/\\1/p" | sed -n 1p
}

# A fresh throw-away main module that depends on the given tools (go get -tool).
new_tool_module() {
  local dir="$1"; shift
  rm -rf "${dir}"; mkdir -p "${dir}"
  (cd "${dir}" && go mod init lab.invalid/artifact-build >/dev/null 2>&1)
  local tool
  for tool in "$@"; do
    (cd "${dir}" && go_bounded get -tool "${tool}") >"${dir}/go-get.log" 2>&1 \
      || { tail -n 20 "${dir}/go-get.log" >&2; die "go get -tool ${tool} failed"; }
  done
}

# Reproducible gzip'd tar of the named entries of a directory (sorted, root-owned, fixed mtime).
pack_tar_gz() {
  local from="$1" out="$2" mtime="$3"; shift 3
  tar -C "${from}" --sort=name --owner=0 --group=0 --numeric-owner --mtime="${mtime}" \
    -cf - "$@" | gzip -n -9 >"${out}"
}

# True when <dir>/<archive> exists and matches its line in <dir>/<checksum file>.
archive_verifies() {
  local dir="$1" archive="$2" sums="$3"
  [[ -f "${dir}/${archive}" && -f "${dir}/${sums}" ]] || return 1
  local line
  line="$(grep -E "^[0-9a-f]{64} [ *]${archive}\$" "${dir}/${sums}")" || return 1
  (cd "${dir}" && printf '%s\n' "${line}" | sha256sum --check --status)
}

# already_built <label> <dir> <archive> <checksum file>: true, and says so, when the published
# archive is there and verifies, so its build can be skipped; otherwise sets up Go for the build
# (only then: cached archives need no Go) and returns false.
already_built() {
  if ! archive_verifies "$2" "$3" "$4"; then
    setup_go_env
    return 1
  fi
  log "$1: $3 present and verified, nothing to do"
}

# Moves the staged files into the mirror release directory, checksum files last.
publish() {
  local stage="$1" dest="$2"; shift 2
  mkdir -p "${dest}"
  local f
  for f in "$@"; do
    cp "${stage}/${f}" "${dest}/.${f}.tmp" && mv -f "${dest}/.${f}.tmp" "${dest}/${f}"
  done
}

build_jaeger() {
  local archive="${JAEGER_TARGET}.tar.gz" sums="jaeger-${JAEGER_VERSION}.sha256sum.txt"
  already_built "jaeger ${JAEGER_VERSION}" "${JAEGER_RELEASE_DIR}" "${archive}" "${sums}" && return 0
  local mod="github.com/jaegertracing/jaeger" work="${WORK_DIR}/jaeger-${JAEGER_GO_VERSION}"
  log "jaeger ${JAEGER_VERSION}: resolving ${mod}/cmd/jaeger@${JAEGER_GO_VERSION}"
  new_tool_module "${work}" "${mod}/cmd/jaeger@${JAEGER_GO_VERSION}"
  local commit date vpkg="${mod}/internal/version"
  commit="$(module_info "${mod}@${JAEGER_GO_VERSION}" Hash)"
  date="$(module_info "${mod}@${JAEGER_GO_VERSION}" Time)"
  log "jaeger ${JAEGER_VERSION}: compiling (commit ${commit:-unknown})"
  mkdir -p "${SCRATCH}/${JAEGER_TARGET}"
  (cd "${work}" && go_bounded build -p "${GO_BUILD_JOBS}" -trimpath \
    -ldflags "-s -w -X ${vpkg}.latestVersion=v${JAEGER_VERSION} -X ${vpkg}.commitSHA=${commit} -X ${vpkg}.date=${date}" \
    -o "${SCRATCH}/${JAEGER_TARGET}/jaeger" "${mod}/cmd/jaeger") || die "go build of jaeger failed"
  log "jaeger ${JAEGER_VERSION}: smoke test: jaeger version"
  "${SCRATCH}/${JAEGER_TARGET}/jaeger" version 2>/dev/null | grep -F "\"gitVersion\":\"v${JAEGER_VERSION}\"" \
    || die "jaeger version does not report v${JAEGER_VERSION}"
  # Upstream: per-archive list of the packed files, and one list of all archives of the release
  # (published under both version names), both in `shasum -b -a 256` format ("<sha> *<path>").
  (cd "${SCRATCH}" && find "${JAEGER_TARGET}" -type f -exec sha256sum -b {} + | sort -k2) \
    >"${SCRATCH}/${JAEGER_TARGET}.sha256sum.txt"
  pack_tar_gz "${SCRATCH}" "${SCRATCH}/${archive}" "${date:-@0}" "${JAEGER_TARGET}"
  (cd "${SCRATCH}" && sha256sum -b "${archive}") >"${SCRATCH}/${sums}"
  cp "${SCRATCH}/${sums}" "${SCRATCH}/jaeger-${JAEGER_GO_VERSION#v}.sha256sum.txt"
  publish "${SCRATCH}" "${JAEGER_RELEASE_DIR}" "${archive}" "${JAEGER_TARGET}.sha256sum.txt" \
    "jaeger-${JAEGER_GO_VERSION#v}.sha256sum.txt" "${sums}"
}

build_otelcol() {
  local archive="${OTELCOL_ARCHIVE}" sums="${OTELCOL_CHECKSUMS}"
  already_built "otelcol-contrib ${OTELCOL_VERSION}" "${OTELCOL_RELEASE_DIR}" "${archive}" "${sums}" && return 0
  local work="${WORK_DIR}/otelcol-contrib-${OTELCOL_VERSION}"
  rm -rf "${work}"; mkdir -p "${work}/bin"
  log "otelcol-contrib ${OTELCOL_VERSION}: installing the collector builder ${OTELCOL_BUILDER_VERSION}"
  GOBIN="${work}/bin" go_bounded install "go.opentelemetry.io/collector/cmd/builder@${OTELCOL_BUILDER_VERSION}" \
    || die "go install of the collector builder ${OTELCOL_BUILDER_VERSION} failed"
  grep -qE "^  version: \"?${OTELCOL_VERSION}\"?\$" "${ARTIFACTS_DIR}/otelcol-contrib/manifest.yaml" \
    || die "otelcol-contrib/manifest.yaml dist.version differs from OTELCOL_VERSION=${OTELCOL_VERSION}"
  log "otelcol-contrib ${OTELCOL_VERSION}: generating sources and go.mod from otelcol-contrib/manifest.yaml"
  sed "s|^dist:\$|dist:\n  output_path: ${work}/src|" "${ARTIFACTS_DIR}/otelcol-contrib/manifest.yaml" \
    >"${work}/manifest.yaml"
  (cd "${work}" && timeout --foreground --kill-after=30 "${GO_STEP_TIMEOUT}" ./bin/builder --skip-compilation \
      --config "${work}/manifest.yaml") \
    >"${work}/builder.log" 2>&1 || { tail -n 30 "${work}/builder.log" >&2; die "the collector builder failed"; }
  log "otelcol-contrib ${OTELCOL_VERSION}: compiling"
  mkdir -p "${SCRATCH}/otelcol"
  (cd "${work}/src" && go_bounded build -p "${GO_BUILD_JOBS}" -trimpath -tags grpcnotrace -ldflags "-s -w" \
    -o "${SCRATCH}/otelcol/otelcol-contrib" .) || die "go build of otelcol-contrib failed"
  log "otelcol-contrib ${OTELCOL_VERSION}: smoke test: otelcol-contrib validate --config otelcol-contrib/smoke-config.yaml"
  "${SCRATCH}/otelcol/otelcol-contrib" --version | grep -F " ${OTELCOL_VERSION}" \
    || die "otelcol-contrib --version does not report ${OTELCOL_VERSION}"
  OTELCOL_SMOKE_STORAGE_DIR="${SCRATCH}/storage" "${SCRATCH}/otelcol/otelcol-contrib" validate \
    --config "${ARTIFACTS_DIR}/otelcol-contrib/smoke-config.yaml" || die "otelcol-contrib validate failed"
  cp "${ARTIFACTS_DIR}/otelcol-contrib/ARCHIVE-README.md" "${SCRATCH}/otelcol/README.md"
  # Upstream (goreleaser): binary and README.md at the archive root; one checksums file for the
  # whole release in `sha256sum` text format ("<sha>  <file>").
  local date
  date="$(module_info "go.opentelemetry.io/collector/cmd/builder@${OTELCOL_BUILDER_VERSION}" Time)"
  pack_tar_gz "${SCRATCH}/otelcol" "${SCRATCH}/${archive}" "${date:-@0}" README.md otelcol-contrib
  (cd "${SCRATCH}" && sha256sum "${archive}") >"${SCRATCH}/${sums}"
  publish "${SCRATCH}" "${OTELCOL_RELEASE_DIR}" "${archive}" "${sums}"
}

build_prometheus() {
  local archive="${PROMETHEUS_TARGET}.tar.gz" sums="sha256sums.txt"
  already_built "prometheus ${PROMETHEUS_VERSION}" "${PROMETHEUS_RELEASE_DIR}" "${archive}" "${sums}" && return 0
  local mod="github.com/prometheus/prometheus" work="${WORK_DIR}/prometheus-${PROMETHEUS_GO_VERSION}"
  log "prometheus ${PROMETHEUS_VERSION}: resolving ${mod}/cmd/{prometheus,promtool}@${PROMETHEUS_GO_VERSION}"
  new_tool_module "${work}" "${mod}/cmd/prometheus@${PROMETHEUS_GO_VERSION}" "${mod}/cmd/promtool@${PROMETHEUS_GO_VERSION}"
  local src commit date build_date vpkg="github.com/prometheus/common/version"
  src="$(module_info "${mod}@${PROMETHEUS_GO_VERSION}" Dir)"
  [[ "$(cat "${src}/VERSION")" == "${PROMETHEUS_VERSION}" ]] \
    || die "${mod}@${PROMETHEUS_GO_VERSION} is Prometheus $(cat "${src}/VERSION"), not ${PROMETHEUS_VERSION}"
  commit="$(module_info "${mod}@${PROMETHEUS_GO_VERSION}" Hash)"
  date="$(module_info "${mod}@${PROMETHEUS_GO_VERSION}" Time)"
  build_date="$(date -u -d "${date}" +%Y%m%d-%H:%M:%S 2>/dev/null || echo unknown)"
  log "prometheus ${PROMETHEUS_VERSION}: compiling prometheus and promtool (commit ${commit:-unknown})"
  mkdir -p "${SCRATCH}/${PROMETHEUS_TARGET}"
  # Tags as upstream's .promu.yml minus builtinassets: the web UI is built with npm upstream and
  # is not part of the Go module, so this build serves the API without the UI pages. Plus
  # remove_all_sd, upstream's tag that leaves out the optional service discoveries (static, file
  # and HTTP stay): the roles scrape static targets only, and it halves the compile on 2 cores
  # (267 s against 509 s from an empty build cache).
  (cd "${work}" && go_bounded build -p "${GO_BUILD_JOBS}" -trimpath -tags netgo,remove_all_sd \
    -ldflags "-s -w -X ${vpkg}.Version=${PROMETHEUS_VERSION} -X ${vpkg}.Revision=${commit} -X ${vpkg}.Branch=HEAD -X ${vpkg}.BuildUser=helidon-otel-lab -X ${vpkg}.BuildDate=${build_date}" \
    -o "${SCRATCH}/${PROMETHEUS_TARGET}/" "${mod}/cmd/prometheus" "${mod}/cmd/promtool") \
    || die "go build of prometheus/promtool failed"
  install -m 0644 "${src}/LICENSE" "${src}/NOTICE" "${src}/documentation/examples/prometheus.yml" \
    "${SCRATCH}/${PROMETHEUS_TARGET}/"
  log "prometheus ${PROMETHEUS_VERSION}: smoke test: prometheus --version, promtool check config"
  "${SCRATCH}/${PROMETHEUS_TARGET}/prometheus" --version | grep -F "version ${PROMETHEUS_VERSION}" \
    || die "prometheus --version does not report ${PROMETHEUS_VERSION}"
  "${SCRATCH}/${PROMETHEUS_TARGET}/promtool" check config "${SCRATCH}/${PROMETHEUS_TARGET}/prometheus.yml" \
    || die "promtool check config failed"
  # Upstream (promu): one directory per target; sha256sums.txt in `sha256sum` text format.
  pack_tar_gz "${SCRATCH}" "${SCRATCH}/${archive}" "${date:-@0}" "${PROMETHEUS_TARGET}"
  (cd "${SCRATCH}" && sha256sum "${archive}") >"${SCRATCH}/${sums}"
  publish "${SCRATCH}" "${PROMETHEUS_RELEASE_DIR}" "${archive}" "${sums}"
}

# Runs one artifact's build with its wall time and the archive size.
run_stage() {
  local name="$1" archive_path="$2" start=${SECONDS}
  SCRATCH="$(mktemp -d "${WORK_DIR}/stage.XXXXXX")"
  log "== ${name}: start"
  "build_${name}"
  rm -rf "${SCRATCH}"; SCRATCH=""
  log "== ${name}: done in $((SECONDS - start)) s ($(du -h "${archive_path}" | cut -f1) ${archive_path#"${MIRROR_DIR}/"})"
}

main() {
  local only=""
  while (($#)); do
    case "$1" in
      --print-vars) print_vars; return 0 ;;
      --only) only="${2:-}"; shift ;;
      -h|--help) usage; return 0 ;;
      *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
  done
  case "${only}" in ""|jaeger|otelcol|prometheus) ;; *) die "--only takes jaeger, otelcol or prometheus" ;; esac
  local start=${SECONDS}
  print_versions
  mkdir -p "${WORK_DIR}" "${MIRROR_DIR}"
  # One build at a time (make test and a manual run would share work directories).
  exec 9>"${LAB_CACHE}/artifacts/.build.lock"
  flock -w "${GO_STEP_TIMEOUT}" 9 || die "another build.sh still runs after ${GO_STEP_TIMEOUT} s"
  # Scratch folders of a build that was killed (the lock says none is in use).
  rm -rf "${WORK_DIR}"/stage.*
  # Sequential on purpose: each Go build already uses both cores of a CI machine.
  if [[ -z "${only}" || "${only}" == jaeger ]]; then
    run_stage jaeger "${JAEGER_RELEASE_DIR}/${JAEGER_TARGET}.tar.gz"
  fi
  if [[ -z "${only}" || "${only}" == otelcol ]]; then
    run_stage otelcol "${OTELCOL_RELEASE_DIR}/${OTELCOL_ARCHIVE}"
  fi
  if [[ -z "${only}" || "${only}" == prometheus ]]; then
    run_stage prometheus "${PROMETHEUS_RELEASE_DIR}/${PROMETHEUS_TARGET}.tar.gz"
  fi
  log "all artifacts ready in ${MIRROR_DIR} ($((SECONDS - start)) s)"
}

main "$@"
