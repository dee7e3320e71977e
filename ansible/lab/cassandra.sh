#!/usr/bin/env bash
# The lab's Cassandra. Apache's distribution cannot be downloaded here, so this runs a real
# Cassandra from Maven Central instead: org.apache.cassandra:cassandra-all and its dependencies
# (fetched once with `mvn dependency:copy-dependencies` into $LAB_CACHE/cassandra), on the lab
# host's Java 17, inside the network namespace of the first host of the cassandra group (node2),
# so it listens on that host's address (192.168.58.12:9042) exactly where the cassandra role's
# unit would. Its cassandra.yaml is rendered from the role's template (cassandra-config.yml).
# Data and logs live in $LAB_STATE/cassandra (thrown away by down.sh).
#
# Usage: cassandra.sh start|stop|wait|status|nodetool ARGS...
#   start   fetch jars (cached), render the config, start (no-op when running), wait for CQL
#   stop    stop it (SIGTERM, then SIGKILL after a grace period)
#   wait    wait until CQL answers (LAB_CASSANDRA_WAIT seconds, default 180)
#   status  exit 0 when running and CQL answers
#   nodetool ARGS...
#           Cassandra's nodetool (its class, from the same jars) against JMX on 127.0.0.1:7199
#           of the host's namespace, e.g. nodetool -u cassandra_jmx --password-file
#           $LAB_STATE/cassandra/conf/jmxremote.password status
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$LAB_DIR/../.." && pwd)
# shellcheck source=lib/common.sh
. "$LAB_DIR/lib/common.sh"
# shellcheck source=lib/host.sh
. "$LAB_DIR/lib/host.sh"

# Same release as the cassandra role's default (cassandra_version), unless overridden.
: "${LAB_CASSANDRA_VERSION:=$(sed -n 's/^cassandra_version: *"\{0,1\}\([0-9.]*\)"\{0,1\}.*/\1/p' \
  "$ROOT/ansible/roles/cassandra/defaults/main.yml")}"
