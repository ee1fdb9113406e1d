//! Exit codes of `berth run`: 125 engine error, 126 cannot invoke, 127 not
//! found, otherwise the container's own code.

use crate::util::*;

#[test]
fn unknown_image_is_125() {
    let env = Env::new("unknown_image_is_125");
    let o = env.berth(&["run", "--rm", "nosuchimage", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("No such image"), "{o}");
    assert!(o.stderr.contains("nosuchimage"), "{o}");
    let o = env.berth(&["create", "nosuchimage:v2"]);
    assert_eq!(o.code, 125, "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "no container made for an unknown image");
}

#[test]
fn command_not_found_is_127() {
    let env = Env::new("command_not_found_is_127");
    let o = env.berth(&["run", "--rm", "busybox", "nosuch"]);
    assert_eq!(o.code, 127, "{o}");
    assert!(o.stderr.contains("executable file not found"), "{o}");
    assert!(o.stderr.contains("nosuch"), "{o}");
    let o = env.berth(&["run", "--rm", "busybox", "/bin/nosuch"]);
    assert_eq!(o.code, 127, "{o}");
    // Detached: the failure still reaches the user.
    let n = env.name("d");
    let o = env.berth(&["run", "-d", "--name", &n, "busybox", "nosuch"]);
    assert_eq!(o.code, 127, "{o}");
    assert!(o.stderr.contains("executable file not found"), "{o}");
}

#[test]
fn not_executable_is_126() {
    let env = Env::new("not_executable_is_126");
    let o = env.berth(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(o.code, 126, "{o}");
    assert!(o.stderr.contains("/etc/passwd"), "{o}");
    assert!(o.stderr.to_lowercase().contains("permission denied"), "{o}");
    let o = env.berth(&["run", "--rm", "busybox", "/tmp"]);
    assert_eq!(o.code, 126, "a directory cannot be run: {o}");
}

#[test]
fn container_exit_code_passes_through() {
    let env = Env::new("container_exit_code_passes_through");
    for code in [0, 1, 3, 42, 255] {
        let o = env.berth(&["run", "--rm", "busybox", "sh", "-c", &format!("exit {code}")]);
        assert_eq!(o.code, code, "{o}");
    }
    // pid 1 cannot be killed from inside its own namespace (the kernel
    // ignores it), as with Docker.
    let o = env.berth(&["run", "--rm", "busybox", "sh", "-c", "kill -9 $$; echo still-here"]);
    assert_eq!((o.code, o.out()), (0, "still-here"), "{o}");
}

#[test]
fn bad_memory_value_is_125() {
    let env = Env::new("bad_memory_value_is_125");
    for bad in ["12zz", "abc", "-5m"] {
        let o = env.berth(&["run", "--rm", &format!("--memory={bad}"), "busybox", "true"]);
        assert_eq!(o.code, 125, "--memory {bad}: {o}");
        assert!(o.stderr.contains(bad), "message names the bad value {bad}: {o}");
    }
    let o = env.berth(&["run", "--rm", "--cpus", "lots", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    let o = env.berth(&["run", "--rm", "--restart", "sometimes", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn unknown_option_is_125_and_named() {
    let env = Env::new("unknown_option_is_125_and_named");
    let o = env.berth(&["run", "--rm", "--bogus", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("--bogus"), "{o}");
    assert!(!o.stderr.contains("No such image"), "an unknown option is reported as such, not as an image name: {o}");
}

#[test]
fn no_such_container_errors() {
    let env = Env::new("no_such_container_errors");
    for cmd in ["stop", "start", "kill", "rm", "inspect", "logs", "wait", "pause"] {
        let o = env.berth(&[cmd, "nosuch-ctr"]);
        assert_ne!(o.code, 0, "{cmd}: {o}");
        assert!(o.stderr.contains("nosuch-ctr"), "{cmd} names the container: {o}");
    }
    let o = env.berth(&["exec", "nosuch-ctr", "true"]);
    assert_ne!(o.code, 0, "{o}");
}
