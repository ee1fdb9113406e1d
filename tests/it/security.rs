//! Docker's safety defaults, and what --cap-add/--cap-drop/--sysctl/
//! --privileged change. Each escape attempt is its own test.

use crate::util::*;

/// Docker's default capability set as a CapEff mask.
const DOCKER_DEFAULT_CAPS: &str = "00000000a80425fb";

fn run_sh(env: &Env, opts: &[&str], script: &str) -> Out {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(opts);
    a.extend_from_slice(&["busybox", "sh", "-c", script]);
    env.berth(&a)
}

fn host_file(p: &str) -> String {
    std::fs::read_to_string(p).unwrap_or_default().trim().to_string()
}

#[test]
fn mount_is_refused() {
    let env = Env::new("mount_is_refused");
    let o = run_sh(&env, &[], "mkdir -p /mnt/t; mount -t tmpfs none /mnt/t; echo rc=$?; grep -c /mnt/t /proc/mounts");
    assert!(o.stdout.contains("rc=") && !o.stdout.contains("rc=0"), "mount must fail: {o}");
    assert!(o.stdout.trim_end().ends_with('0'), "nothing got mounted: {o}");
    let o = run_sh(&env, &[], "mount -o remount,rw /sys; echo rc=$?");
    assert!(!o.stdout.contains("rc=0"), "remounting /sys rw must fail: {o}");
}

#[test]
fn mknod_block_device_is_refused() {
    let env = Env::new("mknod_block_device_is_refused");
    let o = run_sh(&env, &[], "mknod /tmp/x b 8 0; echo rc=$?; ls -l /tmp");
    assert!(o.stdout.contains("rc=1"), "{o}");
    assert!(o.stderr.contains("Operation not permitted"), "{o}");
    assert!(!o.stdout.contains(" x\n"), "{o}");
}

#[test]
fn device_allow_list_blocks_dev_mem() {
    let env = Env::new("device_allow_list_blocks_dev_mem");
    // /dev/mem (c 1 1) is not on the allow-list: creating or reading it fails.
    let o = run_sh(&env, &[], "mknod /tmp/mem c 1 1 && head -c 16 /tmp/mem | wc -c");
    assert_ne!(o.code, 0, "reading /dev/mem must fail: {o}");
    assert!(!o.stdout.trim().starts_with("16"), "{o}");
    // Allowed devices do work.
    let o = run_sh(&env, &[], "head -c 8 /dev/urandom | wc -c; echo x > /dev/null && echo null-ok");
    assert_eq!(o.stdout, "8\nnull-ok\n", "{o}");
}

#[test]
fn insmod_is_refused() {
    let env = Env::new("insmod_is_refused");
    let o = run_sh(&env, &[], "insmod /bin/busybox");
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("Operation not permitted"), "{o}");
}

#[test]
fn hostname_change_is_refused_and_host_unchanged() {
    let env = Env::new("hostname_change_is_refused_and_host_unchanged");
    let before = host_hostname();
    let o = run_sh(&env, &["--hostname", "inner"], "hostname evil; echo rc=$?; hostname");
    assert!(o.stdout.contains("rc=1"), "{o}");
    assert!(o.stdout.trim_end().ends_with("inner"), "{o}");
    assert_eq!(host_hostname(), before, "the host's hostname changed");
    assert_ne!(host_hostname(), "evil");
}

#[test]
fn ps_shows_only_container_processes() {
    let env = Env::new("ps_shows_only_container_processes");
    let n = env.name("c");
    env.run_detached(&n, &["busybox", "sleep", "300"]);
    let o = env.berth(&["exec", &n, "ps", "-o", "pid,args"]);
    assert!(o.ok(), "{o}");
    let rows: Vec<&str> = o.stdout.lines().skip(1).collect();
    assert!(rows.len() <= 2, "only sleep and ps are visible: {o}");
    let first = rows[0].split_whitespace().collect::<Vec<_>>();
    assert_eq!(first[..3], ["1", "sleep", "300"], "pid 1 is the command: {o}");
    let o = env.berth(&["exec", &n, "sh", "-c", "ls /proc | grep -c '^[0-9]'"]);
    let count: u32 = o.out().parse().unwrap_or(999);
    assert!(count <= 4, "{count} pids visible in /proc: {o}");
    let o = run_sh(&env, &[], "cat /proc/1/cmdline | tr '\\0' ' '");
    assert!(o.stdout.starts_with("sh -c"), "pid 1 of a run is its command: {o}");
}