: "${LAB_CASSANDRA_HOST:=node2}"             # inventory host whose namespace and address it uses
: "${LAB_CASSANDRA_HEAP:=768m}"
: "${LAB_CASSANDRA_WAIT:=180}"
: "${LAB_CASSANDRA_JAVA_HOME:=}"             # a Java 17; found under /usr/lib/jvm when empty
[[ $LAB_CASSANDRA_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
  die "no Cassandra version (cassandra_version in roles/cassandra/defaults/main.yml or LAB_CASSANDRA_VERSION)"
CASSANDRA_CACHE="$LAB_CACHE/cassandra/$LAB_CASSANDRA_VERSION"
CASSANDRA_STATE="$LAB_STATE/cassandra"
CASSANDRA_ADDR=$(lab_addr "$LAB_CASSANDRA_HOST")
CQL_PORT=9042
WORK=""

cleanup() { [[ -z $WORK ]] || rm -rf "$WORK"; }
trap cleanup EXIT

# Asked from inside the host's network namespace, as the host itself would: its firewall (role
# firewall) accepts CQL from the cluster's hosts only, not from the bridge.
cql_answers() {
  ip netns exec "$(host_netns "$LAB_CASSANDRA_HOST")" \
    timeout 2 bash -c "exec 3<>/dev/tcp/$CASSANDRA_ADDR/$CQL_PORT" 2>/dev/null
}

# The network namespace of the Cassandra host, which must exist (up.sh makes it).
cassandra_netns() {
  local netns
  netns=$(host_netns "$LAB_CASSANDRA_HOST")
  [[ -e /run/netns/$netns ]] || die "network namespace $netns missing: run ansible/lab/up.sh first"
  echo "$netns"
}

find_java17() {
  local j
  if [[ -n $LAB_CASSANDRA_JAVA_HOME ]]; then echo "$LAB_CASSANDRA_JAVA_HOME/bin/java"; return; fi
  for j in /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/temurin-17*/bin/java; do
    [[ -x $j ]] && { echo "$j"; return; }
  done
  log "no Java 17 under /usr/lib/jvm; installing openjdk-17-jre-headless" >&2
  apt_get install openjdk-17-jre-headless >&2
  for j in /usr/lib/jvm/java-17-openjdk-*/bin/java; do [[ -x $j ]] && { echo "$j"; return; }; done
  die "no Java 17 found (Cassandra 5.0 runs on Java 11 or 17 only); set LAB_CASSANDRA_JAVA_HOME"
}

fetch_jars() {
  if [[ -f $CASSANDRA_CACHE/lib/.complete ]]; then
    log "cassandra-all $LAB_CASSANDRA_VERSION: $(find "$CASSANDRA_CACHE/lib" -name '*.jar' | wc -l) jars cached"
    return 0
  fi
  command -v mvn >/dev/null || apt_get install maven
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/lab-cassandra.XXXXXX")
  cat >"$WORK/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lab.invalid</groupId>
  <artifactId>lab-cassandra</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$LAB_CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
  log "fetching cassandra-all $LAB_CASSANDRA_VERSION and its dependencies (Maven Central)"
  rm -rf "${CASSANDRA_CACHE:?}/lib" "$CASSANDRA_CACHE/lib.new"
  mkdir -p "$CASSANDRA_CACHE"
  mvn -q -B -f "$WORK/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$CASSANDRA_CACHE/lib.new" >"$WORK/mvn.log" 2>&1 ||
    { tail -n 30 "$WORK/mvn.log" >&2; die "mvn dependency:copy-dependencies failed"; }
  mv "$CASSANDRA_CACHE/lib.new" "$CASSANDRA_CACHE/lib"
  touch "$CASSANDRA_CACHE/lib/.complete"
  log "cached $(find "$CASSANDRA_CACHE/lib" -name '*.jar' | wc -l) jars in $CASSANDRA_CACHE/lib"
}

# cassandra.yaml and cassandra-rackdc.properties come from the role's templates, rendered by the
# role's own tasks with the lab inventory; only the folders are the lab's.
render_config() {
  local venv_bin
  venv_bin=$("$ROOT/scripts/venv.sh" | tail -1)
  mkdir -p "$CASSANDRA_STATE/conf" "$CASSANDRA_STATE/data" "$CASSANDRA_STATE/logs"
  (cd "$ROOT/ansible" && ANSIBLE_CONFIG="$ROOT/ansible/ansible.cfg" \
    "$venv_bin/ansible-playbook" -i inventories/lab/hosts.yml "$LAB_DIR/cassandra-config.yml" \
    -e "cassandra_config_dir=$CASSANDRA_STATE/conf" -e "cassandra_data_dir=$CASSANDRA_STATE/data" \
    >"$CASSANDRA_STATE/render.log" 2>&1) ||
    { tail -n 30 "$CASSANDRA_STATE/render.log" >&2; die "rendering cassandra.yaml failed"; }
  cat >"$CASSANDRA_STATE/conf/logback.xml" <<'XML'
<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level [%thread] %logger{20} - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
XML
  log "config rendered from etc/cassandra/*.j2 into $CASSANDRA_STATE/conf"
}

# JVM options: the essentials of Cassandra's jvm-server.options and jvm17-server.options
# (G1, and the module exports/opens Cassandra needs on Java 17). JMX only on 127.0.0.1 of node2's
# namespace: cassandra.jmx.local.port and authenticate=false, as cassandra-env.sh sets them with
# LOCAL_JMX=yes; last, as cassandra-env.sh appends the unit's JVM_EXTRA_OPTS, the role's options
# that turn JMX's password on (jmx.options, from cassandra_jmx_jvm_options).
jvm_options() {
  local conf=$CASSANDRA_STATE/conf m
  printf '%s\n' "-Xms$LAB_CASSANDRA_HEAP" "-Xmx$LAB_CASSANDRA_HEAP" -XX:+UseG1GC \
    -XX:+ParallelRefProcEnabled -XX:MaxGCPauseMillis=300 -Xss256k -XX:+ExitOnOutOfMemoryError
  printf '%s\n' -Djava.net.preferIPv4Stack=true -Djdk.attach.allowAttachSelf=true \
    -Dio.netty.tryReflectionSetAccessible=true \
    "-Dcassandra.config=file://$conf/cassandra.yaml" \
    "-Dcassandra-rackdc.properties=file://$conf/cassandra-rackdc.properties" \
    "-Dlogback.configurationFile=$conf/logback.xml" \
    "-Dcassandra.storagedir=$CASSANDRA_STATE/data" \
    "-Dcassandra.logdir=$CASSANDRA_STATE/logs" \
    -Dcassandra-foreground=yes -Dcassandra.jmx.local.port=7199 \
    -Dcom.sun.management.jmxremote.authenticate=false \
    -Dcassandra.skip_wait_for_gossip_to_settle=0
  for m in java.base/jdk.internal.misc java.management.rmi/com.sun.jmx.remote.internal.rmi \
    java.rmi/sun.rmi.registry java.rmi/sun.rmi.server java.sql/java.sql java.base/java.lang.ref \
    jdk.unsupported/sun.misc jdk.compiler/com.sun.tools.javac.file jdk.attach/sun.tools.attach; do
    printf -- '--add-exports\n%s=ALL-UNNAMED\n' "$m"
  done
  for m in java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref \
    java.base/jdk.internal.reflect java.base/jdk.internal.math java.base/jdk.internal.module \
    java.base/jdk.internal.util.jar jdk.management/com.sun.management.internal java.base/sun.nio.ch \
    java.base/java.io java.base/java.lang.reflect jdk.compiler/com.sun.tools.javac \
    java.base/java.lang java.base/java.util; do
    printf -- '--add-opens\n%s=ALL-UNNAMED\n' "$m"
  done
  cat "$conf/jmx.options"
}

wait_cql() {
  local deadline=$((SECONDS + LAB_CASSANDRA_WAIT)) start=$SECONDS
  until cql_answers; do
    daemon_alive cassandra ||
      { tail -n 40 "$LAB_STATE/cassandra.log" >&2 2>/dev/null; die "Cassandra exited (log: $LAB_STATE/cassandra.log)"; }
    ((SECONDS < deadline)) ||
      { tail -n 40 "$LAB_STATE/cassandra.log" >&2; die "CQL did not answer on $CASSANDRA_ADDR:$CQL_PORT within ${LAB_CASSANDRA_WAIT}s"; }
    sleep 2
  done
  log "CQL answers on $CASSANDRA_ADDR:$CQL_PORT (waited $((SECONDS - start)) s)"
}

start_cassandra() {
  local netns java opts=() main_class=org.apache.cassandra.service.CassandraDaemon
  netns=$(cassandra_netns)
  if daemon_alive cassandra; then
    log "Cassandra already running (pid $(<"$(daemon_dir)/cassandra.pid"))"
    return 0
  fi
  java=$(find_java17)
  fetch_jars
  render_config
  mapfile -t opts < <(jvm_options)
  log "starting Cassandra $LAB_CASSANDRA_VERSION in $netns on $CASSANDRA_ADDR:$CQL_PORT ($java)"
  # The main class names the process (ip netns exec execs java): start_daemon's mark for it.
  start_daemon cassandra "$main_class" ip netns exec "$netns" "$java" "${opts[@]}" \
    -cp "$CASSANDRA_STATE/conf:$CASSANDRA_CACHE/lib/*" "$main_class"
}

# What the release's bin/nodetool runs, with the lab's Java and jars and those exports of the
# release's jvm17-clients.options that nodetool needs; its exit status is nodetool's.
run_nodetool() {
  local netns java
  netns=$(cassandra_netns)
  [[ -f $CASSANDRA_CACHE/lib/.complete ]] || die "no cassandra-all jars in $CASSANDRA_CACHE: run cassandra.sh start first"
  java=$(find_java17)
  ip netns exec "$netns" "$java" -Xmx128m -Dlogback.configurationFile="$CASSANDRA_STATE/conf/logback.xml" \
    --add-exports=java.base/sun.nio.ch=ALL-UNNAMED --add-exports=java.base/jdk.internal.ref=ALL-UNNAMED \
    --add-exports=java.base/jdk.internal.misc=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
    -cp "$CASSANDRA_CACHE/lib/*" org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p 7199 "$@"
}

main() {
  require_root
  mkdir -p "$LAB_STATE"
  case "${1:-}" in
    start)
      run_stage "cassandra start" start_cassandra
      run_stage "cassandra wait" wait_cql
      ;;
    stop) run_stage "cassandra stop" stop_daemon cassandra ;;
    wait) run_stage "cassandra wait" wait_cql ;;
    status) daemon_alive cassandra && cql_answers ;;
    nodetool) shift; run_nodetool "$@" ;;
    *) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"
