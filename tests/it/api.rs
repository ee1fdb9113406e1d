//! The Docker Engine API (`berth serve`) driven by real clients: the
//! docker CLI (28.x at /usr/local/bin/docker, and Debian's 20.10 at
//! /usr/bin/docker when installed), docker-compose, docker-py and
//! testcontainers-python. This file holds what those tests share and the
//! tests of the server itself; each area has its own file beside it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{BERTH, Env, Out, collect, wait_until};

/// The docker CLI of the machine image (API 1.50, negotiates down).
pub const DOCKER: &str = "/usr/local/bin/docker";
/// Debian's docker.io client (API 1.41), installed by scripts/deps.
pub const DOCKER_20: &str = "/usr/bin/docker";

/// A `berth serve` on a unix socket in the test's run dir, killed (and its
/// socket removed) when dropped.
pub struct Served {
    pub child: Child,
    pub sock: PathBuf,
    /// The client's own config dir, so nothing of the user's is read or written.
    pub config: PathBuf,
}

impl Served {
    pub fn start(env: &Env) -> Served {
        let sock = env.run.join("docker.sock");
        Served::start_with(env, &[&format!("unix://{}", sock.display())], sock)
    }

    pub fn start_with(env: &Env, args: &[&str], sock: PathBuf) -> Served {
        let mut a = vec!["serve"];
        a.extend_from_slice(args);
        let log = std::fs::File::create(env.dir.join("serve.log")).unwrap();
        let child = env.cmd(&a).env("BERTH_LOG", "debug").stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("spawning berth serve");
        let config = env.dir.join("docker-config");
        std::fs::create_dir_all(&config).unwrap();
        let s = Served { child, sock, config };
        if s.sock.as_os_str().len() > 0 && !args.iter().any(|a| a.starts_with("tcp://")) {
            assert!(wait_until(Duration::from_secs(10), || std::os::unix::net::UnixStream::connect(&s.sock).is_ok()), "berth serve did not listen on {}: {}", s.sock.display(), s.log(env));
        }
        s
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    pub fn log(&self, env: &Env) -> String {
        std::fs::read_to_string(env.dir.join("serve.log")).unwrap_or_default()
    }

    /// A docker CLI command (`bin`: DOCKER or DOCKER_20) aimed at this server.
    pub fn docker_cmd(&self, bin: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.args(args).env("DOCKER_HOST", self.host()).env("DOCKER_CONFIG", &self.config).env_remove("DOCKER_TLS_VERIFY").env_remove("DOCKER_CERT_PATH").env_remove("DOCKER_CONTEXT");
        c
    }

    /// Runs the docker CLI with stdin closed.
    pub fn docker_with(&self, bin: &str, args: &[&str]) -> Out {
        let child = self.docker_cmd(bin, args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawning docker");
        collect(child, Duration::from_secs(120))
    }

    pub fn docker(&self, args: &[&str]) -> Out {
        self.docker_with(DOCKER, args)
    }

    /// Runs the docker CLI and asserts it succeeded; trimmed stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(o.ok(), "`docker {}` failed: {o}", args.join(" "));
        o.out().to_string()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
    }
}

/// Whether Debian's docker 20.10 client is installed (scripts/deps does).
pub fn have_docker_20() -> bool {
    std::path::Path::new(DOCKER_20).exists()
}

#[test]
fn version_negotiation_ping_and_info() {
    let env = Env::bare("api_version");
    let s = Served::start(&env);
    let v = s.docker_ok(&["version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}} {{.Server.Os}}"]);
    assert_eq!(v, "1.47 1.47 linux", "the 1.50 client negotiates down to berth's 1.47");
    let info = s.docker_ok(&["info", "--format", "{{.Driver}} {{.Containers}} {{.OSType}}"]);
    assert_eq!(info, "overlay 0 linux");
    // An unknown endpoint is docker's 404 with a message, not a hang.
    let o = s.docker(&["plugin", "ls"]);
    assert!(!o.ok() && o.stderr.contains("page not found"), "{o}");
    let _ = BERTH;
}

#[test]
fn idle_time_ends_the_server_and_removes_its_socket() {
    let env = Env::bare("api_idle");
    let sock = env.run.join("idle.sock");
    let mut s = Served::start_with(&env, &[&format!("unix://{}", sock.display()), "--time", "1"], sock.clone());
    s.docker_ok(&["version"]);
    assert!(wait_until(Duration::from_secs(10), || matches!(s.child.try_wait(), Ok(Some(_)))), "serve --time 1 still runs");
    assert!(!sock.exists(), "the socket outlived the server");
}

#[test]
fn plain_tcp_is_refused_without_insecure() {
    let env = Env::bare("api_tcp");
    let o = env.berth(&["serve", "tcp://127.0.0.1:0"]);
    assert!(!o.ok() && o.stderr.contains("without TLS") && o.stderr.contains("--insecure"), "{o}");
}
