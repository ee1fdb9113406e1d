#!/usr/bin/env bash
# scripts/bench's svc section (issue 8, "Speed"):
#
#   svc.sh            (BERTH: the binary; SVC_DIR: a scratch dir; SVC_N rounds,
#                      default 3; SVC_REQ requests per measurement, default 3000;
#                      SVC_CONC concurrent clients, default 8)
#
# Requests per second with ab (apache2-utils) from the host over loopback:
#   service  `berth service create --replicas 3 -p P1:80`: the published port,
#            balanced by nftables (numgen) over three busybox httpd replicas
#   single   one container `berth run -p P2:80` of the same image: the
#            published port, DNAT to one replica (no balancing)
#   direct   that container's own address on the bridge (no NAT at all)
# and the balancing's cost as service / single. Then the time of
# `berth service scale api=20` from 1 replica (SVC_N times, scaled back to 1
# untimed in between), and per new replica.
# Peers: docker's services need a swarm and podman has none, so no peer runs
# here; the figures stand beside berth's own single-container path.
# Everything lives under a temp BERTH_ROOT and is removed at the end.
set -uo pipefail
B=${BERTH:?BERTH must name the berth binary}
dir=${SVC_DIR:?}
N=${SVC_N:-3}
REQ=${SVC_REQ:-3000}
CONC=${SVC_CONC:-8}
export BERTH_ROOT=$dir/root BERTH_RUN=$dir/run
here=$(cd "$(dirname "$0")/../.." && pwd)
say() { printf '%s\n' "$*"; }
cleanup() {
  "$B" service rm benchapi >/dev/null 2>&1
  "$B" rm -f benchone >/dev/null 2>&1
  "$B" network rm benchsvc >/dev/null 2>&1
  "$B" system check --repair >/dev/null 2>&1
  "$B" system reset -f >/dev/null 2>&1
  rm -rf "$dir/root" "$dir/run"
}
trap cleanup EXIT
command -v ab >/dev/null || { say "  svc: ab (apache2-utils) is not installed; skipped"; exit 0; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rps() { # URL -> requests per second (ab's mean)
  ab -q -n "$REQ" -c "$CONC" "$1" 2>/dev/null | awk '/^Requests per second/ { print $4 }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

"$B" image import -c 'CMD ["sh"]' "${SVC_IMAGE:-$here/target/images/busybox.tar}" busybox:latest >/dev/null || { say "  svc: no base image (run scripts/base-images)"; exit 1; }
"$B" network create benchsvc >/dev/null
p1=$(free_port)
p2=$(free_port)
page='mkdir -p /w; head -c 512 /dev/zero > /w/index.html; exec httpd -f -p 80 -h /w'
"$B" service create --name benchapi --replicas 3 -p "$p1:80" --network benchsvc --stop-grace-period 1s busybox sh -c "$page" >/dev/null
"$B" run -d --name benchone -p "$p2:80" --network benchsvc busybox sh -c "$page" >/dev/null
ip=$("$B" inspect -f '{{.NetworkSettings.Networks.benchsvc.IPAddress}}' benchone)
case $ip in *.*.*.*) ;; *) say "  svc: no address for benchone ($ip)"; exit 1 ;; esac
for u in "http://127.0.0.1:$p1/" "http://127.0.0.1:$p2/" "http://$ip/"; do
  for _ in $(seq 50); do curl -s -o /dev/null --max-time 1 "$u" && break; sleep 0.1; done
done
# All three replicas answer through the port (untimed check).
seen=$(for _ in $(seq 9); do curl -s --max-time 2 "http://127.0.0.1:$p1/" -o /dev/null -w '%{remote_ip}\n'; done | wc -l)
[ "$seen" = 9 ] || say "  svc: warning: $seen of 9 requests through the service port answered"
: >"$dir/service" ; : >"$dir/single" ; : >"$dir/direct"
for r in $(seq "$N"); do
  # rotate the order each round so load from elsewhere hits all alike
  case $((r % 3)) in
    0) order="service single direct" ;;
    1) order="single direct service" ;;
    2) order="direct service single" ;;
  esac
  for w in $order; do
    case $w in
      service) rps "http://127.0.0.1:$p1/" >>"$dir/service" ;;
      single) rps "http://127.0.0.1:$p2/" >>"$dir/single" ;;
      direct) rps "http://$ip/" >>"$dir/direct" ;;
    esac
  done
done
s=$(median <"$dir/service")
o=$(median <"$dir/single")
d=$(median <"$dir/direct")
say "  requests/s (ab -n $REQ -c $CONC, median of $N; busybox httpd, 512-byte page):"
say "    service port, 3 replicas (nftables numgen)  $s"
say "    published port, 1 container (DNAT)          $o"
say "    container address, no NAT                   $d"
awk -v s="$s" -v o="$o" -v d="$d" 'BEGIN { if (o > 0 && d > 0) printf "    balancing cost: service/single %.2fx, service/direct %.2fx (target: cost under 10%%, i.e. >= 0.90x)\n", s / o, s / d }'

# Scale 1 -> 20.
"$B" rm -f benchone >/dev/null
: >"$dir/scale"
for _ in $(seq "$N"); do
  "$B" service scale benchapi=1 >/dev/null
  t0=$(date +%s%N)
  "$B" service scale benchapi=20 >/dev/null || say "  svc: scale to 20 failed"
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000)) >>"$dir/scale"
  n=$("$B" ps -q --filter label=berth.service=benchapi --filter status=running | wc -l)
  [ "$n" = 20 ] || say "  svc: warning: $n of 20 replicas running after scale"
done
m=$(median <"$dir/scale")
say "  service scale 1 -> 20: ${m} ms (median of $N; $(awk -v m="$m" 'BEGIN { printf "%.1f", m / 19 }') ms per new replica)"

# Heal: a replica killed (berth kill) is replaced by the service's
# supervisor; time until its slot runs a new replica that answers.
"$B" service scale benchapi=3 >/dev/null
: >"$dir/heal"
for _ in $(seq "$N"); do
  old=$("$B" inspect -f '{{.Id}}' benchapi.2)
  t0=$(date +%s%N)
  "$B" kill benchapi.2 >/dev/null
  ok=0
  for _ in $(seq 1500); do
    new=$("$B" inspect -f '{{.Id}} {{.State.Status}} {{.NetworkSettings.Networks.benchsvc.IPAddress}}' benchapi.2 2>/dev/null)
    set -- $new
    if [ "${1:-}" != "$old" ] && [ "${2:-}" = running ] && curl -s -o /dev/null --max-time 1 "http://${3:-0.0.0.0}/"; then ok=1; break; fi
    sleep 0.01
  done
  t1=$(date +%s%N)
  [ $ok = 1 ] || say "  svc: warning: benchapi.2 was not replaced within 15 s"
  echo $(((t1 - t0) / 1000000)) >>"$dir/heal"
done
say "  a killed replica replaced and serving: $(median <"$dir/heal") ms (median of $N; the supervisor leaves a stopped replica 1 s for a restart by hand)"
