//! Registries: a real Debian `docker-registry` (distribution) started by
//! each test on a free loopback port with its own storage, plus a tiny
//! lying registry for the digest refusal.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::util::*;

/// A docker-registry process, killed (by pid) on drop.
pub(crate) struct Registry {
    child: Child,
    pub addr: String,
}

impl Registry {
    pub(crate) fn start(env: &Env, htpasswd: Option<(&str, &str)>) -> Registry {
        let dir = env.dir.join(format!("registry-{}", free_port()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        if let Some((u, p)) = htpasswd {
            let o = Command::new("htpasswd").args(["-Bbn", u, p]).output().expect("htpasswd (apache2-utils)");
            assert!(o.status.success());
            std::fs::write(dir.join("htpasswd"), &o.stdout).unwrap();
            cfg.push_str(&format!("auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n", dir.join("htpasswd").display()));
        }
        std::fs::write(dir.join("config.yml"), cfg).unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry (Debian package docker-registry)");
        let r = Registry { child, addr };
        assert!(wait_until(Duration::from_secs(10), || TcpStream::connect(&r.addr).is_ok()), "registry did not start on {}", r.addr);
        r
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn auth_env(env: &Env) -> PathBuf {
    env.dir.join("auth.json")
}

fn berth_auth(env: &Env, args: &[&str]) -> Out {
    env.berth(args)
}

#[test]
fn push_remove_pull_run() {
    let env = Env::new("push_remove_pull_run");
    let reg = Registry::start(&env, None);
    let name = format!("{}/lab/bb:1", reg.addr);
    let id = env.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    env.ok(&["tag", "busybox", &name]);
    let o = env.berth(&["push", &name]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stderr.contains("digest: sha256:"), "push reports the digest: {o}");
    env.ok(&["rmi", &name]);
    env.ok(&["rmi", "busybox"]);
    assert_eq!(env.ok(&["images", "-q"]), "", "the store is empty");
    let o = env.berth(&["pull", &name]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stderr.contains("downloading"), "piped progress is plain lines: {o}");
    assert_eq!(env.ok(&["image", "inspect", "-f", "{{.Id}}", &name]), id, "same image id after the round trip");
    let o = env.berth(&["run", "--rm", &name, "echo", "pulled"]);
    assert_eq!((o.code, o.out()), (0, "pulled"), "{o}");
    // The store stays an OCI layout that other tools read.
    let o = Command::new("skopeo").args(["inspect", &format!("oci:{}:{name}", env.root.display())]).output().unwrap();
    assert!(o.status.success(), "skopeo inspect oci:ROOT: {}", String::from_utf8_lossy(&o.stderr));
    // berth build pulls a FROM image that is not here, as docker build.
    env.ok(&["rmi", &name]);
    let ctx = env.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {name}\nRUN echo built-on-pulled > /b\n")).unwrap();
    let o = env.berth(&["build", "-t", "lab/onpulled", ctx.to_str().unwrap()]);
    assert!(o.ok() && o.stdout.contains(&format!("Pulling {name}, which is not here")), "{o}");
    assert_eq!(env.ok(&["image", "inspect", "-f", "{{.Id}}", &name]), id);
    assert_eq!(env.ok(&["run", "--rm", "lab/onpulled", "cat", "/b"]), "built-on-pulled");
}

#[test]
fn pull_by_digest_and_a_second_pull_reuses_layers() {
    let env = Env::new("pull_by_digest_and_a_second_pull_reuses_layers");
    let reg = Registry::start(&env, None);
    let a = format!("{}/lab/a:1", reg.addr);
    env.ok(&["tag", "busybox", &a]);
    let o = env.berth(&["push", &a]);
    assert_eq!(o.code, 0, "{o}");
    let digest = o.stderr.lines().find_map(|l| l.split("digest: ").nth(1)).and_then(|s| s.split_whitespace().next()).expect("digest line").to_string();
    env.ok(&["rmi", &a]);
    // A second image on the same base, pushed too.
    let b = format!("{}/lab/b:1", reg.addr);
    env.ok(&["tag", "busybox", &b]);
    assert_eq!(env.berth(&["push", &b]).code, 0);
    env.ok(&["rmi", &b]);
    env.ok(&["rmi", "busybox"]);
    let o = env.berth(&["pull", &format!("{}/lab/a@{digest}", reg.addr)]);
    assert_eq!(o.code, 0, "pull by digest: {o}");
    let o = env.berth(&["pull", &b]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stderr.contains("already exists"), "the shared layer is not downloaded again: {o}");
    assert!(!o.stderr.contains("downloading"), "{o}");
}

#[test]
fn login_with_basic_auth() {
    let env = Env::new("login_with_basic_auth");
    let reg = Registry::start(&env, Some(("alice", "s3cret")));
    let name = format!("{}/lab/private:1", reg.addr);
    env.ok(&["tag", "busybox", &name]);
    let o = berth_auth(&env, &["push", &name]);
    assert_eq!(o.code, 125, "push without credentials fails: {o}");
    assert!(o.stderr.to_lowercase().contains("unauthorized") || o.stderr.contains("401"), "{o}");
    let o = berth_auth(&env, &["login", "-u", "alice", "-p", "wrong", &reg.addr]);
    assert_eq!(o.code, 125, "a wrong password is refused: {o}");
    assert!(!auth_env(&env).exists() || !std::fs::read_to_string(auth_env(&env)).unwrap().contains(&reg.addr), "nothing stored for a failed login");
    let o = berth_auth(&env, &["login", "-u", "alice", "-p", "s3cret", &reg.addr]);
    assert_eq!((o.code, o.out()), (0, "Login Succeeded"), "{o}");
    let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(auth_env(&env)).unwrap()).unwrap();
    assert_eq!(stored["auths"][&reg.addr]["auth"], "YWxpY2U6czNjcmV0", "docker's base64 user:password");
    let o = berth_auth(&env, &["push", &name]);
    assert_eq!(o.code, 0, "{o}");
    env.ok(&["rmi", &name]);
    let o = berth_auth(&env, &["pull", &name]);
    assert_eq!(o.code, 0, "{o}");
    let o = berth_auth(&env, &["search", "--registry", &reg.addr, "priv"]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("lab/private"), "{o}");
}

/// Reads one HTTP request's head from the test servers below; returns its
/// request line.
fn read_request(s: &TcpStream) -> Option<String> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
    }
    Some(line)
}

/// Serves one image whose layer bytes do not match the manifest's digest.
fn lying_registry() -> (String, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let layer_real = b"this is not the layer you are looking for".to_vec();
    let claimed = format!("sha256:{}", hex::encode(Sha256::digest(b"another layer")));
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [claimed]}}).to_string();
    let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(config.as_bytes())));
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": claimed, "size": layer_real.len()}]
    })
    .to_string();
    let h = std::thread::spawn(move || {
        l.set_nonblocking(false).unwrap();
        for s in l.incoming().take(20) {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let Some(line) = read_request(&s) else { continue };
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let (ct, body): (&str, Vec<u8>) = if path == "/v2/" {
                ("application/json", b"{}".to_vec())
            } else if path.contains("/manifests/") {
                ("application/vnd.oci.image.manifest.v1+json", manifest.clone().into_bytes())
            } else if path.ends_with(&config_digest) {
                ("application/octet-stream", config.clone().into_bytes())
            } else if path.contains("/blobs/") {
                ("application/octet-stream", layer_real.clone())
            } else {
                ("text/plain", Vec::new())
            };
            let status = if body.is_empty() { "404 Not Found" } else { "200 OK" };
            let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = s.write_all(&body);
            let mut rest = Vec::new();
            let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
            let _ = s.read_to_end(&mut rest);
        }
    });
    (addr, h)
}

