//! The ecosystem's clients against `berth serve`: docker-compose 1.29
//! (Debian), docker-py 7 and testcontainers-python (PyPI, in the venv
//! scripts/deps makes). Each drives berth through the API only; the test
//! then checks with berth's own CLI that the objects are berth's.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::api::Served;
use crate::util::{Env, Out, collect};

/// The venv scripts/deps fills with docker-py and testcontainers.
pub const PYTHON: &str = "/opt/berth-venv/bin/python";

fn run(mut cmd: Command, timeout: Duration) -> Out {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    collect(cmd.spawn().expect("spawning a client"), timeout)
}

/// Two services (a web server with a healthcheck, and a client that
/// waits for it to be healthy), a network and a volume: up, ps, logs,
/// exec and down -v, all through docker-compose.
#[test]
fn docker_compose_up_ps_logs_exec_down() {
    let env = Env::new("api_compose");
    let s = Served::start(&env);
    let dir = env.dir.join("proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        r#"version: "2.4"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && httpd -f -p 80 -h /www"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      retries: 20
    networks: [back]
    volumes: ["data:/data"]
  client:
    image: busybox
    command: ["sh", "-c", "wget -q -O - http://web/ && sleep 300"]
    depends_on:
      web:
        condition: service_healthy
    networks: [back]
networks:
  back: {}
volumes:
  data: {}
"#,
    )
    .unwrap();
    let compose = |args: &[&str]| -> Out {
        let mut c = Command::new("docker-compose");
        c.args(["-p", "bapi"]).args(args).current_dir(&dir).env("DOCKER_HOST", s.host()).env("COMPOSE_INTERACTIVE_NO_CLI", "1");
        run(c, Duration::from_secs(180))
    };
    let up = compose(&["up", "-d"]);
    assert!(up.ok(), "{up}\n{}", s.log(&env));
    let ps = compose(&["ps"]);
    assert!(ps.ok() && ps.stdout.contains("bapi_web_1") && ps.stdout.contains("bapi_client_1") && ps.stdout.contains("Up"), "{ps}");
    // The client waited for a healthy web, then fetched its page.
    let ok = crate::util::wait_until(Duration::from_secs(30), || compose(&["logs", "client"]).stdout.contains("hello-from-web"));
    assert!(ok, "{}", compose(&["logs"]));
    let ex = compose(&["exec", "-T", "web", "sh", "-c", "echo $((6*7)) > /data/x; cat /data/x"]);
    assert!(ex.ok() && ex.stdout.trim() == "42", "{ex}");
    // They are berth's containers, network and volume.
    let names = env.ok(&["ps", "--format", "{{.Names}}"]);
    assert!(names.contains("bapi_web_1") && names.contains("bapi_client_1"), "{names}");
    assert!(env.ok(&["network", "ls"]).contains("bapi_back"));
    assert!(env.ok(&["volume", "ls", "-q"]).contains("bapi_data"));
    let down = compose(&["down", "-v"]);
    assert!(down.ok(), "{down}");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "down left containers");
    assert!(!env.ok(&["network", "ls"]).contains("bapi_back"), "down left the network");
    assert!(!env.ok(&["volume", "ls", "-q"]).contains("bapi_data"), "down -v left the volume");
}

/// docker-py: run with remove (output returned), detached run with
/// streamed logs, exec_run, a build, networks and volumes.
#[test]
fn docker_py_drives_berth() {
    let env = Env::new("api_dockerpy");
    let s = Served::start(&env);
    let ctx = env.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo built > /built\nCMD [\"cat\", \"/built\"]\n").unwrap();
    let script = format!(
        r#"
import docker, sys
c = docker.DockerClient(base_url="{host}", version="auto", timeout=60)
out = c.containers.run("busybox", ["echo", "hi"], remove=True)
assert out == b"hi\n", out
d = c.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo line$i; done; sleep 300"], detach=True, name="pyd")
seen = b""
for chunk in d.logs(stream=True, follow=True):
    seen += chunk
    if b"line3" in seen:
        break
assert b"line1\nline2\nline3" in seen, seen
code, out = d.exec_run(["sh", "-c", "echo $((6*7))"])
assert code == 0 and out == b"42\n", (code, out)
code, out = d.exec_run(["sh", "-c", "exit 3"])
assert code == 3, code
img, logs = c.images.build(path="{ctx}", tag="pybuilt:1")
assert any("Step 2/3" in (l.get("stream") or "") for l in logs), list(logs)
assert c.containers.run("pybuilt:1", remove=True) == b"built\n"
n = c.networks.create("pynet", labels={{"k": "v"}})
n.connect(d, aliases=["dee"])
d.reload()
assert "pynet" in d.attrs["NetworkSettings"]["Networks"], d.attrs["NetworkSettings"]
n.disconnect(d)
n.remove()
v = c.volumes.create("pyvol", labels={{"k": "v"}})
assert c.volumes.get("pyvol").attrs["Labels"] == {{"k": "v"}}
v.remove()
d.remove(force=True)
c.images.remove("pybuilt:1")
print("docker-py ok")
"#,
        host = s.host(),
        ctx = ctx.display()
    );
    let mut c = Command::new(PYTHON);
    c.args(["-c", &script]);
    let o = run(c, Duration::from_secs(300));
    assert!(o.ok() && o.stdout.contains("docker-py ok"), "{o}\n{}", s.log(&env));
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

/// testcontainers-python, Ryuk disabled: a container with a wait-for-log
/// strategy and an exposed port, reached over TCP.
#[test]
fn testcontainers_waits_for_a_log_and_reaches_an_exposed_port() {
    let env = Env::new("api_testcontainers");
    let s = Served::start(&env);
    let script = r#"
import socket
from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import wait_for_logs
c = DockerContainer("busybox").with_command(["sh", "-c", "echo ready; while true; do echo pong | nc -l -p 7000; done"]).with_exposed_ports(7000)
with c:
    wait_for_logs(c, "ready", timeout=30)
    host, port = c.get_container_host_ip(), int(c.get_exposed_port(7000))
    with socket.create_connection((host, port), timeout=10) as s:
        data = s.recv(16)
    assert data == b"pong\n", data
print("testcontainers ok")
"#;
    let mut c = Command::new(PYTHON);
    c.args(["-c", script]).env("DOCKER_HOST", s.host()).env("TESTCONTAINERS_RYUK_DISABLED", "true");
    let o = run(c, Duration::from_secs(180));
    assert!(o.ok() && o.stdout.contains("testcontainers ok"), "{o}\n{}", s.log(&env));
    assert_eq!(env.ok(&["ps", "-aq"]), "", "the context manager removed its container");
}
