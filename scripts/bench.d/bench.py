#!/usr/bin/env python3
"""Timing, memory and report helper for scripts/bench.

  bench.py time DIR FIG N WARMUP        run the commands DIR/FIG.NAME.cmd
                                         (argv, NUL-separated) WARMUP+N times,
                                         interleaved, and store each one's N
                                         wall times (ms) as DIR/FIG.NAME.json
                                         (or the failure in FIG.NAME.skip).
                                         "{i}" in a command becomes a unique
                                         run number. BENCH_SETTLE_MS (50) is
                                         the pause after each command;
                                         BENCH_BLOCK (1) commands of one
                                         engine run back to back, with no
                                         pause, before the next engine's.
                                         Optional, per command:
                                         FIG.NAME.pre / .post  argv run untimed
                                           before / after each run (same "{i}");
                                         FIG.NAME.count  lines "LABEL<TAB>TEXT"
                                           or "LABEL<TAB>TEXT<TAB>NOT": per
                                           measured run, the number of output
                                           lines (stderr, then stdout) holding
                                           TEXT (and not NOT) is stored under
                                           counts.LABEL in the JSON.
  bench.py cycle DIR FIG N WARMUP       bring-up / teardown pairs: for each
                                         engine NAME with DIR/FIG.NAME.up and
                                         FIG.NAME.down (argv), WARMUP+N rounds,
                                         engines interleaved in a rotating
                                         order; per round and engine: up
                                         (timed), FIG.NAME.upcheck (untimed),
                                         down (timed), FIG.NAME.downcheck
                                         (untimed). The wall times go to
                                         DIR/FIGup.NAME.json, FIGdown.NAME.json
                                         and their per-round sum to
                                         FIGall.NAME.json. A failing step runs
                                         FIG.NAME.reset (untimed) and drops the
                                         engine (the reason in FIGup.NAME.skip,
                                         FIGdown.NAME.skip, FIGall.NAME.skip).
  bench.py pss OUT EXE ARG ID...         for each ID, find the process whose
                                         argv[0] basename is EXE, whose argv
                                         holds ARG ("-" for none) and ID, and
                                         store its PSS/RSS (KiB) as JSON in OUT.
  bench.py report DIR                    print the table from DIR/*.json
                                         (and the sections' check files).

Only the standard library; stdout of timed commands goes to /dev/null (to a
pipe for commands with a .count file), their stderr to a pipe; the stderr of a
failing run is shown.
"""
import json
import os
import subprocess
import sys
import time


def die(msg):
    print(f"bench.py: {msg}", file=sys.stderr)
    sys.exit(1)


def percentile(xs, p):
    """Linear-interpolated percentile, p in [0, 100]."""
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(xs):
    return {
        "n": len(xs),
        "median": percentile(xs, 50),
        "p10": percentile(xs, 10),
        "p90": percentile(xs, 90),
        "min": min(xs),
        "max": max(xs),
    }


# ---------------------------------------------------------------- time

_counter = 0


class RunError(Exception):
    pass


def run_once(cmd, pre=None, post=None, keep_stdout=False):
    """Runs cmd once (pre and post hooks untimed, all with the same "{i}");
    returns (wall ms, stderr text, followed by stdout's when keep_stdout)."""
    global _counter
    _counter += 1
    tag = f"{os.getpid()}-{_counter}"

    def sub(c):
        return [a.replace("{i}", tag) for a in c]

    def hook(c, what):
        argv = sub(c)
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip().splitlines()
            raise RunError(f"{what} `{' '.join(argv)}` exited {p.returncode}: {' '.join(err[-3:])}")

    if pre:
        hook(pre, "pre-run step")
    argv = sub(cmd)
    t0 = time.perf_counter_ns()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE if keep_stdout else subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    t1 = time.perf_counter_ns()
    err = p.stderr.decode(errors="replace")
    if keep_stdout:
        err += "\n" + p.stdout.decode(errors="replace")
    if p.returncode != 0:
        lines = err.strip().splitlines()
        raise RunError(f"`{' '.join(argv)}` exited {p.returncode}: {' '.join(lines[-3:])}")
    if post:
        hook(post, "post-run step")
    return (t1 - t0) / 1e6, err


