#!/usr/bin/env bash
# The project's test command (`make test`; CI runs it through .ci/run). On a fresh Debian machine
# it installs what it needs, then runs and times each stage:
#   1 maven      mvn -B verify: unit tests and the packaged jar's integration tests; one short run of
#                the benchmark's SDK floor (scripts/SpanCostFloor.java) against the jar; the
#                benchmarks' experiment patches each applied to a copy and compiled
#   2 lint       ansible-lint (production profile), argument specs = defaults, role READMEs =
#                argument specs, lab versions = role defaults, site.yml's placement play knows every
#                unit, ShellCheck, and ansible-playbook --syntax-check (scripts/lint.sh)
#   3 artifacts  Jaeger, Collector and Prometheus built from the Go module proxy (cached)
#   4 lab        lab-down first (what a killed run left), lab-up, deploy (--diff), deploy again and
#                a configure-only run (both must report changed=0 everywhere); not run when the
#                artifacts stage failed, and verify not run when it failed
#   5 verify     pytest on the lab: units, users, ports, /chain, log correlation, reboot,
#                the tracing pipeline in all four modes, SPM and its on/off switch (ansible/tests)
#                the defences: firewall, Cassandra and Prometheus logins, memory bounds, log modes,
#                a flood, no secret in the first deploy's --diff log
#   6 lab-down   always, pass or fail
#   7 vagrant    README's `vagrant up` for real, LXC provider (vagrant/lxc/vagrant-test.sh): three
#                containers provisioned with the vagrant inventory, /chain traced to jaeger-query,
#                destroyed, nothing left behind; after lab-down, so the two never share the CPUs;
#                not run when the artifacts stage failed (it deploys the same archives)
# Prints "<stage>: N passed, N failed" per stage, then the total, and exits non-zero on failure.
# TEST_STAGES="maven lint" limits the run to the named stages (lab-down always runs if lab ran).
# TEST_TIME_LIMIT (seconds, default 5100 = 85 min; 0 = none): past it the run stops as on a TERM
# (the stage running stopped, the lab taken down, the summary printed), so that a stage that hangs
# still cleans up before an outer limit (CI's 90 minutes) kills the run without a word.
set -uo pipefail
ALL_STAGES="maven lint artifacts lab verify vagrant"
if (($# > 0)); then
  echo "test.sh takes no arguments (got: $*); TEST_STAGES=\"<stages>\" limits the run to some of: $ALL_STAGES" >&2
  exit 2
fi
STAGES=${TEST_STAGES:-$ALL_STAGES}  # unset or empty: every stage
for stage in $STAGES; do
  [[ " $ALL_STAGES " == *" $stage "* ]] ||
    { echo "TEST_STAGES: unknown stage '$stage'; the stages are: $ALL_STAGES" >&2; exit 2; }
done
TIME_LIMIT=${TEST_TIME_LIMIT:-5100}
[[ $TIME_LIMIT =~ ^[0-9]+$ ]] ||
  { echo "TEST_TIME_LIMIT: whole seconds expected (0 = no limit), got '$TIME_LIMIT'" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
# shellcheck source=../ansible/lab/lab.env
. ansible/lab/lab.env
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh  # start_sink
# shellcheck source=scripts/session-lib.sh
. scripts/session-lib.sh  # stop_session
LOGS="$LAB_CACHE/test-logs"
mkdir -p "$LOGS"
declare -a SUMMARY=()
TOTAL_PASSED=0 TOTAL_FAILED=0 LAB_STARTED=0
T0=$SECONDS
STAGE=""  # the stage running, named in the summary if a signal stops the run
# The console, for on_signal: a trap runs inside whatever command was running, and that may be
# one whose output goes to a log file (lab_step).
exec 3>&1 4>&2
CHILD=""  # the session of the command running (see run)
LAUNCHING=""  # set while run forks its command
# Seconds a stopped command gets between TERM and KILL (see stop_session). The vagrant stage needs
# more: on TERM, vagrant-test.sh destroys its containers and undoes its host set-up (about 1-2 min).
STOP_GRACE=30
SINK_PID=""  # the OTLP sink of bench_floor_smoke while it runs
WATCHDOG=""  # the session that sends ALRM at TIME_LIMIT (see start_watchdog)

say() { STAGE=$*; printf '\n=== %s [%s]\n' "$*" "$(date -u +%H:%M:%S)"; }

# run <command...>: runs a stage's long command in a session of its own and waits for it.
# Bash runs a trap only after the command in the foreground has returned, so a TERM sent to this
# script alone during pytest took effect 11 minutes later (and a KILL after the TERM would have
# left the lab up). `wait` returns at once on a trapped signal, and the trap stops the session,
# with everything the command started, before taking the lab down. The session, not only the
# process group: a command may start processes in groups of their own (GNU `timeout` without
# --foreground does, as in load.sh). Whatever is left in the session when the command ends (say,
# a command a test's timeout gave up on) is stopped too. Not reached: what detaches into a session
# of its own, as the lab's daemons do on purpose, and Ansible's SSH masters (ControlPersist),
# which the lab's down.sh stops.
run() {
  local rc=0
  LAUNCHING=1  # for on_signal, should a signal come between the fork and CHILD=$!
  setsid "$@" 3>&- 4>&- &  # (the lab's daemons must not hold the console open)
  CHILD=$!
  LAUNCHING=""
  wait "$CHILD" || rc=$?
  stop_session "$CHILD" "$STOP_GRACE"
  CHILD=""
  return "$rc"
}

record() {  # record <stage> <passed> <failed> <seconds> [<skipped>]
  local skipped=""
  if [ "${5:-0}" -gt 0 ]; then skipped=", $5 skipped"; fi
  SUMMARY+=("$(printf '%-10s %s passed, %s failed%s (%ss)' "$1:" "$2" "$3" "$skipped" "$4")")
  TOTAL_PASSED=$((TOTAL_PASSED + $2)); TOTAL_FAILED=$((TOTAL_FAILED + $3))
}

wanted() { [[ " $STAGES " == *" $1 "* ]]; }

stage_prerequisites() {
  say "prerequisites (apt packages, JDK 21+, Python venv)"
  export DEBIAN_FRONTEND=noninteractive
  # apt-get waits for the lock of another apt run (unattended-upgrades, say), as the lab's does.
  local missing=() apt=(apt-get -o "DPkg::Lock::Timeout=$LAB_APT_LOCK_TIMEOUT")
  # procps: pkill and ps, with which stop_session stops a stage's processes.
  for pkg in maven curl git python3 procps; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    run "${apt[@]}" update -qq && run "${apt[@]}" install -y -qq "${missing[@]}" >/dev/null || return 1
  fi
  if ! JAVA_HOME=$(scripts/java-home.sh 2>/dev/null); then
    # Debian 13 packages a JDK 21 and 25; Debian 12 none (its machines need one installed before).
    local jdk
    run "${apt[@]}" update -qq || return 1
    for jdk in openjdk-25-jdk-headless openjdk-21-jdk-headless; do
      if [ -n "$(apt-cache policy "$jdk" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)"')" ]; then
        echo "no JDK 21+: installing $jdk"
        run "${apt[@]}" install -y -qq "$jdk" >/dev/null || return 1
        break
      fi
    done
    JAVA_HOME=$(scripts/java-home.sh) || return 1
  fi
  export JAVA_HOME
  echo "JAVA_HOME=$JAVA_HOME"
  run scripts/venv.sh >"$LOGS/venv.out" || return 1
  VENV_BIN=$(tail -1 "$LOGS/venv.out")
  echo "venv: $VENV_BIN"
}

# Passed, failed and skipped test counts of JUnit XML reports (Surefire, Failsafe, pytest's
# --junitxml): "<passed> <failed> <skipped>". Skipped tests count as neither passed nor failed and
# are named on stderr with their reason, so that a check that did not run shows in the output; a
# missing or unreadable report counts as 1 failure.
junit_counts() {  # junit_counts <report>...
  python3 - "$@" <<'PY'
import sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        failed += 1
        continue
    for suite in [root] if root.tag == "testsuite" else list(root):
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        passed += int(suite.get("tests", 0)) - int(suite.get("skipped", 0)) - bad
        failed += bad
        skipped += int(suite.get("skipped", 0))
        for case in suite.iter("testcase"):
            skip = case.find("skipped")
            if skip is not None:
                reason = " ".join((skip.get("message") or skip.text or "").split())
                print(f"skipped: {case.get('classname')}.{case.get('name')}: {reason}", file=sys.stderr)
print(passed, failed, skipped)
PY
}

# The benchmark's SDK floor (scripts/SpanCostFloor.java) runs on the jar's classes. Run it once,
# briefly, so that an API change or a broken export shows here rather than at the next benchmark:
# four figures printed and spans received by the sink (how fast is the benchmark's business: with
# so few spans, CPU time in 10 ms ticks may well round to 0).
bench_floor_smoke() {
  local port=18298 out rc=0
  start_sink "$port" "$LOGS/floor-sink.err" || return 1
  run "$JAVA_HOME/bin/java" -cp app/target/app.jar scripts/SpanCostFloor.java \
    "http://127.0.0.1:$port/v1/traces" "http://127.0.0.1:$((port + 1))/v1/traces" 1024 1 \
    >"$LOGS/floor.out" 2>"$LOGS/floor.err" || rc=$?
  out=$(<"$LOGS/floor.out")
  kill "$SINK_PID"
  wait "$SINK_PID" || true
  SINK_PID=""
  echo "SpanCostFloor (smoke run, µs per span): $(tr '\n' ' ' <<<"$out")$(tail -1 "$LOGS/floor-sink.err")"
  [ "$rc" -eq 0 ] &&
    [ "$(awk '$1 ~ /^(unsampled|recorded|exported|instrumented)$/ && $2 ~ /^[0-9]+\.[0-9]$/' <<<"$out" | wc -l)" -eq 4 ] &&
    grep -Eq "^otlp-sink: [1-9][0-9]* export requests" "$LOGS/floor-sink.err"
}

# Two benchmarks compare the service with a patched copy of it (scripts/experiments/*.patch, built by
# scripts/experiment-jar.sh); check that each patch still applies to the working tree and compiles,
# so that a change to the class it patches shows here rather than at the next benchmark.
# The copy is a folder of the logs' (emptied before each patch), so that a run stopped meanwhile
# leaves nothing in /tmp and the next run starts clean.
bench_experiment_smoke() {
  local patch copy="$LOGS/experiment-copy" rc=0
  : >"$LOGS/bench-experiment.log"
  for patch in scripts/experiments/*.patch; do
    rm -rf "$copy"
    if run scripts/experiment-jar.sh "$patch" "$copy" --compile-only >>"$LOGS/bench-experiment.log" 2>&1; then
      echo "bench experiment patch $patch: applies and compiles"
    else
      echo "bench experiment patch $patch: does not apply or compile (see $LOGS/bench-experiment.log)"
      rc=1
    fi
  done
  rm -rf "$copy"
  return "$rc"
}

stage_maven() {
  say "1 maven: mvn -B verify, and a smoke run of the benchmark's SDK floor"
  local start=$SECONDS rc=0
  rm -rf app/target/surefire-reports app/target/failsafe-reports
  run scripts/build-app.sh verify >"$LOGS/maven.log" 2>&1 || rc=$?
  grep -E "Tests run:|BUILD|ERROR\]" "$LOGS/maven.log" | tail -15
  # No failsafe report when a unit test failed (Maven stops before the integration tests): the
  # pattern must then expand to nothing, not count as an unreadable report.
  read -r passed failed skipped < <(shopt -s nullglob
                                    junit_counts app/target/surefire-reports/TEST-*.xml \
                                      app/target/failsafe-reports/TEST-*.xml)
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi  # build broke outside the tests
  if [ "$rc" -eq 0 ]; then
    if bench_floor_smoke; then passed=$((passed + 1)); else failed=$((failed + 1)); tail -20 "$LOGS/floor.err"; fi
    if bench_experiment_smoke; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  fi
  record maven "$passed" "$failed" $((SECONDS - start)) "$skipped"
}

stage_lint() {
  say "2 lint: ansible-lint (production) + syntax check"
  local start=$SECONDS
  if run scripts/lint.sh; then record lint 1 0 $((SECONDS - start)); else record lint 0 1 $((SECONDS - start)); fi
}

stage_artifacts() {
  say "3 artifacts: Jaeger, Collector, Prometheus from the Go module proxy"
  local start=$SECONDS
  if run ansible/lab/artifacts/build.sh; then record artifacts 1 0 $((SECONDS - start))
  else record artifacts 0 1 $((SECONDS - start)); return 1; fi
}

# lab_step <log> <command...>: one counted step of stage_lab (its passed/failed); prints the
# PLAY RECAP of the log when the step passes and the end of the log when it fails.
lab_step() {
  local log=$1; shift
  if run "$@" >"$log" 2>&1; then
    passed=$((passed + 1)); grep -A5 "PLAY RECAP" "$log" || true
  else
    failed=$((failed + 1)); tail -60 "$log"; return 1
  fi
}

stage_lab() {
  say "4 lab: up, deploy, deploy again (idempotence), a configure-only run (--tags app_configure)"
  local start=$SECONDS passed=0 failed=0
  LAB_STARTED=1
  # down.sh first (it does nothing when nothing is up): a run killed before its lab-down leaves
  # host trees mounted (already deployed), namespaces, helper daemons and $LAB_STATE, which up.sh
  # would take for a running lab. What it removes is printed (a clean machine prints nothing).
  if ! run ansible/lab/down.sh >"$LOGS/lab-down-first.log" 2>&1; then
    failed=$((failed + 1)); tail -30 "$LOGS/lab-down-first.log"
  else
    grep -E "WARNING|stopp|unmounted|removed|restored" "$LOGS/lab-down-first.log" || true
    if run ansible/lab/up.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  fi
  # --diff: every template is new, so the log shows each whole file; test_secrets.py checks that
  # no generated secret is among them.
  if [ "$failed" -eq 0 ] && lab_step "$LOGS/deploy.log" ansible/lab/deploy.sh --diff; then
    lab_step "$LOGS/idempotence.log" ansible/lab/idempotence.sh || true
    # The README's configure-only run must find the release too, and change nothing.
    lab_step "$LOGS/idempotence-app-configure.log" ansible/lab/idempotence.sh --tags app_configure || true
  fi
  record lab "$passed" "$failed" $((SECONDS - start))
  [ "$failed" -eq 0 ]
}

stage_verify() {
  say "5 verify: pytest on the lab (ansible/tests)"
  local start=$SECONDS rc=0 passed failed skipped
  rm -f "$LOGS/pytest.xml"  # a run that writes none (pytest could not start) must not count an old one
  local deploys_before  # the lab's deploys.log (ansible/lab/deploy.sh) has one line per deploy
  deploys_before=$(wc -l 2>/dev/null <"$LAB_STATE/deploys.log") || deploys_before=0
  # LAB_SWITCH_TEST: also switch spm_enabled off and on again (one whole deploy, two of the SPM roles; ~5 min)
  run env -C ansible/tests LAB_SWITCH_TEST="${LAB_SWITCH_TEST:-1}" \
    LAB_DEPLOY_LOGS="$LOGS/deploy.log:$LOGS/idempotence.log:$LOGS/idempotence-app-configure.log" \
    PYTHONDONTWRITEBYTECODE=1 "$VENV_BIN/python" -m pytest -v -p no:cacheprovider \
    --basetemp="$LOGS/pytest-tmp" --junitxml="$LOGS/pytest.xml" . || rc=$?
  read -r passed failed skipped < <(junit_counts "$LOGS/pytest.xml")
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
  tail -n +$((deploys_before + 1)) "$LAB_STATE/deploys.log" 2>/dev/null |
    awk '{n++; s += $2} END {printf "the tests ran ansible/lab/deploy.sh %d times, %d s in all\n", n, s}'
  record verify "$passed" "$failed" $((SECONDS - start)) "$skipped"
}

stage_lab_down() {
  say "6 lab-down"
  local start=$SECONDS
  local rc=0
  # In a session of its own, as every long step: a signal meanwhile stops it, and on_signal runs
  # it again with signals ignored (LAB_STARTED is cleared only once it has returned).
  run ansible/lab/down.sh || rc=$?
  LAB_STARTED=0  # taken down once, whatever the outcome (finish must not do it again)
  if [ "$rc" -eq 0 ]; then record lab-down 1 0 $((SECONDS - start))
  else record lab-down 0 1 $((SECONDS - start)); fi
}

stage_vagrant() {
  say "7 vagrant: README's vagrant up with the LXC provider (make vagrant-test)"
  local start=$SECONDS rc=0
  STOP_GRACE=600  # above its tear-down's bounds (30 s for the step, 300 s for vagrant destroy, ...)
  run vagrant/lxc/vagrant-test.sh >"$LOGS/vagrant-test.log" 2>&1 || rc=$?
  STOP_GRACE=30
  # On success: its play recap, the trace it found, its step times and verdict; else the log's end.
  if [ "$rc" -eq 0 ]; then
    grep -A4 "PLAY RECAP" "$LOGS/vagrant-test.log" || true
    grep -E "in jaeger-query: |nothing left behind: " "$LOGS/vagrant-test.log" || true
    sed -n '/^host set-up /,$p' "$LOGS/vagrant-test.log"
    record vagrant 1 0 $((SECONDS - start))
  else
    tail -60 "$LOGS/vagrant-test.log"
    record vagrant 0 1 $((SECONDS - start))
  fi
}

# A session of its own (setsid), so that finish stops its sleep with it; its output goes nowhere
# (it must not hold the console's pipe open after the run).
start_watchdog() {
  ((TIME_LIMIT > 0)) || return 0
  # shellcheck disable=SC2016  # $1 and $2 are the inner shell's arguments
  setsid bash -c 'sleep "$1" && kill -ALRM "$2"' watchdog "$TIME_LIMIT" "$$" </dev/null >/dev/null 2>&1 3>&- 4>&- &
  WATCHDOG=$!
}

finish() {
  if [ -n "$WATCHDOG" ]; then stop_session "$WATCHDOG" 5; WATCHDOG=""; fi
  [ "$LAB_STARTED" -eq 1 ] && stage_lab_down
  echo
  echo "=== summary"
  printf '%s\n' "${SUMMARY[@]}"
  echo "total time: $((SECONDS - T0))s"
  echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
  [ "$TOTAL_FAILED" -eq 0 ] && [ "$TOTAL_PASSED" -gt 0 ]
}
# on_signal <name> <number>: stops the command running, records the interrupted stage as a
# failure, takes the lab down if it was started, prints the summary, exits 128 + <number>.
on_signal() {
  trap '' INT TERM HUP ALRM  # a second Ctrl-C must not cut the clean-up short
  exec 1>&3 2>&4
  local cause="SIG$1" label="interrupted (SIG$1)"
  if [ "$1" = ALRM ]; then cause="the time limit (TEST_TIME_LIMIT=${TIME_LIMIT}s) passed"; label="time limit"; fi
  echo "test.sh: $cause during: ${STAGE:-start-up}; stopping it and cleaning up" >&2
  # A signal right after run's fork finds CHILD empty; $! is the new session then. (Right before
  # the fork, $! is an earlier command's session, long ended: stop_session finds nothing there.)
  if [ -z "$CHILD" ] && [ -n "$LAUNCHING" ]; then CHILD=$!; fi
  if [ -n "$CHILD" ]; then
    stop_session "$CHILD" "$STOP_GRACE"
    wait "$CHILD" 2>/dev/null
  fi
  [ -z "$SINK_PID" ] || kill "$SINK_PID" 2>/dev/null
  record "$label" 0 1 $((SECONDS - T0))
  finish
  exit $((128 + $2))
}
trap 'on_signal INT 2' INT
trap 'on_signal TERM 15' TERM
trap 'on_signal HUP 1' HUP
trap 'on_signal ALRM 14' ALRM
start_watchdog

if ! stage_prerequisites; then
  record prerequisites 0 1 $((SECONDS - T0))
  finish; exit 1
fi
wanted maven && stage_maven
wanted lint && stage_lint
if wanted artifacts && ! stage_artifacts; then
  echo "the lab and vagrant up need the artifacts: lab, verify and vagrant not run (counted once, as the artifacts' failure)"
else
  if wanted lab; then
    if stage_lab; then
      wanted verify && stage_verify
    elif wanted verify; then
      echo "the lab stage failed: verify not run (counted once, as the lab's failure)"
    fi
  elif wanted verify; then
    stage_verify
  fi
  [ "$LAB_STARTED" -eq 0 ] || stage_lab_down
  wanted vagrant && stage_vagrant
fi
finish
