#!/usr/bin/env bash
# scripts/bench's swarm section (issue 17, "Many hosts"):
#
#   swarm.sh   (BERTH: the binary; SWARM_DIR: a scratch dir; SWARM_IMAGE: the
#               busybox tarball; SWARM_REPLICAS, default 30; SWARM_REQ
#               requests for ab, default 3000)
#
# On one machine, a lab of three hosts (network namespaces with their own
# roots, a 3-member etcd, one agent each):
#   lab up        `berth lab hosts dc 3 --swarm` until all three are Ready
#   30 replicas   `service create --replicas 30` until `service ls` says 30/30
#   name          a container on h1 pings one just started on h0 by name,
#                 over the overlay (from the second `run` to the first reply)
#   mesh          requests per second with ab from h0's namespace to h1's
#                 published port: DNAT and VXLAN to three httpd tasks on
#                 three nodes; beside it the same page from a task directly
#   failover      a node's agent stopped (SIGSTOP): until its tasks run
#                 elsewhere (lease TTL 5 s, then the leader's next round)
#   lab down      `berth lab down` of the whole swarm
# No peer runs: docker's swarm needs a daemon per host and containerlab has
# no orchestrator; these are berth's own figures.
set -uo pipefail
B=${BERTH:?BERTH must name the berth binary}
dir=${SWARM_DIR:?}
R=${SWARM_REPLICAS:-30}
REQ=${SWARM_REQ:-3000}
export BERTH_ROOT=$dir/root BERTH_RUN=$dir/run
lab=benchdc
say() { printf '%s\n' "$*"; }
cleanup() {
  "$B" lab down "$lab" >/dev/null 2>&1
  rm -rf "$dir/root" "$dir/run"
}
trap cleanup EXIT
ms() { echo $(( $(date +%s%N) / 1000000 )); }
on() { local h=$1; shift; "$B" lab exec "$lab" "$h" "$@"; }
until_ok() { # TIMEOUT_S CMD... : polls every 20 ms
  local end=$(( $(ms) + $1 * 1000 )); shift
  while [ "$(ms)" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.02; done
  return 1
}

"$B" image import -c 'CMD ["sh"]' "${SWARM_IMAGE:?}" busybox:latest >/dev/null || { say "  swarm: no base image"; exit 1; }
t0=$(ms)
"$B" lab hosts "$lab" 3 --image busybox --swarm >/dev/null || { say "  swarm: lab hosts failed"; exit 1; }
ready() { [ "$(on h0 berth node ls | grep -c Ready)" = 3 ]; }
until_ok 30 ready || { say "  swarm: three nodes never ready"; exit 1; }
say "  lab up (3 hosts, 3 managers, etcd, agents):   $(( $(ms) - t0 )) ms"

t0=$(ms)
on h0 berth service create --name many --replicas "$R" busybox sleep 1d >/dev/null
full() { on h0 berth service ls | grep -q " $R/$R "; }
if until_ok 120 full; then say "  $R replicas running over 3 nodes:           $(( $(ms) - t0 )) ms"; else say "  $R replicas: not all running after 120 s"; fi
t0=$(ms)
on h0 berth service rm many >/dev/null
gone() { [ -z "$(on h0 berth ps -aq)" ] && [ -z "$(on h1 berth ps -aq)" ] && [ -z "$(on h2 berth ps -aq)" ]; }
until_ok 60 gone && say "  $R replicas removed from 3 nodes:            $(( $(ms) - t0 )) ms"

on h0 berth network create -d overlay --attachable onet >/dev/null
on h1 berth run -d --network onet --name b busybox sleep 1d >/dev/null
t0=$(ms)
on h0 berth run -d --network onet --name a busybox sleep 1d >/dev/null
t1=$(ms)
pinged() { on h1 berth exec b ping -c 1 -W 1 a; }
until_ok 10 pinged && say "  overlay name from another node answers:       $(( $(ms) - t1 )) ms after run returned ($(( t1 - t0 )) ms)"

page='mkdir -p /w; head -c 512 /dev/zero > /w/index.html; exec httpd -f -p 80 -h /w'
on h0 berth service create --name web --replicas 3 -p 8080:80 --network onet busybox sh -c "$page" >/dev/null
serving() { [ "$(on h0 berth service ps web | grep -c running)" = 3 ] && on h0 curl -s -o /dev/null --max-time 1 http://10.99.0.2:8080/; }
if command -v ab >/dev/null && until_ok 30 serving; then
  task=$(on h0 berth exec a sh -c 'getent hosts web.1 2>/dev/null || grep -w web.1 /etc/hosts' | awk '{ print $1; exit }')
  mesh=$(on h0 ab -q -n "$REQ" -c 8 http://10.99.0.2:8080/ 2>/dev/null | awk '/^Requests per second/ { print $4 }')
  direct=$(on h0 ab -q -n "$REQ" -c 8 "http://$task/" 2>/dev/null | awk '/^Requests per second/ { print $4 }')
  say "  routing mesh (h0 -> h1:8080 -> 3 nodes):      ${mesh:-?} req/s; one task directly ($task): ${direct:-?} req/s"
else
  say "  routing mesh: skipped (ab missing or service not serving)"
fi

agent=$(for p in /proc/[0-9]*; do
  { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qx "BERTH_ROOT=$BERTH_ROOT/labhosts/$lab/$lab-h2" || continue
  { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q ' agent' && basename "$p"
done | head -n1)
if [ -n "$agent" ]; then
  kill -STOP "$agent"
  t0=$(ms)
  moved() { ! on h0 berth service ps web | grep running | grep -q "$lab-h2" && [ "$(on h0 berth service ps web | grep -c running)" = 3 ]; }
  until_ok 30 moved && say "  node lost (agent stopped): tasks elsewhere:   $(( $(ms) - t0 )) ms"
  kill -CONT "$agent"
fi

t0=$(ms)
"$B" lab down "$lab" >/dev/null
say "  lab down (3 hosts, services, overlay, etcd):   $(( $(ms) - t0 )) ms"
