#!/usr/bin/env bash
# scripts/bench's checkpoint section (issue 19, "Figures"):
#
#   checkpoint.sh   (BERTH: the binary; CP_DIR: a scratch dir; CP_IMAGE: the
#                    busybox tarball; CP_N rounds, default 3)
#
#   memory    a container holding 10 MB and then 200 MB of anonymous memory
#             (a shell variable of that size): `checkpoint create` (which
#             stops it) and `start --checkpoint`, CP_N rounds each
#   migrate   two lab hosts in a swarm, a counter on an overlay: `container
#             migrate` from one host to the other and back, CP_N times
# No peer: docker keeps checkpoints experimental (and needs its daemon's
# experimental mode), podman is not measured here.
# CRIU 3.17 fails on kernels from 6.13: there the section says so (run it in
# the VM: BENCH_ONLY=checkpoint scripts/bench --vm).
set -uo pipefail
B=${BERTH:?BERTH must name the berth binary}
dir=${CP_DIR:?}
N=${CP_N:-3}
export BERTH_ROOT=$dir/root BERTH_RUN=$dir/run
say() { printf '%s\n' "$*"; }
lab=cpbench$$
cleanup() {
  "$B" lab down "$lab" >/dev/null 2>&1
  "$B" system reset -f >/dev/null 2>&1
  rm -rf "$dir/root" "$dir/run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
command -v criu >/dev/null || { say "  checkpoint: criu is not installed (scripts/deps installs it); skipped"; exit 0; }
"$B" image import -c 'CMD ["sh"]' "${CP_IMAGE:?}" busybox:latest >/dev/null || { say "  checkpoint: import failed"; exit 1; }
ms() { # CMD... -> milliseconds (empty when it fails)
  local t0 t1
  t0=$(date +%s%N)
  "$@" >"$dir/last.out" 2>&1 || { echo; return; }
  t1=$(date +%s%N)
  awk -v d=$(((t1 - t0) / 1000)) 'BEGIN { printf "%.0f\n", d / 1000 }'
}
median() { sort -g | awk 'NF { a[++n] = $1 } END { if (!n) print "-"; else print (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }'; }

"$B" run -d --name cpprobe busybox sleep 1000 >/dev/null
if ! "$B" checkpoint create cpprobe probe >"$dir/probe.out" 2>&1; then
  say "  checkpoint: $(tail -1 "$dir/probe.out" | sed 's/^berth: //')"
  exit 0
fi
"$B" rm -f cpprobe >/dev/null

for mb in 10 200; do
  # A shell variable of MB megabytes, then a counter: the memory stays.
  "$B" run -d --name "cp$mb" busybox sh -c "x=\$(head -c ${mb}000000 /dev/zero | tr '\\0' a); i=0; while true; do i=\$((i+1)); echo \$i > /count; sleep 0.1; done" >/dev/null
  for _ in $(seq 200); do "$B" exec "cp$mb" test -s /count 2>/dev/null && break; sleep 0.1; done
  rss=$(awk '/VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$("$B" inspect -f '{{.State.Pid}}' "cp$mb")/status" 2>/dev/null)
  tree=0
  for p in $(pgrep -P "$("$B" inspect -f '{{.State.Pid}}' "cp$mb")") "$("$B" inspect -f '{{.State.Pid}}' "cp$mb")"; do
    tree=$((tree + $(awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  : >"$dir/dump" ; : >"$dir/rest" ; : >"$dir/size"
  for r in $(seq "$N"); do
    ms "$B" checkpoint create "cp$mb" "r$r" >>"$dir/dump"
    du -sm "$BERTH_ROOT"/containers/*/checkpoints/"r$r" 2>/dev/null | awk '{ print $1 }' | tail -1 >>"$dir/size"
    ms "$B" start --checkpoint "r$r" "cp$mb" >>"$dir/rest"
  done
  say "  ${mb} MB of anonymous memory (the container's processes hold ${tree} MB resident): checkpoint $(median <"$dir/dump") ms, restore $(median <"$dir/rest") ms, checkpoint on disk $(median <"$dir/size") MB  [median of $N]"
  "$B" rm -f "cp$mb" >/dev/null
done

# Migration between two lab hosts of a swarm.
if "$B" lab hosts "$lab" 2 --image busybox --swarm >"$dir/lab.out" 2>&1; then
  L() { "$B" lab exec "$lab" "h$1" berth "${@:2}"; }
  L 0 network create -d overlay --attachable onet >/dev/null
  L 0 run -d --network onet --name mig busybox sh -c 'i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.1; done' >/dev/null
  sleep 1
  : >"$dir/mig"
  from=0
  for _ in $(seq "$N"); do
    to=$((1 - from))
    ms L "$from" container migrate mig "$lab-h$to" >>"$dir/mig"
    from=$to
  done
  ok=$(L "$from" exec mig cat /count 2>/dev/null)
  say "  container migrate between two lab hosts of a swarm (overlay address kept, TCP kept): $(median <"$dir/mig") ms  [median of $N; counter at ${ok:-?} after]"
else
  say "  migrate: lab hosts failed: $(tail -1 "$dir/lab.out")"
fi