def read_argv(path):
    if not os.path.exists(path):
        return None
    with open(path, "rb") as fh:
        return [a.decode() for a in fh.read().split(b"\0")[:-1]]


def cmd_time(args):
    """Interleaved timing: every command of figure FIG (DIR/FIG.NAME.cmd, its
    argv NUL-separated) runs once per round, in a rotating order, so that a
    burst of load elsewhere on the machine hits all of them alike."""
    if len(args) != 4:
        die("usage: time DIR FIG N WARMUP")
    d, fig, n, warmup = args[0], args[1], int(args[2]), int(args[3])
    cmds, hooks, counts = {}, {}, {}
    for f in sorted(os.listdir(d)):
        if f.startswith(fig + ".") and f.endswith(".cmd"):
            name = f[len(fig) + 1:-4]
            base = os.path.join(d, f"{fig}.{name}")
            cmds[name] = read_argv(base + ".cmd")
            hooks[name] = (read_argv(base + ".pre"), read_argv(base + ".post"))
            if os.path.exists(base + ".count"):
                with open(base + ".count") as fh:
                    counts[name] = [(l.rstrip("\n").split("\t") + [""])[:3] for l in fh if "\t" in l]
    order = [x for x in ("berth", "crun", "runc", "podman", "docker") if x in cmds]
    order += [x for x in cmds if x not in order]
    samples = {name: [] for name in order}
    counted = {name: {label: [] for label, _, _ in counts.get(name, [])} for name in order}
    alive = list(order)

    def attempt(name, measured=False):
        try:
            t, err = run_once(cmds[name], *hooks[name], keep_stdout=name in counts)
            if measured:
                for label, text, unless in counts.get(name, []):
                    counted[name][label].append(
                        sum(1 for l in err.splitlines() if text in l and not (unless and unless in l)))
            return t
        except RunError as e:
            with open(os.path.join(d, f"{fig}.{name}.skip"), "w") as fh:
                fh.write(f"failed: {e}\n")
            print(f"  {fig} {name}: failed, dropped: {e}", file=sys.stderr)
            alive.remove(name)
            return None

    settle = float(os.environ.get("BENCH_SETTLE_MS", "50")) / 1000.0
    block = max(1, int(os.environ.get("BENCH_BLOCK", "1")))
    for _ in range(warmup):
        for name in list(alive):
            for _ in range(block):
                if name in alive:
                    attempt(name)
            time.sleep(settle)
    for r in range(n):
        k = r % len(alive) if alive else 0
        for name in alive[k:] + alive[:k]:
            for _ in range(block):
                t = attempt(name, measured=True) if name in alive else None
                if t is not None:
                    samples[name].append(t)
            # let asynchronous teardown (podman's cleanup process, dockerd,
            # shims) finish before the next engine's command is timed
            time.sleep(settle)
    for name in alive:
        xs = samples[name]
        s = summary(xs)
        s["samples"] = xs
        if counted[name]:
            s["counts"] = counted[name]
        with open(os.path.join(d, f"{fig}.{name}.json"), "w") as f:
            json.dump(s, f)
        extra = "".join(f"; {label} {' '.join(map(str, c))}" for label, c in counted[name].items())
        print(f"    {name:<12} median {s['median']:7.2f} ms (p10 {s['p10']:7.2f}, p90 {s['p90']:7.2f}, "
              f"min {s['min']:7.2f}, max {s['max']:7.2f}) over {len(xs)} runs{extra}")


# ---------------------------------------------------------------- cycle

