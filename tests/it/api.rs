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
    /// The docker CLI `docker`, `docker_ok` and the tests' helpers run:
    /// DOCKER unless the test chose the 20.10 client.
    pub bin: &'static str,
}

impl Served {
    pub fn start(env: &Env) -> Served {
        let sock = env.run.join("docker.sock");
        Served::start_with(env, &[&format!("unix://{}", sock.display())], sock)
    }

    /// A server whose tests' commands go to the docker CLI `bin`.
    pub fn start_for(env: &Env, bin: &'static str) -> Served {
        assert!(std::path::Path::new(bin).exists(), "{bin} is missing: run scripts/deps");
        let mut s = Served::start(env);
        s.bin = bin;
        s
    }

    pub fn start_with(env: &Env, args: &[&str], sock: PathBuf) -> Served {
        let mut a = vec!["serve"];
        a.extend_from_slice(args);
        let log = std::fs::File::create(env.dir.join("serve.log")).unwrap();
        let child = env.cmd(&a).env("BERTH_LOG", "debug").stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("spawning berth serve");
        let config = env.dir.join("docker-config");
        std::fs::create_dir_all(&config).unwrap();
        let s = Served { child, sock, config, bin: DOCKER };
        if !s.sock.as_os_str().is_empty() && !args.iter().any(|a| a.starts_with("tcp://")) {
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
        self.docker_with(self.bin, args)
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

/// Makes two tests of each body `fn NAME(bin: &'static str)`: `NAME::docker_28`
/// with the 28.x CLI and `NAME::docker_20` with Debian's 20.10 (API 1.41).
macro_rules! both_clients {
    ($($body:ident),* $(,)?) => {
        $(
            mod $body {
                #[test]
                fn docker_28() {
                    super::$body(crate::api::DOCKER)
                }
                #[test]
                fn docker_20() {
                    super::$body(crate::api::DOCKER_20)
                }
            }
        )*
    };
}
pub(crate) use both_clients;

/// A test's name with the client in it, so the two runs of a body keep
/// apart where names meet on the host.
pub fn tagged(test: &str, bin: &str) -> String {
    if bin == DOCKER_20 { format!("{test}20") } else { test.to_string() }
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

/// A script serves the API; the docker CLI makes a volume through it,
/// and the script sees it as one of its own objects.
#[test]
fn a_script_serves_the_api_to_the_docker_cli() {
    let env = Env::bare("api_script");
    let sock = env.run.join("script.sock");
    let script = env.dir.join("serve.rhai");
    std::fs::write(
        &script,
        format!(
            r#"
let api = serve("unix://{}");
print(`serving ${{api.addr}}`);
wait_for(|| volumes().some(|v| v.name == "from-docker"), 60000);
api.stop();
print("saw from-docker");
"#,
            sock.display()
        ),
    )
    .unwrap();
    let child = env.cmd(&["run", script.to_str().unwrap()]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    assert!(wait_until(Duration::from_secs(20), || { std::os::unix::net::UnixStream::connect(&sock).is_ok() }), "the script's server did not listen");
    let config = env.dir.join("docker-config");
    let o = collect(
        Command::new(DOCKER).args(["volume", "create", "from-docker"]).env("DOCKER_HOST", format!("unix://{}", sock.display())).env("DOCKER_CONFIG", &config).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap(),
        Duration::from_secs(30),
    );
    assert!(o.ok(), "{o}");
    let out = collect(child, Duration::from_secs(60));
    assert!(out.ok() && out.stdout.contains("saw from-docker"), "{out}");
    assert!(!sock.exists(), "stop() left the socket");
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "from-docker");
}

/// Certificates for mutual TLS, made with openssl: a CA, the server's
/// (for IP `ip`), a client's signed by the CA, and a client's signed by a
/// CA the server does not know.
fn make_certs(dir: &std::path::Path, ip: &str) {
    let sh = |cmd: &str| {
        let o = Command::new("sh").arg("-ec").arg(cmd).current_dir(dir).output().unwrap();
        assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=berth-test-ca 2>/dev/null");
    sh(&format!(
        "openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj /CN=server 2>/dev/null; \
         printf 'subjectAltName=IP:{ip}\\nextendedKeyUsage=serverAuth\\n' > server.ext; \
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server-cert.pem -days 2 -extfile server.ext 2>/dev/null"
    ));
    sh("mkdir -p good bad; \
        openssl req -newkey rsa:2048 -nodes -keyout good/key.pem -out client.csr -subj /CN=client 2>/dev/null; \
        printf 'extendedKeyUsage=clientAuth\\n' > client.ext; \
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out good/cert.pem -days 2 -extfile client.ext 2>/dev/null; \
        cp ca.pem good/ca.pem; \
        openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca-key.pem -out other-ca.pem -days 2 -subj /CN=other-ca 2>/dev/null; \
        openssl req -newkey rsa:2048 -nodes -keyout bad/key.pem -out bad.csr -subj /CN=intruder 2>/dev/null; \
        openssl x509 -req -in bad.csr -CA other-ca.pem -CAkey other-ca-key.pem -CAcreateserial -out bad/cert.pem -days 2 -extfile client.ext 2>/dev/null; \
        cp ca.pem bad/ca.pem");
}

/// Two network namespaces joined by a veth pair, removed when dropped.
struct TwoHosts {
    server_ns: String,
    client_ns: String,
}

impl TwoHosts {
    fn new(tag: &str) -> TwoHosts {
        let (s, c) = (format!("bapi-s-{tag}"), format!("bapi-c-{tag}"));
        let t = TwoHosts { server_ns: s.clone(), client_ns: c.clone() };
        let ip = |args: &str| {
            let o = Command::new("sh").arg("-ec").arg(format!("ip {args}")).output().unwrap();
            assert!(o.status.success(), "ip {args}: {}", String::from_utf8_lossy(&o.stderr));
        };
        ip(&format!("netns add {s}"));
        ip(&format!("netns add {c}"));
        ip(&format!("link add bapi-{tag} netns {s} type veth peer name bapi-{tag} netns {c}"));
        ip(&format!("-n {s} addr add 10.231.0.1/24 dev bapi-{tag}"));
        ip(&format!("-n {c} addr add 10.231.0.2/24 dev bapi-{tag}"));
        ip(&format!("-n {s} link set bapi-{tag} up"));
        ip(&format!("-n {c} link set bapi-{tag} up"));
        ip(&format!("-n {s} link set lo up"));
        t
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Client and server on two "machines" (network namespaces): over TLS,
/// a client with a certificate the CA signed works; one without, or with
/// one another CA signed, gets nothing.
#[test]
fn mutual_tls_between_two_hosts() {
    let env = Env::bare("api_tls");
    let certs = env.dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_certs(&certs, "10.231.0.1");
    let hosts = TwoHosts::new(&format!("{}", std::process::id() % 100000));
    let c = |f: &str| certs.join(f).to_string_lossy().into_owned();
    let log = std::fs::File::create(env.dir.join("serve.log")).unwrap();
    let mut server = Command::new("ip")
        .args(["netns", "exec", &hosts.server_ns, BERTH, "serve", "tcp://10.231.0.1:2376", "--tlsverify", "--tlscacert", &c("ca.pem"), "--tlscert", &c("server-cert.pem"), "--tlskey", &c("server-key.pem")])
        .env("BERTH_ROOT", &env.root)
        .env("BERTH_RUN", &env.run)
        .env("BERTH_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let docker = |cert_dir: Option<&str>, args: &[&str]| -> Out {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &hosts.client_ns, DOCKER, "-H", "tcp://10.231.0.1:2376"]);
        if let Some(d) = cert_dir {
            cmd.arg("--tlsverify").env("DOCKER_CERT_PATH", certs.join(d));
        } else {
            cmd.arg("--tls").env("DOCKER_CERT_PATH", env.dir.join("no-certs"));
        }
        cmd.args(args).env("DOCKER_CONFIG", env.dir.join("docker-config")).env_remove("DOCKER_HOST").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        collect(cmd.spawn().unwrap(), Duration::from_secs(30))
    };
    let up = wait_until(Duration::from_secs(15), || docker(Some("good"), &["version", "--format", "{{.Server.Version}}"]).ok());
    let log = || std::fs::read_to_string(env.dir.join("serve.log")).unwrap_or_default();
    assert!(up, "the TLS server never answered a good client: {}", log());
    let good = docker(Some("good"), &["info", "--format", "{{.OSType}}"]);
    assert!(good.ok() && good.out() == "linux", "{good}");
    let bad = docker(Some("bad"), &["version", "--format", "{{.Server.Version}}"]);
    assert!(!bad.ok() && bad.stdout.trim().is_empty(), "a client the CA did not sign was served: {bad}");
    let none = docker(None, &["version", "--format", "{{.Server.Version}}"]);
    assert!(!none.ok() && none.stdout.trim().is_empty(), "a client without a certificate was served: {none}");
    assert!(log().contains("TLS handshake refused"), "{}", log());
    let _ = server.kill();
    let _ = server.wait();
}