#[test]
fn proc_kcore_and_friends_are_masked() {
    let env = Env::new("proc_kcore_and_friends_are_masked");
    let o = run_sh(&env, &[], "for f in kcore keys timer_list sched_debug; do printf '%s=' $f; (cat /proc/$f 2>/dev/null | wc -c); done");
    assert!(o.ok(), "{o}");
    for l in o.stdout.lines() {
        assert!(l.ends_with("=0"), "masked /proc file readable: {l} ({o})");
    }
    // timer_list has content on the host: the mask is real.
    if std::fs::metadata("/proc/timer_list").is_ok() {
        assert!(!std::fs::read("/proc/timer_list").unwrap_or_default().is_empty());
    }
    // Where the kernel has the file, the container sees /dev/null (char
    // 1:3) there: a write goes nowhere, as with runc and crun.
    let o = run_sh(&env, &[], "for f in kcore keys timer_list; do [ -e /proc/$f ] && stat -c \"$f=%F:%t:%T\" /proc/$f; done; true");
    assert!(o.ok(), "{o}");
    for l in o.stdout.lines() {
        assert!(l.ends_with("=character special file:1:3"), "masked /proc file is not /dev/null: {l} ({o})");
    }
    if std::fs::metadata("/proc/keys").is_ok() {
        assert!(o.stdout.contains("keys="), "/proc/keys exists on the host, so it is masked, not absent: {o}");
    }
}

#[test]
fn proc_sys_is_read_only() {
    let env = Env::new("proc_sys_is_read_only");
    let o = run_sh(
        &env,
        &[],
        "f=/proc/sys/net/ipv4/ip_forward; v=$(cat $f); echo $((1-v)) > $f; echo rc=$?; [ \"$(cat $f)\" = \"$v\" ] && echo unchanged",
    );
    assert!(o.stdout.starts_with("rc=1"), "{o}");
    assert!(o.stderr.contains("Read-only file system"), "{o}");
    assert_eq!(o.stdout.lines().nth(1), Some("unchanged"), "{o}");
    let o = run_sh(&env, &[], "echo 1 > /proc/sys/kernel/panic; echo rc=$?");
    assert!(o.stdout.starts_with("rc=1"), "{o}");
}

#[test]
fn sysrq_trigger_is_not_writable() {
    let env = Env::new("sysrq_trigger_is_not_writable");
    let o = run_sh(&env, &[], "echo h > /proc/sysrq-trigger; echo rc=$?");
    assert!(o.stdout.starts_with("rc=1"), "{o}");
}

#[test]
fn sys_is_read_only() {
    let env = Env::new("sys_is_read_only");
    let o = run_sh(&env, &[], "grep ' /sys ' /proc/mounts; echo 1 > /sys/kernel/uevent_helper; echo rc=$?");
    let line = o.stdout.lines().next().unwrap_or("");
    assert!(line.split_whitespace().nth(3).is_some_and(|opts| opts.split(',').any(|x| x == "ro")), "/sys mounted ro: {o}");
    assert!(o.stdout.contains("rc=1"), "{o}");
}

#[test]
fn default_caps_no_new_privs_seccomp() {
    let env = Env::new("default_caps_no_new_privs_seccomp");
    let o = run_sh(&env, &[], "cat /proc/self/status");
    assert!(o.ok(), "{o}");
    assert_eq!(status_field(&o.stdout, "CapEff"), Some(DOCKER_DEFAULT_CAPS));
    assert_eq!(status_field(&o.stdout, "CapPrm"), Some(DOCKER_DEFAULT_CAPS));
    assert_eq!(status_field(&o.stdout, "CapBnd"), Some(DOCKER_DEFAULT_CAPS));
    assert_eq!(status_field(&o.stdout, "NoNewPrivs"), Some("1"));
    assert_eq!(status_field(&o.stdout, "Seccomp"), Some("2"));
    // exec gets the same treatment.
    let n = env.name("c");
    env.run_detached(&n, &["busybox", "sleep", "300"]);
    let o = env.berth(&["exec", &n, "cat", "/proc/self/status"]);
    assert_eq!(status_field(&o.stdout, "CapEff"), Some(DOCKER_DEFAULT_CAPS), "{o}");
    assert_eq!(status_field(&o.stdout, "NoNewPrivs"), Some("1"));
    assert_eq!(status_field(&o.stdout, "Seccomp"), Some("2"));
}

#[test]
fn seccomp_blocks_user_namespaces() {
    let env = Env::new("seccomp_blocks_user_namespaces");
    // The kernel lets an unprivileged process make a user namespace; Docker's
    // seccomp profile does not.
    let o = run_sh(&env, &[], "unshare -U true; echo rc=$?");
    assert!(o.stdout.contains("rc=1"), "{o}");
    assert!(o.stderr.contains("Operation not permitted"), "{o}");
    let o = run_sh(&env, &["--privileged"], "unshare -U true; echo rc=$?");
    assert!(o.stdout.contains("rc=0"), "privileged has no seccomp filter: {o}");
}