def cmd_cycle(args):
    """Bring-up and teardown, timed as a pair: a teardown always follows its
    engine's bring-up before the next engine's turn, so that no two engines'
    containers ever run at the same time."""
    if len(args) != 4:
        die("usage: cycle DIR FIG N WARMUP")
    d, fig, n, warmup = args[0], args[1], int(args[2]), int(args[3])
    steps = {}
    for f in sorted(os.listdir(d)):
        if f.startswith(fig + ".") and f.endswith(".up"):
            name = f[len(fig) + 1:-3]
            base = os.path.join(d, f"{fig}.{name}")
            steps[name] = {s: read_argv(f"{base}.{s}") for s in ("up", "down", "upcheck", "downcheck", "reset")}
    order = [x for x in ("berth", "berth-cli", "docker", "podman") if x in steps]
    order += [x for x in steps if x not in order]
    samples = {name: {"up": [], "down": [], "all": []} for name in order}
    alive = list(order)
    settle = float(os.environ.get("BENCH_SETTLE_MS", "50")) / 1000.0

    def drop(name, msg):
        for part in ("up", "down", "all"):
            with open(os.path.join(d, f"{fig}{part}.{name}.skip"), "w") as fh:
                fh.write(f"failed: {msg}\n")
        print(f"  {fig} {name}: failed, dropped: {msg}", file=sys.stderr)
        alive.remove(name)
        if steps[name]["reset"]:
            try:
                run_once(steps[name]["reset"])
            except RunError as e:
                print(f"  {fig} {name}: reset failed too: {e}", file=sys.stderr)

    def one(name, measured):
        st = steps[name]
        took = {}
        for step, what in (("up", "bring-up"), ("upcheck", "check after bring-up"),
                           ("down", "teardown"), ("downcheck", "check after teardown")):
            if step == "down":
                time.sleep(settle)
            if step.endswith("check") and not st[step]:
                continue
            try:
                took[step], _ = run_once(st[step])
            except RunError as e:
                return drop(name, f"{what}: {e}")
        t_up, t_down = took["up"], took["down"]
        if measured:
            samples[name]["up"].append(t_up)
            samples[name]["down"].append(t_down)
            samples[name]["all"].append(t_up + t_down)
        print(f"    {'' if measured else 'warm-up '}{name:<10} up {t_up:9.1f} ms, down {t_down:9.1f} ms", flush=True)

    for _ in range(warmup):
        for name in list(alive):
            one(name, False)
            time.sleep(settle)
    for r in range(n):
        k = r % len(alive) if alive else 0
        for name in alive[k:] + alive[:k]:
            one(name, True)
            time.sleep(settle)
    for name in alive:
        for part in ("up", "down", "all"):
            xs = samples[name][part]
            s = summary(xs)
            s["samples"] = xs
            with open(os.path.join(d, f"{fig}{part}.{name}.json"), "w") as f:
                json.dump(s, f)
        print(f"    {name:<10} median up {percentile(samples[name]['up'], 50):9.1f} ms, "
              f"down {percentile(samples[name]['down'], 50):9.1f} ms over {n} rounds")


# ---------------------------------------------------------------- pss