#[test]
fn wrong_digest_is_refused_and_leaves_nothing() {
    let env = Env::new("wrong_digest_is_refused_and_leaves_nothing");
    let (addr, _h) = lying_registry();
    let before = env.ok(&["images", "-q"]);
    let o = env.berth(&["pull", &format!("{addr}/lab/evil:1")]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("digest"), "the error says why: {o}");
    assert_eq!(env.ok(&["images", "-q"]), before, "no image and no tag");
    let tmp: Vec<_> = std::fs::read_dir(env.root.join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "nothing half-written under tmp: {tmp:?}");
    // The next pull from an honest registry works.
    let reg = Registry::start(&env, None);
    let name = format!("{}/lab/ok:1", reg.addr);
    env.ok(&["tag", "busybox", &name]);
    assert_eq!(env.berth(&["push", &name]).code, 0);
    env.ok(&["rmi", &name]);
    assert_eq!(env.berth(&["pull", &name]).code, 0);
}

#[test]
fn script_pull_tag_push() {
    let env = Env::new("script_pull_tag_push");
    let reg = Registry::start(&env, None);
    let f = env.dir.join("reg.rhai");
    std::fs::write(
        &f,
        format!(
            r#"
let name = "{0}/lab/s:1";
let img = image("busybox");
let digest = img.push(name);
assert(digest.starts_with("sha256:"), "push returns the digest");
img.tag("{0}/lab/s:2");
assert(image("{0}/lab/s:2").id == img.id, "tag points at the same image");
let p = pull(name);
assert_eq(p.id, img.id);
let r = run_once(name, ["echo", "from-script"]);
assert_eq(r.stdout, "from-script\n");
print("registry ok");
"#,
            reg.addr
        ),
    )
    .unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("registry ok"), "{o}");
}