#[test]
fn cap_add_net_admin_allows_ip_addr() {
    let env = Env::new("cap_add_net_admin_allows_ip_addr");
    let o = run_sh(&env, &[], "ip addr add 10.1.2.3/32 dev lo; echo rc=$?");
    assert!(!o.stdout.contains("rc=0"), "default must refuse: {o}");
    assert!(o.stderr.contains("Operation not permitted"), "{o}");
    let o = run_sh(&env, &["--cap-add", "NET_ADMIN"], "ip addr add 10.1.2.3/32 dev lo; echo rc=$?; ip addr show lo; grep CapEff /proc/self/status");
    assert!(o.stdout.contains("rc=0"), "{o}");
    assert!(o.stdout.contains("10.1.2.3/32"), "{o}");
    // NET_ADMIN is bit 12.
    assert!(o.stdout.contains("00000000a80435fb"), "{o}");
    let n = env.name("c");
    env.run_detached(&n, &["--cap-add", "NET_ADMIN", "busybox", "sleep", "300"]);
    assert_eq!(env.inspect(&n)["HostConfig"]["CapAdd"], serde_json::json!(["NET_ADMIN"]));
}

#[test]
fn cap_drop_mknod_refuses_mknod() {
    let env = Env::new("cap_drop_mknod_refuses_mknod");
    let o = run_sh(&env, &[], "mknod /tmp/n c 1 3; echo rc=$?; echo hi > /tmp/n; echo w=$?");
    assert_eq!(o.stdout, "rc=0\nw=0\n", "the default set allows mknod of an allowed device (Docker does): {o}");
    let o = run_sh(&env, &["--cap-drop", "MKNOD"], "mknod /tmp/n c 1 3; echo rc=$?; grep CapEff /proc/self/status");
    assert!(o.stdout.contains("rc=1"), "{o}");
    assert!(o.stderr.contains("Operation not permitted"), "{o}");
    // MKNOD is bit 27.
    assert!(o.stdout.contains("00000000a00425fb"), "{o}");
    let o = env.berth(&["run", "--rm", "--cap-drop", "NOSUCHCAP", "busybox", "true"]);
    assert_eq!(o.code, 125, "unknown capability: {o}");
}

