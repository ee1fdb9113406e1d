//! The API's image endpoints driven by the real docker CLI against
//! `berth serve`: listing, inspect, tag, rmi, history, build (the classic
//! builder, DOCKER_BUILDKIT=0), push and pull through a real local
//! registry, login, save and load, prune and commit.

use std::process::Stdio;
use std::time::Duration;

use crate::api::{DOCKER, Served, both_clients, tagged};
use crate::registry::Registry;
use crate::util::{Env, Out, collect};

/// The docker CLI with the classic builder (the 28 client defaults to
/// BuildKit, which berth does not serve).
fn docker_classic(s: &Served, bin: &str, args: &[&str]) -> Out {
    let child = s.docker_cmd(bin, args).env("DOCKER_BUILDKIT", "0").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawning docker");
    collect(child, Duration::from_secs(120))
}

/// A build context directory with the given Dockerfile and one file to COPY.
fn context(env: &Env, name: &str, dockerfile: &str) -> String {
    let dir = env.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.join("greeting.txt"), "hello from the context\n").unwrap();
    dir.to_str().unwrap().to_string()
}

#[test]
fn images_inspect_tag_history_and_rmi() {
    let env = Env::new("api_images_basics");
    let s = Served::start(&env);
    let listed = s.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let id = env.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    let short = &id["sha256:".len().."sha256:".len() + 12];
    assert_eq!(listed, format!("busybox:latest {short}"), "docker images lists what berth has");
    assert_eq!(s.docker_ok(&["image", "inspect", "-f", "{{.Id}} {{.Os}} {{json .Config.Cmd}}", "busybox"]), format!("{id} linux [\"sh\"]"));

    s.docker_ok(&["tag", "busybox", "lab/extra:1"]);
    assert_eq!(env.ok(&["image", "inspect", "-f", "{{.Id}}", "lab/extra:1"]), id, "the tag is berth's");
    let filtered = s.docker_ok(&["images", "--filter", "reference=lab/*", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(filtered, "lab/extra:1");
    let history = s.docker_ok(&["history", "--no-trunc", "--format", "{{.ID}} {{.Comment}}", "busybox"]);
    assert!(history.starts_with(&id) && history.contains("Imported from a filesystem archive"), "{history}");

    let o = s.docker(&["rmi", "lab/extra:1"]);
    assert!(o.ok() && o.stdout.contains("Untagged: lab/extra:1"), "{o}");
    assert!(!env.berth(&["image", "inspect", "lab/extra:1"]).ok(), "the tag is gone");

    // An image a container uses is refused (docker's 409), then untagged with -f.
    s.docker_ok(&["tag", "busybox", "lab/used"]);
    let c = env.name("user");
    env.ok(&["create", "--name", &c, "lab/used"]);
    s.docker_ok(&["rmi", "busybox"]);
    let o = s.docker(&["rmi", "lab/used"]);
    assert!(!o.ok() && o.stderr.contains(&c), "rmi of an image in use names the container: {o}");
    assert!(s.docker(&["rmi", "-f", "lab/used"]).ok());
    assert_eq!(env.ok(&["inspect", "-f", "{{.State.Status}}", &c]), "created", "the container keeps its image");

    let o = s.docker(&["image", "inspect", "nosuch"]);
    assert!(!o.ok() && o.stderr.contains("No such image: nosuch"), "{o}");
}

fn build_streams_its_steps_and_the_image_runs(bin: &'static str) {
    let env = Env::new(&tagged("api_images_build", bin));
    let s = Served::start_for(&env, bin);
    let dir = context(&env, "ctx", "FROM busybox\nCOPY greeting.txt /greeting.txt\nRUN echo built at step three && cp /greeting.txt /msg\nCMD [\"cat\", \"/msg\"]\n");
    let o = docker_classic(&s, bin, &["build", "--label", "team=lab", "-t", "lab/built", &dir]);
    assert!(o.ok(), "{o}");
    for want in ["Step 1/4 : FROM busybox", "Step 3/4 : RUN echo", "built at step three", "Successfully built ", "Successfully tagged lab/built:latest"] {
        assert!(o.stdout.contains(want), "{want:?} is streamed to docker's output: {o}");
    }
    let o = env.berth(&["run", "--rm", "lab/built"]);
    assert_eq!((o.code, o.out()), (0, "hello from the context"), "{o}");
    assert_eq!(s.docker_ok(&["images", "--filter", "label=team=lab", "--format", "{{.Repository}}"]), "lab/built", "--label lands on the image");

    // A failing step: non-zero, with the reason, and without the server's temp paths.
    let bad = context(&env, "bad", "FROM busybox\nRUN false\n");
    let o = docker_classic(&s, bin, &["build", "-t", "lab/bad", &bad]);
    assert!(!o.ok(), "{o}");
    assert!(o.stderr.contains("Dockerfile:2") && o.stderr.contains("returned a non-zero code: 1"), "{o}");
    assert!(!o.stderr.contains(&env.root.display().to_string()), "the context's place on the server is not shown: {o}");
    assert!(!env.berth(&["image", "inspect", "lab/bad"]).ok(), "no image from a failed build");
    // Nothing of the unpacked contexts is left behind.
    let tmp: Vec<_> = std::fs::read_dir(env.root.join("tmp")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(tmp.iter().all(|n| !n.to_string_lossy().starts_with("build-")), "{tmp:?}");

    // -q prints only the id.
    let o = docker_classic(&s, bin, &["build", "-q", "-t", "lab/quiet", &dir]);
    assert!(o.ok(), "{o}");
    assert_eq!(o.out(), env.ok(&["image", "inspect", "-f", "{{.Id}}", "lab/quiet"]), "{o}");
}

fn push_and_pull_through_a_registry(bin: &'static str) {
    let env = Env::new(&tagged("api_images_registry", bin));
    let reg = Registry::start(&env, None);
    let s = Served::start_for(&env, bin);
    let name = format!("{}/lab/bb:1", reg.addr);
    let id = env.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    s.docker_ok(&["tag", "busybox", &name]);
    let o = s.docker(&["push", &name]);
    assert!(o.ok(), "{o}");
    assert!(o.stdout.contains(&format!("The push refers to repository [{}/lab/bb]", reg.addr)) && o.stdout.contains("1: digest: sha256:"), "{o}");

    s.docker_ok(&["rmi", &name, "busybox"]);
    assert_eq!(env.ok(&["images", "-q"]), "", "the store is empty");
    let o = s.docker(&["pull", &name]);
    assert!(o.ok(), "{o}");
    assert!(o.stdout.contains("Pull complete") && o.stdout.contains(&format!("Status: Downloaded newer image for {name}")), "{o}");
    assert_eq!(s.docker_ok(&["image", "inspect", "-f", "{{.Id}}", &name]), id, "the same image came back");
    let o = env.berth(&["run", "--rm", &name, "echo", "pulled"]);
    assert_eq!((o.code, o.out()), (0, "pulled"), "{o}");
    let o = s.docker(&["pull", &name]);
    assert!(o.ok() && o.stdout.contains("Image is up to date"), "{o}");

    // A name the registry does not have: the error, not a hang or a success.
    let o = s.docker(&["pull", &format!("{}/lab/nosuch:1", reg.addr)]);
    assert!(!o.ok() && o.stderr.contains("manifest unknown"), "{o}");
    let found = s.docker_ok(&["search", &format!("{}/lab", reg.addr)]);
    assert!(found.contains("lab/bb"), "{found}");

    // A build FROM an image that is not here pulls it first.
    s.docker_ok(&["rmi", &name]);
    let dir = context(&env, "ctx", &format!("FROM {name}\nRUN echo on-pulled > /p\n"));
    let o = docker_classic(&s, s.bin, &["build", "-t", "lab/onpulled", &dir]);
    assert!(o.ok() && o.stdout.contains(&format!("Pulling {name}")) && o.stdout.contains("Pull complete"), "{o}");
    assert_eq!(env.ok(&["image", "inspect", "-f", "{{.Id}}", &name]), id, "the base came from the registry");
    let o = env.berth(&["run", "--rm", "lab/onpulled", "cat", "/p"]);
    assert_eq!((o.code, o.out()), (0, "on-pulled"), "{o}");
    // --pull asks the registry though the image is here.
    let o = docker_classic(&s, s.bin, &["build", "--pull", "-t", "lab/onpulled", &dir]);
    assert!(o.ok() && o.stdout.contains(&format!("Pulling {name}")) && o.stdout.contains("Image is up to date"), "{o}");
    let o = docker_classic(&s, s.bin, &["build", "-t", "lab/onpulled", &dir]);
    assert!(o.ok() && !o.stdout.contains("Pulling"), "without --pull, the image here is used: {o}");
}

#[test]
fn login_checks_and_the_client_keeps_the_credentials() {
    let env = Env::new("api_images_login");
    let reg = Registry::start(&env, Some(("alice", "s3cret")));
    let s = Served::start(&env);
    let name = format!("{}/lab/private:1", reg.addr);
    s.docker_ok(&["tag", "busybox", &name]);
    let o = s.docker(&["push", &name]);
    assert!(!o.ok() && o.stderr.contains("401"), "no credentials, no push: {o}");
    let o = s.docker(&["login", "-u", "alice", "-p", "wrong", &reg.addr]);
    assert!(!o.ok() && o.stderr.contains("unauthorized"), "{o}");
    let o = s.docker(&["login", "-u", "alice", "-p", "s3cret", &reg.addr]);
    assert!(o.ok() && o.stdout.contains("Login Succeeded"), "{o}");
    let stored = std::fs::read_to_string(s.config.join("config.json")).unwrap();
    assert!(stored.contains(&reg.addr), "the client stores its credentials: {stored}");
    assert!(!env.dir.join("auth.json").exists(), "berth stores nothing of a login through the API");
    // The client sends them with the push (X-Registry-Auth), and the pull.
    let o = s.docker(&["push", &name]);
    assert!(o.ok(), "{o}");
    s.docker_ok(&["rmi", &name]);
    let o = s.docker(&["pull", &name]);
    assert!(o.ok(), "{o}");
    // And with a build that pulls its FROM image (X-Registry-Config).
    s.docker_ok(&["rmi", &name]);
    let dir = context(&env, "ctx", &format!("FROM {name}\nRUN echo private > /p\n"));
    let o = docker_classic(&s, DOCKER, &["build", "-t", "lab/from-private", &dir]);
    assert!(o.ok() && o.stdout.contains(&format!("Pulling {name}")), "{o}");
    let o = env.berth(&["run", "--rm", "lab/from-private", "cat", "/p"]);
    assert_eq!((o.code, o.out()), (0, "private"), "{o}");
}

#[test]
fn save_load_commit_and_prune() {
    let env = Env::new("api_images_archive");
    let s = Served::start(&env);
    let id = env.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    let tar = env.dir.join("bb.tar");
    s.docker_ok(&["save", "-o", tar.to_str().unwrap(), "busybox"]);
    s.docker_ok(&["rmi", "busybox"]);
    assert_eq!(env.ok(&["images", "-q"]), "");
    let o = s.docker(&["load", "-i", tar.to_str().unwrap()]);
    assert!(o.ok() && o.stdout.contains("Loaded image: busybox:latest"), "{o}");
    assert_eq!(env.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]), id, "the same image came back");

    let c = env.name("src");
    let o = env.berth(&["run", "--name", &c, "busybox", "sh", "-c", "echo committed > /made"]);
    assert!(o.ok(), "{o}");
    let new = s.docker_ok(&["commit", "-c", "CMD [\"cat\", \"/made\"]", "-m", "by the api", &c, "lab/committed:1"]);
    assert!(new.starts_with("sha256:"), "{new}");
    let o = env.berth(&["run", "--rm", "lab/committed:1"]);
    assert_eq!((o.code, o.out()), (0, "committed"), "{o}");
    assert!(s.docker_ok(&["history", "--format", "{{.Comment}}", "lab/committed:1"]).starts_with("by the api"));

    // An untagged commit is dangling; prune removes it and keeps the rest.
    let dangling = s.docker_ok(&["commit", &c]);
    env.ok(&["rm", &c]);
    let o = s.docker(&["image", "prune", "-f"]);
    assert!(o.ok() && o.stdout.contains(&format!("deleted: {dangling}")), "{o}");
    assert!(!env.berth(&["image", "inspect", &dangling]).ok(), "the dangling image is gone");
    for kept in ["busybox", "lab/committed:1"] {
        assert!(env.berth(&["image", "inspect", kept]).ok(), "{kept} is kept");
    }
}

both_clients!(build_streams_its_steps_and_the_image_runs, push_and_pull_through_a_registry);

/// A push reports each layer's bytes as they go (docker-py's decoded
/// stream, what the CLI draws its bars from on a terminal): counts that
/// climb to the layer's size, not a jump from 0 to all of it.
#[test]
fn push_progress_counts_each_layers_bytes() {
    let env = Env::new("api_images_push_progress");
    let reg = Registry::start(&env, None);
    let s = Served::start(&env);
    let c = env.name("noise");
    // 3 MB that do not compress: a layer of several pieces.
    let o = env.berth(&["run", "--name", &c, "busybox", "sh", "-c", "head -c 3000000 /dev/urandom > /noise"]);
    assert!(o.ok(), "{o}");
    let name = format!("{}/lab/noise", reg.addr);
    s.docker_ok(&["commit", &c, &format!("{name}:1")]);
    let script = format!(
        r#"
import docker, json
c = docker.APIClient(base_url="{host}", version="auto", timeout=120)
for e in c.push("{name}", tag="1", stream=True, decode=True):
    print(json.dumps(e))
"#,
        host = s.host()
    );
    let child = std::process::Command::new(crate::api_clients::PYTHON).args(["-c", &script]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let o = collect(child, Duration::from_secs(120));
    assert!(o.ok(), "{o}");
    let events: Vec<serde_json::Value> = o.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().all(|e| e.get("error").is_none()), "{o}");
    // The big layer: its Pushing counts, in order.
    let mut by_layer: std::collections::BTreeMap<String, Vec<(u64, u64)>> = Default::default();
    for e in events.iter().filter(|e| e["status"] == "Pushing") {
        let d = &e["progressDetail"];
        by_layer.entry(e["id"].as_str().unwrap().to_string()).or_default().push((d["current"].as_u64().unwrap(), d["total"].as_u64().unwrap()));
    }
    let big = by_layer.values().max_by_key(|v| v.first().map(|p| p.1)).unwrap_or_else(|| panic!("no Pushing events: {o}"));
    let total = big[0].1;
    assert!(total > 3_000_000, "{big:?}");
    assert!(big.iter().filter(|(cur, _)| *cur > 0 && *cur < total).count() >= 4, "counts between 0 and the size: {big:?}");
    assert!(big.windows(2).all(|w| w[0].0 <= w[1].0) && big.last().unwrap().0 == total, "{big:?}");
    assert!(events.iter().any(|e| e["status"] == "Pushed"), "{o}");
}