#[test]
fn image_prune_keeps_what_containers_use() {
    let env = Env::new("image_prune_keeps_what_containers_use");
    env.ok(&["tag", "busybox", "keep:1"]);
    // An untagged (dangling) image: its tag taken by a newer import.
    let tar = busybox_tar().to_str().unwrap().to_string();
    env.ok(&["image", "import", "-c", "CMD [\"true\"]", &tar, "dangling:1"]);
    let dangling = env.ok(&["image", "inspect", "-f", "{{.Id}}", "dangling:1"]);
    env.ok(&["image", "import", "-c", "CMD [\"false\"]", &tar, "dangling:1"]);
    env.ok(&["rmi", "dangling:1"]);
    assert!(env.ok(&["images", "-q"]).contains(&dangling.trim_start_matches("sha256:")[..12]), "it is there, untagged: {}", env.ok(&["images"]));
    let user = env.name("user");
    env.ok(&["create", "--name", &user, "keep:1", "true"]);
    let o = env.berth(&["image", "prune"]);
    assert!(o.code == 0 && o.stdout.contains("This will remove all dangling images"), "it asks: {o}");
    assert!(env.ok(&["images", "-q"]).contains(&dangling.trim_start_matches("sha256:")[..12]), "no answer, nothing removed");
    let o = env.berth(&["image", "prune", "-f"]);
    assert_eq!(o.code, 0, "{o}");
    let left = env.ok(&["images", "-q"]);
    assert!(!left.contains(&dangling.trim_start_matches("sha256:")[..12]), "the dangling image is gone: {left}");
    assert!(!left.is_empty(), "tagged images stay: {left}");
    let o = env.berth(&["image", "prune", "-a", "-f"]);
    assert_eq!(o.code, 0, "{o}");
    assert!(env.ok(&["image", "inspect", "-f", "{{.RepoTags}}", "keep:1"]).contains("keep:1"), "an image a container uses stays");
    env.ok(&["rm", &user]);
    let o = env.berth(&["image", "prune", "-a", "-f"]);
    assert!(o.stdout.contains("Total reclaimed space"), "{o}");
    assert_eq!(env.ok(&["images", "-q"]), "", "nothing unused is left");
}