#[test]
fn sysctl_namespaced_is_set_inside_only() {
    let env = Env::new("sysctl_namespaced_is_set_inside_only");
    let before = host_file("/proc/sys/net/ipv4/ip_forward");
    let o = env.berth(&["run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", "busybox", "cat", "/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!((o.code, o.out()), (0, "1"), "{o}");
    assert_eq!(host_file("/proc/sys/net/ipv4/ip_forward"), before, "host value changed");
    let o = env.berth(&["run", "--rm", "--sysctl", "kernel.shmmax=12345678", "busybox", "cat", "/proc/sys/kernel/shmmax"]);
    assert_eq!((o.code, o.out()), (0, "12345678"), "{o}");
}

#[test]
fn sysctl_not_namespaced_is_refused() {
    let env = Env::new("sysctl_not_namespaced_is_refused");
    let before = host_hostname();
    let n = env.name("bad");
    let o = env.berth(&["run", "--rm", "--name", &n, "--sysctl", "kernel.hostname=x", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("kernel.hostname"), "message names the sysctl: {o}");
    assert_eq!(host_hostname(), before);
    assert!(!env.ok(&["ps", "-a"]).contains(&n), "no container is left behind");
    let o = env.berth(&["run", "--rm", "--sysctl", "vm.swappiness=1", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
}

#[test]
fn privileged_mount_proc_sys_and_caps() {
    let env = Env::new("privileged_mount_proc_sys_and_caps");
    let host_bnd = status_field(&std::fs::read_to_string("/proc/self/status").unwrap(), "CapBnd").unwrap().to_string();
    let before = host_file("/proc/sys/net/ipv4/ip_forward");
    let o = run_sh(
        &env,
        &["--privileged"],
        "mount -t tmpfs t /tmp && echo mounted; grep ' /tmp ' /proc/mounts | cut -d' ' -f3; \
         echo 1 > /proc/sys/net/ipv4/ip_forward && cat /proc/sys/net/ipv4/ip_forward; \
         grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status",
    );
    assert!(o.ok(), "{o}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[..3], ["mounted", "tmpfs", "1"], "{o}");
    assert_eq!(status_field(&o.stdout, "CapEff"), Some(host_bnd.as_str()), "privileged gets the host's bounding set");
    assert_eq!(status_field(&o.stdout, "NoNewPrivs"), Some("0"));
    assert_eq!(status_field(&o.stdout, "Seccomp"), Some("0"));
    assert_eq!(host_file("/proc/sys/net/ipv4/ip_forward"), before, "host value changed");
    // /sys is writable.
    let o = run_sh(&env, &["--privileged"], "grep ' /sys ' /proc/mounts | cut -d' ' -f4");
    assert!(o.stdout.split(',').next() == Some("rw"), "{o}");
}

#[test]
fn privileged_sees_host_devices() {
    let env = Env::new("privileged_sees_host_devices");
    // Docker's --privileged gives the container the host's devices.
    let host: Vec<String> = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| std::path::Path::new("/dev").join(n).exists())
        .collect();
    assert!(!host.is_empty(), "host has no block devices in /dev?");
    let o = run_sh(&env, &["--privileged"], "ls /dev");
    assert!(o.ok(), "{o}");
    let inside: Vec<&str> = o.stdout.lines().collect();
    let missing: Vec<&String> = host.iter().filter(|d| !inside.contains(&d.as_str())).collect();
    assert!(missing.is_empty(), "host block devices missing in a privileged container: {missing:?}; /dev has {inside:?}");
    let o = run_sh(&env, &[], "ls /dev");
    assert!(!o.stdout.lines().any(|l| host.iter().any(|h| h == l)), "default container sees host block devices: {o}");
}

#[test]
fn a_block_device_node_is_useless_unless_privileged() {
    let env = Env::new("a_block_device_node_is_useless_unless_privileged");
    // The node is made and read in one go: the device allow-list (v1
    // devices cgroup, v2 BPF program) refuses both, whatever the caps say.
    let script = "mknod /tmp/b b 7 0; echo mknod=$?; head -c 1 /tmp/b >/dev/null; echo read=$?";
    let o = run_sh(&env, &[], script);
    assert!(o.stdout.contains("mknod=1") && o.stdout.contains("read=1"), "{o}");
    assert!(o.stderr.contains("Operation not permitted"), "{o}");
    // The host's loop0 (7:0) may exist only after its module loads: --privileged allows it all.
    let o = run_sh(&env, &["--privileged"], script);
    assert!(o.stdout.contains("mknod=0") && o.stdout.contains("read=0"), "{o}");
}

#[test]
fn device_flag_gives_one_host_device_with_its_permissions() {
    let env = Env::new("device_flag_gives_one_host_device_with_its_permissions");
    assert!(std::path::Path::new("/dev/loop0").exists(), "the host has /dev/loop0");
    // Read-only: reads work, a write open is refused, and no other block device is given.
    let o = run_sh(
        &env,
        &["--device", "/dev/loop0:/dev/xvda:r"],
        "ls -l /dev/xvda; head -c 1 /dev/xvda >/dev/null; echo read=$?; echo x > /dev/xvda; echo write=$?; mknod /tmp/l1 b 7 1; echo other=$?",
    );
    assert!(o.stdout.contains("read=0") && o.stdout.contains("write=1") && o.stdout.contains("other=1"), "{o}");
    assert!(o.stdout.starts_with('b') && o.stdout.contains("7,   0"), "a block node 7:0 at /dev/xvda: {o}");
    assert!(o.stderr.contains("Operation not permitted"), "{o}");
    // Without the flag, the same path is not there and cannot be made usable.
    let o = run_sh(&env, &[], "test -e /dev/xvda; echo exists=$?");
    assert!(o.stdout.contains("exists=1"), "{o}");
    // inspect shows it as docker does.
    let n = env.name("dev");
    env.run_detached(&n, &["--device", "/dev/loop0", "busybox", "sleep", "60"]);
    let v = env.inspect(&n);
    assert_eq!(v["HostConfig"]["Devices"][0]["PathOnHost"], "/dev/loop0", "{v}");
    assert_eq!(v["HostConfig"]["Devices"][0]["CgroupPermissions"], "rwm", "{v}");
    // Bad specs name the flag, the reason and the form; nothing is created.
    for (spec, why) in [("/dev/loop0:/x:rwz", "rwm"), ("/nonexistent", "No such file"), ("/etc/hostname", "not a device node")] {
        let o = env.berth(&["run", "--rm", "--device", spec, "busybox", "true"]);
        assert_eq!(o.code, 125, "{o}");
        assert!(o.stderr.contains("--device") && o.stderr.contains(why), "{o}");
    }
    assert_eq!(env.ok(&["ps", "-a", "-q"]).lines().count(), 1, "only the inspected container exists");
    // From a script.
    let f = env.dir.join("dev.rhai");
    std::fs::write(
        &f,
        "let c = run(\"busybox\", #{ devices: [\"/dev/loop0:/dev/xvda:r\"], cmd: [\"sh\", \"-c\", \"head -c 1 /dev/xvda >/dev/null && echo read-ok; echo x > /dev/xvda || echo write-refused\"] });\n\
         c.wait();\nlet l = c.logs();\nassert(l.contains(\"read-ok\") && l.contains(\"write-refused\"), l);\nc.remove();\nprint(\"devices ok\");\n",
    )
    .unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert!(o.ok() && o.stdout.contains("devices ok"), "{o}");
}
