#!/usr/bin/env bash
# scripts/bench's rootless section (issue 18, "Figures"):
#
#   rootless.sh   (BERTH: the binary; RL_DIR: a scratch dir; RL_IMAGE: the
#                  busybox tarball; RL_N rounds, default 15; RL_COUNT
#                  containers for the bring-up, default 20)
#
# As a user the script makes (useradd, subordinate ids; removed at the end):
#   none     `berth run --rm --network none busybox true`, rootless beside
#            rootful berth and, when installed, rootless `podman run --rm
#            --network none` (podman with cgroupfs and file events: a user
#            without a systemd session)
#   bridge   the same on the default network: rootless berth's bridge in its
#            rootless namespace (slirp4netns), rootful berth's bridge, and
#            podman's rootless default (slirp4netns)
#   up/down  RL_COUNT containers on a user network, started one after the
#            other (`run -d`), then all removed with one `rm -f`, rootless
# Rounds are interleaved (rootless, rootful, podman) with a 50 ms pause.
# /dev/net/tun is set to 0666 for the run (this host has no udev) and put back.
set -uo pipefail
B=${BERTH:?BERTH must name the berth binary}
dir=${RL_DIR:?}
N=${RL_N:-15}
COUNT=${RL_COUNT:-20}
IMG=${RL_IMAGE:?}
say() { printf '%s\n' "$*"; }
user=brlbench$$
home=$dir/home
tun_mode=$(stat -c %a /dev/net/tun)
cleanup() {
  [ -n "${ubin:-}" ] && as_user "$ubin" system reset -f >/dev/null 2>&1
  pkill -KILL -u "$user" 2>/dev/null
  sleep 0.3
  userdel "$user" 2>/dev/null
  for f in /etc/subuid /etc/subgid; do sed -i "/^$user:/d" "$f"; done
  BERTH_ROOT=$dir/root BERTH_RUN=$dir/run "$B" system reset -f >/dev/null 2>&1
  chmod "$tun_mode" /dev/net/tun
  awk '{print $5}' /proc/self/mountinfo | grep "^$dir" | sort -r | xargs -r umount -l 2>/dev/null
  rm -rf "$dir" "${xdg:-}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$home"
chmod a+x "$(dirname "$dir")" "$dir"
useradd -M -d "$home" -s /bin/sh "$user" || { say "  rootless: useradd failed; skipped"; exit 0; }
uid=$(id -u "$user")
chown "$user:$user" "$home"
start=$((600000 + (uid % 1000) * 65536))
for f in /etc/subuid /etc/subgid; do echo "$user:$start:65536" >>"$f"; done
chmod 0666 /dev/net/tun
ubin=$dir/berth
cp "$B" "$ubin"
cp "$IMG" "$dir/busybox.tar"
chmod a+rx "$dir" "$ubin"
chmod a+r "$dir/busybox.tar"
# A short runtime dir: conmon's sockets live under it (108-byte limit).
xdg=/tmp/brl-xdg-$uid
as_user() { (cd "$home" && setpriv --reuid "$uid" --regid "$uid" --init-groups --reset-env env XDG_RUNTIME_DIR="$xdg" "$@"); }
as_user mkdir -p -m 0700 "$xdg"
as_user "$ubin" image import -c 'CMD ["sh"]' "$dir/busybox.tar" busybox:latest >/dev/null || { say "  rootless: import failed"; exit 1; }
export BERTH_ROOT=$dir/root BERTH_RUN=$dir/run
"$B" image import -c 'CMD ["sh"]' "$IMG" busybox:latest >/dev/null
podman=()
if command -v podman >/dev/null; then
  podman=(podman --cgroup-manager=cgroupfs --events-backend=file)
  if ! as_user "${podman[@]}" import --change 'CMD ["sh"]' "$dir/busybox.tar" busybox:latest >/dev/null 2>"$dir/podman.err" \
    || ! as_user "${podman[@]}" run --rm --network none busybox true >/dev/null 2>>"$dir/podman.err"; then
    say "  rootless: podman fails here: $(tail -1 "$dir/podman.err"); left out"
    podman=()
  fi
else
  say "  rootless: podman is not installed (BENCH_INSTALL=1 installs it); left out"
fi

ms() { # CMD... -> milliseconds it took (fails: empty)
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null 2>&1 || { echo; return; }
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000)) | awk '{ printf "%.1f\n", $1 / 1000 }'
}
median() { sort -g | awk 'NF { a[++n] = $1 } END { if (!n) print "-"; else print (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }'; }

for mode in none bridge; do
  net=(--network none)
  pnet=(--network none)
  [ $mode = bridge ] && { net=(); pnet=(); }
  : >"$dir/rl" ; : >"$dir/rf" ; : >"$dir/pd"
  # Warm-up: the first bridge run starts slirp4netns and makes the bridge.
  as_user "$ubin" run --rm "${net[@]}" busybox true >/dev/null 2>&1
  "$B" run --rm "${net[@]}" busybox true >/dev/null 2>&1
  [ ${#podman[@]} -gt 0 ] && as_user "${podman[@]}" run --rm "${pnet[@]}" busybox true >/dev/null 2>&1
  for _ in $(seq "$N"); do
    ms as_user "$ubin" run --rm "${net[@]}" busybox true >>"$dir/rl"; sleep 0.05
    ms "$B" run --rm "${net[@]}" busybox true >>"$dir/rf"; sleep 0.05
    if [ ${#podman[@]} -gt 0 ]; then ms as_user "${podman[@]}" run --rm "${pnet[@]}" busybox true >>"$dir/pd"; sleep 0.05; fi
  done
  rl=$(median <"$dir/rl"); rf=$(median <"$dir/rf"); pd=$(median <"$dir/pd")
  line="  run --rm --network $([ $mode = none ] && echo none || echo '(default)') busybox true: rootless ${rl} ms, rootful ${rf} ms ($(awk -v a="$rl" -v b="$rf" 'BEGIN { printf (b > 0 ? "%.2fx" : "-"), a / b }') rootful)"
  if [ ${#podman[@]} -gt 0 ]; then
    line="$line, podman rootless ${pd} ms (berth $(awk -v a="$pd" -v b="$rl" 'BEGIN { printf (b > 0 ? "%.1fx" : "-"), a / b }') faster)"
  fi
  say "$line  [median of $N]"
done

# COUNT containers on a user network, rootless.
as_user "$ubin" network create benchrl >/dev/null || { say "  rootless: network create failed"; exit 1; }
t0=$(date +%s%N)
for i in $(seq "$COUNT"); do
  as_user "$ubin" run -d --network benchrl --name "rl$i" busybox sleep 600 >/dev/null || say "  rootless: rl$i failed"
done
t1=$(date +%s%N)
names=$(for i in $(seq "$COUNT"); do printf 'rl%s ' "$i"; done)
ping=$(as_user "$ubin" exec rl1 ping -c1 -W2 "rl$COUNT" >/dev/null 2>&1 && echo "rl1 reaches rl$COUNT by name" || echo "rl1 does NOT reach rl$COUNT")
# shellcheck disable=SC2086
as_user "$ubin" rm -f $names >/dev/null
t2=$(date +%s%N)
as_user "$ubin" network rm benchrl >/dev/null
say "  $COUNT containers on a user network, rootless: up $(((t1 - t0) / 1000000)) ms ($(((t1 - t0) / 1000000 / COUNT)) ms each, one after the other), all removed $(((t2 - t1) / 1000000)) ms; $ping"
