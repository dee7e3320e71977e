#!/usr/bin/env bash
# Sends one GET /chain with a known W3C traceparent and prints the Jaeger UI address of that
# trace, once jaeger-query returns it (as the original demo's trace.sh: one request you can find).
#
# Usage: scripts/trace.sh [-n] [-w SECONDS] [APP_URL [JAEGER_URL]]
#   APP_URL     base URL of the app whose /chain starts the trace (default http://192.168.56.11:8000,
#               app-a on the Vagrant VMs; the lab's is http://192.168.58.11:8000)
#   JAEGER_URL  base URL of jaeger-query (default: APP_URL's host on port 16686)
#   -n          a new random trace id instead of the fixed one (repeated requests with the fixed id
#               add their spans to the same trace)
#   -w SECONDS  how long to wait for jaeger-query to return the whole trace (default 60; 0: do not
#               wait; else more than 5); the trace counts as whole once its span count has held
#               for 5 s
#   TRACE_ID    environment: the 32 hex digits to use instead of the fixed id
# Prints the /chain answer, then "trace <id>: <n> spans of <services>" and the UI URL. Exits 1
# when /chain fails or the trace does not show up in time, 2 on a bad argument.
set -euo pipefail

FIXED_TRACE_ID=4bf92f3577b34da6a3ce929d0e0e4736   # the W3C Trace Context specification's example
WAIT=60
SETTLE=5
NEW=0

die() { printf 'trace.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
bad_usage() { printf 'trace.sh: %s\n' "$*" >&2; usage >&2; exit 2; }

while getopts ":nw:h" opt; do
  case $opt in
    n) NEW=1 ;;
    w) WAIT=$OPTARG ;;
    h) usage; exit 0 ;;
    :) bad_usage "-$OPTARG needs a value" ;;
    *) bad_usage "unknown option -$OPTARG" ;;
  esac
done
shift $((OPTIND - 1))
(($# <= 2)) || bad_usage "at most APP_URL and JAEGER_URL after the options, got: $*"
if ! [[ $WAIT =~ ^[0-9]{1,4}$ ]] || ((WAIT > 0 && WAIT <= SETTLE)); then
  bad_usage "-w takes 0 (do not wait) or $((SETTLE + 1))..9999 seconds, got $WAIT"
fi
URL_FORM='^https?://([^/:@[:space:]]+|\[[^]]+\])(:[0-9]+)?$'
APP_URL=${1:-http://192.168.56.11:8000}
APP_URL=${APP_URL%/}
[[ $APP_URL =~ $URL_FORM ]] || bad_usage "APP_URL must be like http://host:port, got $APP_URL"
JAEGER_URL=${2:-$(sed -E 's#^(https?://([^/:]+|\[[^]]+\])).*#\1#' <<<"$APP_URL"):16686}
JAEGER_URL=${JAEGER_URL%/}
[[ $JAEGER_URL =~ $URL_FORM ]] || bad_usage "JAEGER_URL must be like http://host:port, got $JAEGER_URL"

if ((NEW)); then
  TRACE_ID=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
else
  TRACE_ID=${TRACE_ID:-$FIXED_TRACE_ID}
fi
[[ $TRACE_ID =~ ^[0-9a-f]{32}$ && $TRACE_ID != 00000000000000000000000000000000 ]] ||
  die "TRACE_ID must be 32 lower-case hex digits, not all zero; got $TRACE_ID"
PARENT_ID=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

echo "GET $APP_URL/chain  traceparent: 00-$TRACE_ID-$PARENT_ID-01"
curl -fsS --max-time 60 -H "traceparent: 00-$TRACE_ID-$PARENT_ID-01" "$APP_URL/chain" ||
  die "GET $APP_URL/chain failed"
echo

# jaeger-query's HTTP API (the UI's own) returns the trace once spans of it are stored. Each
# service exports its spans in its own batches, so the trace is taken as complete once its span
# count has not changed for SETTLE seconds (longer than the apps' batch delay, 1 s by default).
summary="" spans=0 changed=$SECONDS
deadline=$((SECONDS + WAIT))
while ((WAIT > 0)); do
  if body=$(curl -fsS --max-time 10 "$JAEGER_URL/api/traces/$TRACE_ID" 2>/dev/null); then
    now=$(python3 -c '
import json, sys
data = json.load(sys.stdin).get("data") or []
if data:
    trace = data[0]
    services = sorted({p["serviceName"] for p in trace["processes"].values()})
    print(len(trace["spans"]), "spans of", ", ".join(services))' <<<"$body")
    if [[ -n $now && ${now%% *} -ne $spans ]]; then spans=${now%% *} summary=$now changed=$SECONDS; fi
  fi
  if ((spans > 0 && SECONDS - changed >= SETTLE)); then
    echo "trace $TRACE_ID: $summary"
    break
  fi
  ((SECONDS < deadline)) || die "trace $TRACE_ID not complete in jaeger-query at $JAEGER_URL after ${WAIT}s (${summary:-no spans})"
  sleep 1
done
echo "$JAEGER_URL/trace/$TRACE_ID"