#[test]
fn leftovers_of_a_killed_import_are_swept() {
    let env = Env::new("leftovers_of_a_killed_import_are_swept");
    // A pid that cannot be alive (above the kernel's pid_max).
    let stale = env.root.join("tmp/import-4194305-deadbeefdeadbeef");
    std::fs::create_dir_all(stale.join("diff")).unwrap();
    env.ok(&["images"]);
    assert!(!stale.exists(), "engine start-up removed a dead import's scratch dir");
}

fn http(addr: &str, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let code = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, resp)
}

#[test]
fn multi_platform_index_picks_the_hosts_platform() {
    let env = Env::new("multi_platform_index_picks_the_hosts_platform");
    let reg = Registry::start(&env, None);
    // Two single-platform images in one repository...
    let host = format!("{}/lab/multi:host", reg.addr);
    env.ok(&["tag", "busybox", &host]);
    let o = env.berth(&["push", &host]);
    assert_eq!(o.code, 0, "{o}");
    let host_digest = o.stderr.lines().find_map(|l| l.split("digest: ").nth(1)).and_then(|s| s.split_whitespace().next()).unwrap().to_string();
    let tar = busybox_tar().to_str().unwrap().to_string();
    env.ok(&["image", "import", "-c", "CMD [\"echo\", \"other\"]", &tar, "other:1"]);
    let other = format!("{}/lab/multi:other", reg.addr);
    env.ok(&["tag", "other:1", &other]);
    let o = env.berth(&["push", &other]);
    let other_digest = o.stderr.lines().find_map(|l| l.split("digest: ").nth(1)).and_then(|s| s.split_whitespace().next()).unwrap().to_string();
    // ...joined by an index that lists the other one first, under another
    // architecture.
    let arch = if cfg!(target_arch = "x86_64") { "amd64" } else { "arm64" };
    let foreign = if arch == "amd64" { "arm64" } else { "amd64" };
    let size = |d: &str| {
        let (_, r) = http(&reg.addr, "GET", &format!("/v2/lab/multi/manifests/{d}"), "", b"");
        r.split("\r\n\r\n").nth(1).map(|b| b.len()).unwrap_or(0)
    };
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other_digest, "size": size(&other_digest), "platform": {"os": "linux", "architecture": foreign}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": host_digest, "size": size(&host_digest), "platform": {"os": "linux", "architecture": arch}}
        ]
    });
    let (code, resp) = http(&reg.addr, "PUT", "/v2/lab/multi/manifests/both", "application/vnd.oci.image.index.v1+json", index.to_string().as_bytes());
    assert_eq!(code, 201, "index accepted: {resp}");
    let want = env.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    env.ok(&["rmi", &host]);
    env.ok(&["rmi", &other]);
    let both = format!("{}/lab/multi:both", reg.addr);
    let o = env.berth(&["pull", &both]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(env.ok(&["image", "inspect", "-f", "{{.Id}}", &both]), want, "the {arch} image was chosen");
}

#[test]
fn umoci_unpacks_the_store() {
    let env = Env::new("umoci_unpacks_the_store");
    let out = env.dir.join("bundle");
    let o = Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:busybox:latest", env.root.display()), out.to_str().unwrap()])
        .output()
        .expect("umoci (Debian package umoci)");
    assert!(o.status.success(), "umoci unpack: {}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("rootfs/bin/busybox").exists(), "the rootfs is there");
    assert!(out.join("config.json").exists());
}

#[test]
fn search_uses_docker_hubs_search_api() {
    let env = Env::new("search_uses_docker_hubs_search_api");
    // A stand-in for Docker Hub's search service, on loopback.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let line = read_request(&s).expect("a request");
        let body = r#"{"results":[{"name":"nginx","description":"Official build of Nginx.","star_count":20000,"is_official":true},{"name":"someone/nginx-extra","description":"x","star_count":3,"is_official":false}]}"#;
        write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
        line
    });
    let mut c = env.cmd(&["search", "nginx"]);
    c.env("BERTH_HUB_SEARCH_URL", format!("http://{addr}/v1/search"));
    let o = collect(c.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null()).spawn().unwrap(), CMD_TIMEOUT);
    let request = h.join().unwrap();
    assert_eq!(o.code, 0, "{o}");
    assert!(request.starts_with("GET /v1/search?q=nginx"), "asked the search API: {request}");
    let lines = o.lines();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("STARS") && lines[0].contains("OFFICIAL"), "{o}");
    assert!(lines[1].starts_with("nginx ") && lines[1].contains("20000") && lines[1].contains("[OK]"), "{o}");
    assert!(lines[2].starts_with("someone/nginx-extra"), "{o}");
}

