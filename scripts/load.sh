#!/usr/bin/env bash
# Bounded request load on the apps: the original demo's request-script (rounds of siege runs
# over every endpoint), done with curl. Each round sends, per endpoint, the original's
# count = concurrency x repetitions (see MIX), spread over the target apps, then pauses:
#   /  10   /io_task 15   /cpu_task 10   /random_sleep 15   /random_status 20   /chain 6
#   /error_test 1   (+ /items/<n> 5: the original script left it out)
# Bounded by rounds (-n) and by wall-clock time (-t); prints a progress line per round and a
# summary of status codes per endpoint.
#
# Usage: scripts/load.sh [-n ROUNDS] [-t SECONDS] [-p PAUSE] [-i INVENTORY] [URL ...]
#   URL ...       base URLs of the apps, e.g. http://127.0.0.1:8000 (IP addresses, loopback or
#                 private, or localhost; no other host names)
#   -i INVENTORY  take the apps from an Ansible inventory (hosts.yml; needs scripts/venv.sh)
#   default       the lab's apps: http://$LAB_NET_PREFIX.11-13:8000 and app-d on .13:8001 (ansible/lab/lab.env)
#   -n ROUNDS     rounds (default 10, as the original);  -t SECONDS  time budget (default 300)
#   -p PAUSE      seconds between rounds (default 5, as the original)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../ansible/lab/lab.env
. "$ROOT/ansible/lab/lab.env"

# endpoint concurrency repetitions (the original's siege -c/-r per endpoint)
MIX=(
  "/ 1 10"
  "/io_task 3 5"
  "/cpu_task 2 5"
  "/random_sleep 5 3"
  "/random_status 2 10"
  "/chain 2 3"
  "/error_test 1 1"
  "/items/ITEM 1 5"
)
ROUNDS=10
BUDGET=300
PAUSE=5
INVENTORY=""
REQUEST_TIMEOUT=15
TARGETS=()
WORK=$(mktemp -d)

