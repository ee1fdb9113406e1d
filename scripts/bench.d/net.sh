#!/usr/bin/env bash
# One engine's steps in scripts/bench's net section (issue 5, "Speed").
#
#   net.sh ENGINE STEP
#
# ENGINE: berth      bring-up `berth network create NET` + one `berth run
#                    up.rhai` (run_all of NET_COUNT specs: the engine starts
#                    them in parallel); teardown `berth run down.rhai`
#                    (remove_all of every container with force, then the
#                    network)
#         berth-cli  the same bring-up; teardown `berth rm -f $(berth ps -aq)
#                    && berth network rm NET`
#         docker     `docker network create NET` + NET_COUNT `docker run -d
#                    --network NET` started NET_PAR at a time (xargs -P);
#                    teardown `docker rm -f $(docker ps -aq) && docker network
#                    rm NET`
#         podman     likewise with $PODMAN (`rm -f -t 0`: kill at once, as
#                    `docker rm -f` does)
# (berth-cli, docker and podman retry `network rm` while it is refused: see
# netrm below; berth's script does not.)
# STEP:   up | down                 the timed steps
#         upcheck                   every container running and on NET, NET's
#                                   bridge present (its name is kept for
#                                   downcheck and for the bench's cleanup)
#         downcheck                 no container left, NET gone, its bridge gone
#         reset                     remove whatever is left (after a failure)
#
# Environment: BERTH, PODMAN (podman's command line, split on spaces),
# NET_DIR (up.rhai, down.rhai, bridge names), NET_NAME, NET_COUNT, NET_PAR.
set -uo pipefail
e=$1
step=$2
net=$NET_NAME
n=$NET_COUNT
case $e in
  berth | berth-cli) eng=berth ;;
  docker | podman) eng=$e ;;
  *) echo "net.sh: unknown engine $e" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
cli() {
  case $eng in
    berth) "$BERTH" "$@" ;;
    docker) docker "$@" ;;
    podman) $PODMAN "$@" ;;
  esac
}
fail() { echo "$e $step: $*" >&2; exit 1; }

# `network rm NET`, retried every 0.1 s for up to 10 s while it is refused
# (dockerd 20.10 now and then still sees an endpoint on the network right
# after `rm -f` returned); each refusal is counted in NET_DIR/ENGINE.retries.
netrm() {
  local i
  for i in $(seq 100); do
    cli network rm "$net" >/dev/null 2>"$NET_DIR/$e.netrm.err" && return 0
    echo "$(date +%T) $(head -c 300 "$NET_DIR/$e.netrm.err" | tr '\n' ' ')" >> "$NET_DIR/$e.retries"
    sleep 0.1
  done
  cat "$NET_DIR/$e.netrm.err" >&2
  return 1
}

# The Linux bridge of NET (empty if NET does not exist).
bridge_of() {
  case $eng in
    berth) "$BERTH" network inspect "$net" 2>/dev/null | python3 -c \
      'import json, sys; print(json.load(sys.stdin)[0]["Options"]["com.docker.network.bridge.name"])' 2>/dev/null ;;
    docker) id=$(docker network inspect -f '{{.Id}}' "$net" 2>/dev/null) && echo "br-${id:0:12}" ;;
    podman) cli network inspect -f '{{.NetworkInterface}}' "$net" 2>/dev/null ;;
  esac
}

case $step in
  up)
    case $eng in
      berth)
        "$BERTH" network create "$net" >/dev/null || exit
        exec "$BERTH" run "$NET_DIR/up.rhai"
        ;;
      docker)
        # its bridge is br-ID: noted at once for the bench's cleanup
        id=$(docker network create "$net") || exit
        echo "br-${id:0:12}" >> "$NET_DIR/bridges"
        seq "$n" | xargs -P "$NET_PAR" -I{} docker run -d --pull never --network "$net" --name n{} busybox sleep 1000 >/dev/null
        ;;
      podman)
        cli network create "$net" >/dev/null || exit
        # shellcheck disable=SC2086
        seq "$n" | xargs -P "$NET_PAR" -I{} $PODMAN run -d --pull never --network "$net" --name n{} busybox sleep 1000 >/dev/null
        ;;
    esac
    ;;
  down)
    case $e in
      berth) exec "$BERTH" run "$NET_DIR/down.rhai" ;;
      berth-cli)
        # shellcheck disable=SC2046
        "$BERTH" rm -f $("$BERTH" ps -aq) >/dev/null || exit
        netrm
        ;;
      docker)
        # shellcheck disable=SC2046
        docker rm -f $(docker ps -aq) >/dev/null || exit
        netrm
        ;;
      podman)
        # shellcheck disable=SC2046
        cli rm -f -t 0 $(cli ps -aq) >/dev/null || exit
        netrm
        ;;
    esac
    ;;
  upcheck)
    all=$(cli ps -aq | wc -l)
    running=$(cli ps -q | wc -l)
    case $eng in
      berth)
        on=$("$BERTH" network inspect "$net" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)[0]["Containers"]))')
        ;;
      *) on=$(cli ps -q --filter "network=$net" | wc -l) ;;
    esac
    [ "$all" = "$n" ] && [ "$running" = "$n" ] && [ "$on" = "$n" ] ||
      fail "after bring-up: $all containers, $running running, $on on $net (want $n each)"
    br=$(bridge_of)
    [ -n "$br" ] || fail "no bridge found for network $net"
    echo "$br" >> "$NET_DIR/bridges"
    echo "$br" > "$NET_DIR/$e.bridge"
    [ -e "/sys/class/net/$br" ] || fail "network $net's bridge $br does not exist"
    ;;
  downcheck)
    left=$(cli ps -aq | wc -l)
    [ "$left" = 0 ] || fail "after teardown: $left containers left"
    if cli network inspect "$net" >/dev/null 2>&1; then fail "after teardown: network $net still exists"; fi
    br=$(cat "$NET_DIR/$e.bridge" 2>/dev/null)
    [ -z "$br" ] || [ ! -e "/sys/class/net/$br" ] || fail "after teardown: bridge $br still exists"
    ;;
  reset)
    ids=$(cli ps -aq 2>/dev/null)
    if [ -n "$ids" ]; then
      # shellcheck disable=SC2086
      case $eng in
        podman) cli rm -f -t 0 $ids >/dev/null 2>&1 ;;
        *) cli rm -f $ids >/dev/null 2>&1 ;;
      esac
    fi
    cli network rm "$net" >/dev/null 2>&1
    true
    ;;
  *) echo "net.sh: unknown step $step" >&2; exit 2 ;;
esac
