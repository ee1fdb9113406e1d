#!/usr/bin/env python3
"""Timing, memory and report helper for scripts/bench.

  bench.py time DIR FIG N WARMUP        run the commands DIR/FIG.NAME.cmd
                                         (argv, NUL-separated) WARMUP+N times,
                                         interleaved, and store each one's N
                                         wall times (ms) as DIR/FIG.NAME.json
                                         (or the failure in FIG.NAME.skip).
                                         "{i}" in a command becomes a unique
                                         run number. BENCH_SETTLE_MS (50) is
                                         the pause after each command.
  bench.py pss OUT EXE ARG ID...         for each ID, find the process whose
                                         argv[0] basename is EXE, whose argv
                                         holds ARG ("-" for none) and ID, and
                                         store its PSS/RSS (KiB) as JSON in OUT.
  bench.py report DIR                    print the table from DIR/*.json.

Only the standard library; stdout/stderr of timed commands go to /dev/null,
the stderr of a failing run is shown.
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


def run_once(cmd):
    global _counter
    _counter += 1
    argv = [a.replace("{i}", f"{os.getpid()}-{_counter}") for a in cmd]
    t0 = time.perf_counter_ns()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    t1 = time.perf_counter_ns()
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise RunError(f"`{' '.join(argv)}` exited {p.returncode}: {' '.join(err[-3:])}")
    return (t1 - t0) / 1e6


def cmd_time(args):
    """Interleaved timing: every command of figure FIG (DIR/FIG.NAME.cmd, its
    argv NUL-separated) runs once per round, in a rotating order, so that a
    burst of load elsewhere on the machine hits all of them alike."""
    if len(args) != 4:
        die("usage: time DIR FIG N WARMUP")
    d, fig, n, warmup = args[0], args[1], int(args[2]), int(args[3])
    cmds = {}
    for f in sorted(os.listdir(d)):
        if f.startswith(fig + ".") and f.endswith(".cmd"):
            name = f[len(fig) + 1:-4]
            with open(os.path.join(d, f), "rb") as fh:
                cmds[name] = [a.decode() for a in fh.read().split(b"\0")[:-1]]
    order = [x for x in ("berth", "crun", "runc", "podman", "docker") if x in cmds]
    order += [x for x in cmds if x not in order]
    samples = {name: [] for name in order}
    alive = list(order)

    def attempt(name):
        try:
            return run_once(cmds[name])
        except RunError as e:
            with open(os.path.join(d, f"{fig}.{name}.skip"), "w") as fh:
                fh.write(f"failed: {e}\n")
            print(f"  {fig} {name}: failed, dropped: {e}", file=sys.stderr)
            alive.remove(name)
            return None

    settle = float(os.environ.get("BENCH_SETTLE_MS", "50")) / 1000.0
    for _ in range(warmup):
        for name in list(alive):
            attempt(name)
            time.sleep(settle)
    for r in range(n):
        k = r % len(alive) if alive else 0
        for name in alive[k:] + alive[:k]:
            t = attempt(name)
            if t is not None:
                samples[name].append(t)
            # let asynchronous teardown (podman's cleanup process, dockerd,
            # shims) finish before the next engine's command is timed
            time.sleep(settle)
    for name in alive:
        xs = samples[name]
        s = summary(xs)
        s["samples"] = xs
        with open(os.path.join(d, f"{fig}.{name}.json"), "w") as f:
            json.dump(s, f)
        print(f"    {name:<7} median {s['median']:7.2f} ms (p10 {s['p10']:7.2f}, p90 {s['p90']:7.2f}, "
              f"min {s['min']:7.2f}, max {s['max']:7.2f}) over {n} runs")


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


def time_section(d, fig, title, peers, targets):
    lines = []
    berth = load(d, f"{fig}.berth")
    if berth is None:
        reason = skip_reason(d, f"{fig}.berth") or "not measured"
        lines.append(f"{title:<13} berth   {reason}")
        return lines
    lines.append(f"{title:<13} {'berth':<7} {fmt_t(berth)}")
    for peer in peers:
        s = load(d, f"{fig}.{peer}")
        if s is None:
            reason = skip_reason(d, f"{fig}.{peer}") or "not measured"
            lines.append(f"{'':<13} {peer:<7} skipped: {reason}")
            continue
        ratio = berth["median"] / s["median"]
        extra = f"berth/{peer} {ratio:5.2f}x"
        if ratio > 1:
            extra += f"  ({peer} is {ratio:.2f}x faster)"
        else:
            extra += f"  (berth is {1 / ratio:.2f}x faster)"
        t = targets.get(peer)
        if t:
            kind, limit = t
            if kind == "within":
                extra += f"  target <= {limit}x: {verdict(ratio <= limit)}"
            else:
                extra += f"  target berth >= {limit}x faster: {verdict(1 / ratio >= limit)}"
        lines.append(f"{'':<13} {peer:<7} {fmt_t(s)}  {extra}")
    return lines


def cmd_report(args):
    d = args[0]
    peers = ["crun", "runc", "podman", "docker"]
    out = []
    out.append(time_section(d, "run", "run-to-exit", peers,
                            {"crun": ("within", 1.5), "docker": ("faster", 10)}))
    out.append(time_section(d, "exec", "exec", peers, {"crun": ("within", 1.5)}))
    mem = []
    m = load(d, "mem.berth")
    if m is None:
        mem.append(f"{'monitor PSS':<13} berth   {skip_reason(d, 'mem.berth') or 'not measured'}")
    else:
        mem.append(f"{'monitor PSS':<13} {'berth':<7} {m['median']:8.0f} KiB per container "
                   f"(min {m['min']}, max {m['max']}; RSS median {percentile(m['rss'], 50):.0f} KiB; "
                   f"{m['n']} running)  vs conmon reference {CONMON_REF_KIB:.0f} KiB: "
                   f"{m['median'] / CONMON_REF_KIB:.2f}x")
        for peer, label in (("conmon", "conmon (podman)"), ("shim", "containerd-shim-runc-v2 (docker)")):
            s = load(d, f"mem.{peer}")
            if s is None:
                r = skip_reason(d, f"mem.{peer}")
                if r:
                    mem.append(f"{'':<13} {peer:<7} skipped: {r}")
                continue
            mem.append(f"{'':<13} {peer:<7} {s['median']:8.0f} KiB per container "
                       f"(min {s['min']}, max {s['max']}; RSS median {percentile(s['rss'], 50):.0f} KiB; "
                       f"{s['n']} running)  {label}; berth/{peer} {m['median'] / s['median']:.2f}x")
    out.append(mem)
    width = max(len(l) for block in out for l in block)
    print("=" * min(width, 160))
    for block in out:
        for l in block:
            print(l)
        print("-" * min(width, 160))


def main():
    if len(sys.argv) < 2:
        die("usage: bench.py time|pss|report ...")
    cmd, args = sys.argv[1], sys.argv[2:]
    {"time": cmd_time, "pss": cmd_pss, "report": cmd_report}.get(
        cmd, lambda a: die(f"unknown command {cmd}"))(args)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