log() { printf '%s [load] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

CHILD=""  # the round's timeout (leader of a process group of its own, with xargs and the curls)

cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
# timeout runs the curls in a process group of its own, which a Ctrl-C at the terminal does not
# reach: the trap stops that group and prints what was sent so far.
on_signal() {
  trap '' INT TERM
  [[ -z $CHILD ]] || kill -TERM -- "-$CHILD" 2>/dev/null || true
  log "stopped by SIG$1"
  [[ ! -f $WORK/results ]] || summary
  exit "$2"
}
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

parse_args() {
  while getopts "n:t:p:i:h" opt; do
    case "$opt" in
      n) ROUNDS=$OPTARG ;;
      t) BUDGET=$OPTARG ;;
      p) PAUSE=$OPTARG ;;
      i) INVENTORY=$OPTARG ;;
      h) usage; exit 0 ;;
      *) usage >&2; exit 2 ;;
    esac
  done
  shift $((OPTIND - 1))
  TARGETS=("$@")
  [[ -z $INVENTORY || ${#TARGETS[@]} -eq 0 ]] || die "give either -i INVENTORY or URLs, not both"
  [[ $ROUNDS =~ ^[1-9][0-9]{0,3}$ ]] || die "-n takes 1..9999 rounds"
  [[ $BUDGET =~ ^[1-9][0-9]{0,4}$ ]] || die "-t takes 1..99999 seconds"
  [[ $PAUSE =~ ^[0-9]{1,3}$ ]] || die "-p takes 0..999 seconds"
}

inventory_targets() {  # base URLs of every app instance of an inventory (rendered by ansible)
  local venv_bin out inventory
  inventory=$(realpath -e "$INVENTORY") || die "no inventory at $INVENTORY"
  venv_bin=$("$ROOT/scripts/venv.sh" | tail -1) || die "scripts/venv.sh failed (above)"
  # "<address>:<port>" of each instance of a host: app_port unless app_instance_ports names it
  out=$(cd / && ANSIBLE_LOAD_CALLBACK_PLUGINS=1 ANSIBLE_STDOUT_CALLBACK=json \
    "$venv_bin/ansible" apps -i "$inventory" -m ansible.builtin.debug \
    -a 'msg={{ app_instances | default([])
                | map("extract", dict(app_instances | default([]) | product([app_port | default(8000)]))
                                 | combine(app_instance_ports | default({})))
                | map("regex_replace", "^", (ansible_host | default(inventory_hostname)) ~ ":") | list }}') \
    || die "cannot read the apps group of $INVENTORY"
  "$venv_bin/python" -c '
import json, sys
for res in json.load(sys.stdin)["plays"][0]["tasks"][0]["hosts"].values():
    for target in res["msg"]:
        print("http://" + target)' <<<"$out"
}

check_target() {  # only loopback or private addresses: this script is for the demo's own hosts
  local host
  # The whole URL, so that nothing but the address can name the host curl connects to: in
  # http://127.0.0.1:x@203.0.113.5 what comes before the '@' is a user name.
  [[ $1 =~ ^https?://(localhost|\[::1\]|[0-9]{1,3}(\.[0-9]{1,3}){3})(:[0-9]{1,5})?(/[^@[:space:]]*)?$ ]] ||
    die "refusing $1: give the app's URL with its IP address (loopback or private), e.g." \
      "http://127.0.0.1:8000; no host name, user info or '@'"
  host=${BASH_REMATCH[1]}
  case "$host" in
    localhost|127.*|10.*|192.168.*|172.1[6-9].*|172.2[0-9].*|172.3[01].*|\[::1\]) ;;
    *) die "refusing $1: only loopback or private addresses" ;;
  esac
}

resolve_targets() {
  if [ -n "$INVENTORY" ]; then
    mapfile -t TARGETS < <(inventory_targets)
  elif [ "${#TARGETS[@]}" -eq 0 ]; then
    local n
    for n in 11 12 13; do TARGETS+=("http://${LAB_NET_PREFIX}.$n:8000"); done
    TARGETS+=("http://${LAB_NET_PREFIX}.13:8001")  # app-d, beside app-c on node3
  fi
  [ "${#TARGETS[@]}" -gt 0 ] || die "no target apps"
  local t
  for t in "${TARGETS[@]}"; do check_target "$t"; done
  log "targets: ${TARGETS[*]}"
}

round_requests() {  # one round's lines "<concurrency> <endpoint> <url>", targets in turn
  local entry path conc reps i k=0
  for entry in "${MIX[@]}"; do
    read -r path conc reps <<<"$entry"
    for ((i = 0; i < conc * reps; i++)); do
      local p=${path/ITEM/$((RANDOM % 100))}
      printf '%s %s %s%s\n' "$conc" "$path" "${TARGETS[k % ${#TARGETS[@]}]%/}" "$p"
      k=$((k + 1))
    done
  done
}

send_round() {  # send_round <seconds left>: each endpoint's requests with its own concurrency
  local left=$1 entry path conc
  for entry in "${MIX[@]}"; do
    read -r path conc _ <<<"$entry"
    # curl prints "<endpoint> <status>" per request (000 = no answer within REQUEST_TIMEOUT).
    # timeout (in a process group of its own) kills xargs and its curls at the time budget.
    # In the background and waited for: a trapped signal ends `wait` at once (see on_signal).
    grep -F " $path " "$WORK/round" | awk '{print $3}' \
      | timeout --kill-after=5 "$left" xargs -r -P "$conc" -I{} \
          curl -s -o /dev/null --max-time "$REQUEST_TIMEOUT" -w "$path %{http_code}\n" {} \
      >>"$WORK/results" &
    CHILD=$!
    wait "$CHILD" || true
    CHILD=""
    left=$((DEADLINE - SECONDS))
    [ "$left" -gt 0 ] || return 0
  done
}

summary() {
  local total
  total=$(wc -l <"$WORK/results")
  echo "load: $total requests in ${SECONDS}s to ${#TARGETS[@]} app(s)"
  echo "status codes:"
  awk '{print $2}' "$WORK/results" | sort | uniq -c | awk '{printf "  %s %6d\n", $2, $1}'
  echo "per endpoint (status:count):"
  awk '{c[$1" "$2]++} END {for (k in c) print k, c[k]}' "$WORK/results" | sort \
    | awk '{e[$1] = e[$1] " " $2 ":" $3} END {for (k in e) printf "  %-16s%s\n", k, e[k]}' | sort
}

main() {
  parse_args "$@"
  resolve_targets
  DEADLINE=$((SECONDS + BUDGET))
  : >"$WORK/results"
  local round left
  for ((round = 1; round <= ROUNDS; round++)); do
    left=$((DEADLINE - SECONDS))
    [ "$left" -gt 0 ] || { log "time budget of ${BUDGET}s used up after $((round - 1)) round(s)"; break; }
    round_requests >"$WORK/round"
    send_round "$left"
    log "round $round/$ROUNDS: $(wc -l <"$WORK/results") requests sent, $(grep -vc ' [23][0-9][0-9]$' "$WORK/results" || true) not 2xx/3xx, ${SECONDS}s"
    if [ "$round" -lt "$ROUNDS" ] && [ "$PAUSE" -gt 0 ] && [ $((DEADLINE - SECONDS)) -gt "$PAUSE" ]; then
      sleep "$PAUSE"
    fi
  done
  summary
}

main "$@"