def proc_argv(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not raw:
        return None
    return [a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")]


def find_pid(exe, arg, cid):
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        argv = proc_argv(d)
        if not argv or os.path.basename(argv[0]) != exe:
            continue
        if arg != "-" and arg not in argv:
            continue
        if cid in argv or any(cid in a for a in argv[1:]):
            return int(d)
    return None


def rollup(pid):
    vals = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "kB":
                vals[parts[0].rstrip(":")] = int(parts[1])
    return vals


def cmd_pss(args):
    if len(args) < 4:
        die("usage: pss OUT EXE ARG ID...")
    out, exe, arg, ids = args[0], args[1], args[2], args[3:]
    pss, rss, pids = [], [], []
    for cid in ids:
        pid = find_pid(exe, arg, cid)
        if pid is None:
            die(f"no {exe} process found for container {cid}")
        r = rollup(pid)
        pids.append(pid)
        pss.append(r["Pss"])
        rss.append(r["Rss"])
    s = summary(pss)
    s.update({"samples": pss, "rss": rss, "pids": pids, "exe": exe})
    with open(out, "w") as f:
        json.dump(s, f)
    print(f"    {exe} PSS per container: median {s['median']:.0f} KiB "
          f"(min {s['min']}, max {s['max']}); RSS median {percentile(rss, 50):.0f} KiB; "
          f"{len(ids)} containers, pids {' '.join(map(str, pids))}")


# ---------------------------------------------------------------- report

CONMON_REF_KIB = 512.0


def load(d, name):
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def skip_reason(d, name):
    p = os.path.join(d, name + ".skip")
    if os.path.exists(p):
        with open(p) as f:
            return f.read().strip().splitlines()[0] if os.path.getsize(p) else "skipped"
    return None


def fmt_t(s):
    return (f"{s['median']:8.2f} ms  (p10 {s['p10']:7.2f}, p90 {s['p90']:7.2f}, "
            f"min {s['min']:7.2f}, max {s['max']:7.2f})")


def verdict(ok):
    return "MET" if ok else "MISSED"


TW, NW = 13, 12  # widths of the table's title and name columns


def present(d, fig):
    """Whether the bench ran figure FIG at all (BENCH_ONLY / BENCH_SKIP_*)."""
    return any(f.startswith(fig + ".") for f in os.listdir(d))


def ratio_text(berth, s, peer, target):
    ratio = berth["median"] / s["median"]
    extra = f"berth/{peer} {ratio:5.2f}x"
    if ratio > 1:
        extra += f"  ({peer} is {ratio:.2f}x faster)"
    else:
        extra += f"  (berth is {1 / ratio:.2f}x faster)"
    if target:
        kind, limit = target
        if kind == "within":
            extra += f"  target <= {limit}x: {verdict(ratio <= limit)}"
        elif kind == "notslower":
            extra += f"  target berth not slower: {verdict(ratio <= 1)}"
        elif limit == 1:
            extra += f"  target berth faster: {verdict(ratio < 1)}"
        else:
            extra += f"  target berth >= {limit}x faster: {verdict(1 / ratio >= limit)}"
    return extra


def time_section(d, fig, title, peers, targets, note=None):
    lines = []
    berth = load(d, f"{fig}.berth")
    if berth is None:
        reason = skip_reason(d, f"{fig}.berth") or "not measured"
        lines.append(f"{title:<{TW}} {'berth':<{NW}} {reason}")
        return lines
    lines.append(f"{title:<{TW}} {'berth':<{NW}} {fmt_t(berth)}" + (f"  {note(berth)}" if note else ""))
    for peer in peers:
        s = load(d, f"{fig}.{peer}")
        if s is None:
            reason = skip_reason(d, f"{fig}.{peer}") or "not measured"
            lines.append(f"{'':<{TW}} {peer:<{NW}} skipped: {reason}")
            continue
        extra = ratio_text(berth, s, peer, targets.get(peer))
        if note:
            extra = f"{note(s)}  {extra}"
        lines.append(f"{'':<{TW}} {peer:<{NW}} {fmt_t(s)}  {extra}")
    return lines


def read_text(d, name):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return f.read().strip()


def pull_sections(d):
    info = {}
    if os.path.exists(os.path.join(d, "pull.image.json")):
        with open(os.path.join(d, "pull.image.json")) as f:
            info = json.load(f)
    big = info.get("big", {})
    nbytes, nlayers = big.get("bytes"), big.get("layers", 4)

    def rate(s):
        return f"{nbytes / 2**20 / (s['median'] / 1e3):6.1f} MiB/s" if nbytes else ""

    title = f"pull {nbytes / 2**20:.0f} MiB" if nbytes else "pull"
    lines = time_section(d, "pull", title, ["skopeo+umoci", "docker", "podman"],
                         {"skopeo+umoci": ("faster", 2), "docker": ("faster", 1)}, note=rate)
    b = load(d, "pull.berth")
    dl = []
    for e in ["berth", "skopeo+umoci", "docker", "podman"]:
        s = load(d, f"pull.{e}")
        if s and "downloaded" in s.get("counts", {}):
            dl.append(f"{e} {' '.join(map(str, s['counts']['downloaded']))}")
    if dl:
        lines.append(f"{'':<{TW}} {'':<{NW}} layers downloaded per run (of {nlayers}, into an empty store): "
                     + ", ".join(dl))
    chk = read_text(d, "pull.run-check")
    if chk:
        lines.append(f"{'':<{TW}} {'':<{NW}} then `berth run --rm IMG true`: {chk}")
    out = [lines]
    if present(d, "pull2"):
        b2 = load(d, "pull2.berth")
        big2 = info.get("big2", {})
        t2 = f"2nd pull"
        if b2 is None:
            out.append([f"{t2:<{TW}} {'berth':<{NW}} {skip_reason(d, 'pull2.berth') or 'not measured'}"])
        else:
            c = b2.get("counts", {})
            dl, reused = c.get("downloaded", []), c.get("reused", [])
            want = big2.get("new_layers", 1)
            ok = bool(dl) and all(x == want for x in dl)
            l2 = [f"{t2:<{TW}} {'berth':<{NW}} {fmt_t(b2)}"
                  + (f"  {b2['median'] / b['median']:.2f}x the cold pull" if b else "")]
            l2.append(f"{'':<{TW}} {'':<{NW}} image sharing its first {big2.get('layers', 4) - want} layers with the "
                      f"pulled one: downloaded {' '.join(map(str, dl))} layer(s), reused {' '.join(map(str, reused))} "
                      f"per run; target only the {want} new layer: {verdict(ok)}")
            out.append(l2)
    return out


BUILD_PEERS = ["docker", "docker-bk", "podman"]
CACHED_TARGET_MS = 50.0


def build_sections(d):
    out = []
    if present(d, "build"):
        lines = time_section(d, "build", "build cold", BUILD_PEERS,
                             {p: ("notslower", 1) for p in BUILD_PEERS})
        lines.append(f"{'':<{TW}} {'':<{NW}} Dockerfile: FROM busybox, 3 RUN, COPY of a 10 MiB file, CMD; "
                     "berth into a fresh store each run (busybox imported, untimed), peers --no-cache; "
                     "docker = legacy builder (DOCKER_BUILDKIT=0), docker-bk = BuildKit (DOCKER_BUILDKIT=1)")
        chk = read_text(d, "build.run-check")
        if chk:
            lines.append(f"{'':<{TW}} {'':<{NW}} then `berth run --rm bench-build:1`: {chk}")
        out.append(lines)
    if present(d, "rebuild"):
        lines = time_section(d, "rebuild", "build cached", BUILD_PEERS,
                             {p: ("faster", 1) for p in BUILD_PEERS})
        b = load(d, "rebuild.berth")
        if b is not None:
            lines.append(f"{'':<{TW}} {'':<{NW}} target berth's cached rebuild under {CACHED_TARGET_MS:.0f} ms "
                         f"(median {b['median']:.2f} ms): {verdict(b['median'] < CACHED_TARGET_MS)}")
        for e in ["berth"] + BUILD_PEERS:
            c = read_text(d, f"rebuild.{e}.check")
            if c:
                lines.append(f"{'':<{TW}} {'':<{NW}} one verbose rebuild, untimed: {e}: {c}")
        out.append(lines)
    return out


NET_TARGET = 5.0  # berth at least this many times faster than docker
NET_PEERS = ["docker", "podman"]


def pooled(d, names):
    """One summary from the samples of several figures (None if none ran)."""
    xs = []
    for name in names:
        s = load(d, name)
        if s:
            xs += s["samples"]
    if not xs:
        return None
    s = summary(xs)
    s["samples"] = xs
    return s


def net_sections(d):
    info = {}
    if os.path.exists(os.path.join(d, "net.info.json")):
        with open(os.path.join(d, "net.info.json")) as f:
            info = json.load(f)
    count = info.get("count", 50)

    def per(s):
        return f"{s['median'] / count:7.2f} ms per container"

    def versus(b, peers):
        parts = []
        for peer, s in peers:
            if s is None:
                continue
            x = s["median"] / b["median"]
            t = f"{x:.2f}x faster than {peer}" if x >= 1 else f"{1 / x:.2f}x slower than {peer}"
            if peer == "docker":
                t += f" (target >= {NET_TARGET:g}x: {verdict(x >= NET_TARGET)})"
            parts.append(t)
        return "; ".join(parts)

    out = []
    titles = {"up": f"net up {count}", "down": f"net down {count}", "all": "net up+down"}
    for part in ("up", "down", "all"):
        fig = f"net{part}"
        if not present(d, fig):
            continue
        peers = [(p, load(d, f"{fig}.{p}")) for p in NET_PEERS]
        if part == "up":
            # the bring-up is the same for both berth rows: their samples pooled
            berths = [("berth", pooled(d, [f"{fig}.berth", f"{fig}.berth-cli"]), ["berth", "berth-cli"])]
        else:
            berths = [("berth", load(d, f"{fig}.berth"), ["berth"]), ("berth-cli", load(d, f"{fig}.berth-cli"), ["berth-cli"])]
        lines = []
        title = titles[part]
        for name, b, srcs in berths:
            if b is None:
                reason = next((r for r in (skip_reason(d, f"{fig}.{x}") for x in srcs) if r), "not measured")
                lines.append(f"{title:<{TW}} {name:<{NW}} {reason}")
            else:
                lines.append(f"{title:<{TW}} {name:<{NW}} {fmt_t(b)}  {per(b)}  {versus(b, peers)}")
            title = ""
        for peer, s in peers:
            if s is None:
                lines.append(f"{'':<{TW}} {peer:<{NW}} skipped: {skip_reason(d, f'{fig}.{peer}') or 'not measured'}")
            else:
                lines.append(f"{'':<{TW}} {peer:<{NW}} {fmt_t(s)}  {per(s)}")
        if part == "up":
            lines.append(f"{'':<{TW}} {'':<{NW}} network create + {count} detached `sleep` containers on it, all running: "
                         f"berth: one `berth run` of a script whose run_all() starts the {count} in parallel "
                         f"(berth row: the rounds of both berth rows below); docker, podman: {count} `run -d` by "
                         f"xargs -P {info.get('par', 8)}")
        elif part == "down":
            lines.append(f"{'':<{TW}} {'':<{NW}} every container removed with force, then the network: berth: a script "
                         f"(remove_all(containers(#{{all: true}}), #{{force: true}}), network(NAME).remove()); "
                         f"berth-cli: `berth rm -f $(berth ps -aq) && berth network rm`; "
                         f"docker: `docker rm -f $(docker ps -aq) && docker network rm`; podman: the same with `rm -f -t 0`")
        else:
            lines.append(f"{'':<{TW}} {'':<{NW}} per round, the bring-up plus the teardown that followed it")
            chk = read_text(d, "net.checks")
            if chk:
                for l in chk.splitlines():
                    lines.append(f"{'':<{TW}} {'':<{NW}} {l}")
        out.append(lines)
    return out


def cmd_report(args):
    d = args[0]
    peers = ["crun", "runc", "podman", "docker"]
    out = []
    if present(d, "run"):
        out.append(time_section(d, "run", "run-to-exit", peers,
                                {"crun": ("within", 1.1), "docker": ("faster", 20)}))
    if present(d, "runb2b"):
        out.append(time_section(d, "runb2b", "run back to back", ["crun", "runc"],
                                {"crun": ("within", 1.1)}))
    if present(d, "exec"):
        lines = time_section(d, "exec", "exec", peers, {"crun": ("within", 1.1)})
        b = load(d, "exec.berth")
        if b:
            lines.append(f"{'':<{TW}} {'':<{NW}} target: berth's median under 10 ms: {verdict(b['median'] < 10.0)}")
        out.append(lines)
    if present(d, "execb2b"):
        lines = time_section(d, "execb2b", "exec back to back", ["crun", "runc"], {"crun": ("within", 1.1)})
        b = load(d, "execb2b.berth")
        if b:
            lines.append(f"{'':<{TW}} {'':<{NW}} target: berth's median under 10 ms: {verdict(b['median'] < 10.0)}")
        out.append(lines)
    mem = []
    m = load(d, "mem.berth")
    if not present(d, "mem"):
        pass
    elif m is None:
        mem.append(f"{'monitor PSS':<{TW}} {'berth':<{NW}} {skip_reason(d, 'mem.berth') or 'not measured'}")
    else:
        mem.append(f"{'monitor PSS':<{TW}} {'berth':<{NW}} {m['median']:8.0f} KiB per container "
                   f"(min {m['min']}, max {m['max']}; RSS median {percentile(m['rss'], 50):.0f} KiB; "
                   f"{m['n']} running)  vs conmon reference {CONMON_REF_KIB:.0f} KiB: "
                   f"{m['median'] / CONMON_REF_KIB:.2f}x")
        for peer, label in (("conmon", "conmon (podman)"), ("shim", "containerd-shim-runc-v2 (docker)")):
            s = load(d, f"mem.{peer}")
            if s is None:
                r = skip_reason(d, f"mem.{peer}")
                if r:
                    mem.append(f"{'':<{TW}} {peer:<{NW}} skipped: {r}")
                continue
            mem.append(f"{'':<{TW}} {peer:<{NW}} {s['median']:8.0f} KiB per container "
                       f"(min {s['min']}, max {s['max']}; RSS median {percentile(s['rss'], 50):.0f} KiB; "
                       f"{s['n']} running)  {label}; berth/{peer} {m['median'] / s['median']:.2f}x")
    if mem:
        out.append(mem)
    if present(d, "pull"):
        out.extend(pull_sections(d))
    out.extend(build_sections(d))
    out.extend(net_sections(d))
    if present(d, "api"):
        out.append(time_section(d, "api", "docker run --rm (API)", ["docker"], {"docker": ("faster", 5)}))
    if present(d, "apips"):
        out.append(time_section(d, "apips", "docker ps, 50 running", ["docker"], {}))
    # Sections that print their own figures (no peer to interleave).
    for name, title in (("svc.txt", "services on one host"), ("swarm.txt", "a swarm of three lab hosts"), ("rootless.txt", "rootless"), ("checkpoint.txt", "checkpoint and migration")):
        p = os.path.join(d, name)
        if os.path.exists(p):
            lines = ["  " + l.strip() for l in open(p) if l.strip()]
            if lines:
                out.append([title] + lines)
    if not out:
        print("(no figures: every section was skipped)")
        return
    width = max(len(l) for block in out for l in block)
    print("=" * min(width, 160))
    for block in out:
        for l in block:
            print(l)
        print("-" * min(width, 160))


def main():
    if len(sys.argv) < 2:
        die("usage: bench.py time|cycle|pss|report ...")
    cmd, args = sys.argv[1], sys.argv[2:]
    {"time": cmd_time, "cycle": cmd_cycle, "pss": cmd_pss, "report": cmd_report}.get(
        cmd, lambda a: die(f"unknown command {cmd}"))(args)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