/// Serves one honest image (busybox's filesystem as its single layer),
/// streaming the layer slowly so a pull can be killed halfway.
fn slow_registry() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let layer = std::fs::read(busybox_tar()).unwrap();
    let layer_digest = format!("sha256:{}", hex::encode(Sha256::digest(&layer)));
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}).to_string();
    let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(config.as_bytes())));
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}]
    })
    .to_string();
    std::thread::spawn(move || {
        for s in l.incoming().take(40) {
            let Ok(mut s) = s else { continue };
            let (manifest, config, layer, config_digest) = (manifest.clone(), config.clone(), layer.clone(), config_digest.clone());
            std::thread::spawn(move || {
                let Some(line) = read_request(&s) else { return };
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let (ct, body, slow): (&str, Vec<u8>, bool) = if path == "/v2/" {
                    ("application/json", b"{}".to_vec(), false)
                } else if path.contains("/manifests/") {
                    ("application/vnd.oci.image.manifest.v1+json", manifest.into_bytes(), false)
                } else if path.ends_with(&config_digest) {
                    ("application/octet-stream", config.into_bytes(), false)
                } else if path.contains("/blobs/") {
                    ("application/octet-stream", layer, true)
                } else {
                    ("text/plain", Vec::new(), false)
                };
                let status = if body.is_empty() { "404 Not Found" } else { "200 OK" };
                let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                for chunk in body.chunks(if slow { 32 * 1024 } else { body.len().max(1) }) {
                    if s.write_all(chunk).is_err() {
                        return;
                    }
                    if slow {
                        std::thread::sleep(Duration::from_millis(40));
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_killed_pull_leaves_nothing_and_the_next_succeeds() {
    let env = Env::bare("a_killed_pull_leaves_nothing_and_the_next_succeeds");
    let addr = slow_registry();
    let name = format!("{addr}/lab/slow:1");
    let mut child = env.cmd(&["pull", &name]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // The layer takes ~2.5 s to arrive; kill the pull in the middle.
    wait_until(Duration::from_secs(10), || std::fs::read_dir(env.root.join("tmp")).map(|d| d.count() > 0).unwrap_or(false));
    sleep_ms(500);
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(env.ok(&["images", "-q"]), "", "no image, no tag after a killed pull");
    assert_eq!(std::fs::read_dir(env.root.join("tmp")).unwrap().count(), 0, "its scratch space was swept");
    let o = env.berth_timeout(&["pull", &name], Duration::from_secs(60));
    assert_eq!(o.code, 0, "{o}");
    let o = env.berth(&["run", "--rm", &name, "echo", "whole"]);
    assert_eq!((o.code, o.out()), (0, "whole"), "{o}");
}

#[test]
fn pull_on_a_terminal_draws_bars() {
    let env = Env::bare("pull_on_a_terminal_draws_bars");
    let addr = slow_registry();
    let name = format!("{addr}/lab/bars:1");
    let o = env.script(&format!("berth pull {name}"), &[], Duration::from_secs(60));
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("total"), "a total bar: {o}");
    assert!(o.stdout.contains("[=") || o.stdout.contains("=>"), "bars are drawn: {o}");
    assert!(!o.stdout.contains("downloading"), "no plain lines on a terminal: {o}");
}
