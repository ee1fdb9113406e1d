//! The API's image endpoints: `/images/...`, `/build`, `/commit`, `/auth`.
//! `seg` is the whole path, split. Image names hold slashes
//! (`/images/127.0.0.1:5000/lab/web/push`), so the action is read from the
//! end and the name is what lies between.
//!
//! Long operations (pull, push, build) stream docker's JSON progress lines
//! as they happen: see [`streamed`].

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::mpsc;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{ApiError, Ctx, JSON, Reply, Req, Result, TAR};
use crate::engine::EngineError;
use crate::image::registry::{Event, Progress};
use crate::image::{Image, ImageError};

pub(super) fn route(ctx: &Ctx, req: &mut Req, seg: &[&str]) -> Option<Result<Reply>> {
    let seg: Vec<String> = seg.iter().map(|s| unescape(s)).collect();
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
    let m = req.method.clone();
    let fixed = match (&m, seg.as_slice()) {
        (&Method::GET, ["images", "json"]) => Some(list(ctx, req)),
        (&Method::POST, ["images", "create"]) => Some(create(ctx, req)),
        (&Method::GET, ["images", "search"]) => Some(search(ctx, req)),
        (&Method::GET, ["images", "get"]) => Some(save(ctx, req.all("names").iter().map(|s| s.to_string()).collect())),
        (&Method::POST, ["images", "load"]) => Some(load(ctx, req)),
        (&Method::POST, ["images", "prune"]) => Some(prune(ctx, req)),
        (&Method::POST, ["build"]) => Some(build(ctx, req)),
        (&Method::POST, ["commit"]) => Some(commit(ctx, req)),
        (&Method::POST, ["auth"]) => Some(auth(ctx, req)),
        _ => None,
    };
    if fixed.is_some() {
        return fixed;
    }
    if seg.first() != Some(&"images") || seg.len() < 2 {
        return None;
    }
    if m == Method::DELETE {
        return Some(remove(ctx, req, &seg[1..].join("/")));
    }
    let (action, name) = (*seg.last()?, seg[1..seg.len() - 1].join("/"));
    if name.is_empty() {
        return None;
    }
    Some(match (&m, action) {
        (&Method::GET, "json") => inspect(ctx, req, &name),
        (&Method::GET, "history") => history(ctx, &name),
        (&Method::POST, "tag") => tag(ctx, req, &name),
        (&Method::POST, "push") => push(ctx, req, &name),
        (&Method::GET, "get") => save(ctx, vec![name]),
        _ => return None,
    })
}

/// Percent-decoding of a path segment (`%2F`, `%3A`); clients differ in
/// what they escape.
fn unescape(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// docker's statuses for the image errors the shared mapping leaves at
/// 500: a malformed name is the client's (400), several tags a conflict
/// (409), refused credentials 401.
fn err(e: EngineError) -> ApiError {
    match &e {
        EngineError::Image(ImageError::Reference(_)) => ApiError::bad(e.to_string()),
        EngineError::Image(ImageError::MultipleTags { .. }) => ApiError::conflict(e.to_string()),
        EngineError::Image(ImageError::Unauthorized(m)) => ApiError::new(StatusCode::UNAUTHORIZED, m.clone()),
        _ => e.into(),
    }
}

/// An image's creation time in unix seconds (`images/json`, `history`).
fn unix_secs(rfc3339: &str) -> i64 {
    crate::store::parse_rfc3339(rfc3339).map(|s| s as i64).unwrap_or(0)
}

// ---- listing and inspecting ----

fn list(ctx: &Ctx, req: &Req) -> Result<Reply> {
    let f = req.filters()?;
    let images = ctx.engine.images_all(req.flag("all")).map_err(err)?;
    let containers = ctx.engine.containers(true).map_err(err)?;
    let created = |name: &str| ctx.engine.image(name).map(|i| unix_secs(&i.created)).map_err(err);
    let before = f.get("before").and_then(|v| v.first()).map(|n| created(n)).transpose()?;
    let since = f.get("since").and_then(|v| v.first()).map(|n| created(n)).transpose()?;
    let mut out = Vec::new();
    for i in &images {
        let t = unix_secs(&i.created);
        if !filtered_in(i, &f) || before.is_some_and(|b| t >= b) || since.is_some_and(|s| t <= s) {
            continue;
        }
        let users = containers.iter().filter(|c| c.image_id == i.id).count();
        let mut v = summary(i, users, req);
        // As dockerd: a reference filter lists only the tags it matched.
        if let Some(refs) = f.get("reference").filter(|r| !r.is_empty()) {
            v["RepoTags"] = json!(i.tags.iter().filter(|t| tag_matches(t, refs)).collect::<Vec<_>>());
        }
        out.push(v);
    }
    Ok(Reply::ok(Value::Array(out)))
}

fn summary(i: &Image, containers: usize, req: &Req) -> Value {
    let mut v = json!({
        "Id": i.id,
        "ParentId": "",
        "RepoTags": i.tags,
        "RepoDigests": [],
        "Created": unix_secs(&i.created),
        "Size": i.size,
        "SharedSize": -1,
        "Labels": i.config.config.labels,
        "Containers": containers,
    });
    // Gone from 1.44 on; older clients (docker-py, compose 1.29) read it.
    if !req.at_least(1, 44) {
        v["VirtualSize"] = json!(i.size);
    }
    v
}

/// `images/json` filters: reference (a glob on REPO or REPO:TAG), label
/// (KEY or KEY=VALUE), dangling (true/false).
fn filtered_in(i: &Image, f: &BTreeMap<String, Vec<String>>) -> bool {
    if let Some(d) = f.get("dangling").and_then(|v| v.first())
        && (d == "true" || d == "1") != i.tags.is_empty()
    {
        return false;
    }
    let labels = &i.config.config.labels;
    if !f.get("label").into_iter().flatten().all(|l| super::label_matches(labels, l)) {
        return false;
    }
    if let Some(refs) = f.get("reference").filter(|r| !r.is_empty())
        && !i.tags.iter().any(|t| tag_matches(t, refs))
    {
        return false;
    }
    true
}

fn tag_matches(tag: &str, patterns: &[String]) -> bool {
    let repo = tag.rsplit_once(':').map(|x| x.0).unwrap_or(tag);
    patterns.iter().any(|p| glob(p, tag) || glob(p, repo))
}

/// `*` and `?` as Go's path.Match has them (`*` stops at `/`).
fn glob(pat: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pat.chars().collect(), s.chars().collect());
    fn go(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).take_while(|&k| k == 0 || s[k - 1] != '/').any(|k| go(rest, &s[k..])),
            Some(('?', rest)) => s.first().is_some_and(|c| *c != '/') && go(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    go(&p, &s)
}

fn inspect(ctx: &Ctx, req: &Req, name: &str) -> Result<Reply> {
    let img = ctx.engine.image(name).map_err(err)?;
    let mut v = crate::image::inspect_json(&img);
    // Fields of docker's that berth has no use for, there for clients
    // that index them.
    let comment = img.config.history.last().map(|h| h.comment.clone()).unwrap_or_default();
    for (k, d) in [("Parent", json!("")), ("Comment", json!(comment)), ("Container", json!("")), ("DockerVersion", json!("")), ("Author", json!("")), ("GraphDriver", json!({ "Name": "overlay2", "Data": null }))] {
        v[k] = d;
    }
    if !req.at_least(1, 44) {
        v["VirtualSize"] = json!(img.size);
    }
    v["Metadata"]["LastTagTime"] = json!("0001-01-01T00:00:00Z");
    let config = v["Config"].as_object_mut().expect("inspect_json's Config is an object");
    for (k, d) in [
        ("Hostname", json!("")),
        ("Domainname", json!("")),
        ("User", json!("")),
        ("AttachStdin", json!(false)),
        ("AttachStdout", json!(false)),
        ("AttachStderr", json!(false)),
        ("Tty", json!(false)),
        ("OpenStdin", json!(false)),
        ("StdinOnce", json!(false)),
        ("Env", Value::Null),
        ("Cmd", Value::Null),
        ("Image", json!("")),
        ("Volumes", Value::Null),
        ("WorkingDir", json!("")),
        ("Entrypoint", Value::Null),
        ("OnBuild", Value::Null),
        ("Labels", Value::Null),
    ] {
        config.entry(k).or_insert(d);
    }
    Ok(Reply::ok(v))
}

fn history(ctx: &Ctx, name: &str) -> Result<Reply> {
    let (img, lines) = ctx.engine.history(name).map_err(err)?;
    // As docker: only the top line has an id and tags of its own.
    let out: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, h)| {
            json!({
                "Id": if i == 0 { img.id.as_str() } else { "<missing>" },
                "Created": unix_secs(&h.created),
                "CreatedBy": h.created_by,
                "Tags": if i == 0 { json!(img.tags) } else { Value::Null },
                "Size": h.size,
                "Comment": h.comment,
            })
        })
        .collect();
    Ok(Reply::ok(Value::Array(out)))
}

// ---- tags, removal, prune ----

fn tag(ctx: &Ctx, req: &Req, name: &str) -> Result<Reply> {
    let repo = req.q("repo").filter(|r| !r.is_empty()).ok_or_else(|| ApiError::bad("repo is required: POST /images/NAME/tag?repo=REPO&tag=TAG"))?;
    let dst = match req.q("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    ctx.engine.tag(name, &dst).map_err(err)?;
    Ok(Reply::Empty(StatusCode::CREATED))
}

fn remove(ctx: &Ctx, req: &Req, name: &str) -> Result<Reply> {
    let r = ctx.engine.image_remove(name, req.flag("force")).map_err(err)?;
    let untagged = r.untagged.iter().map(|t| json!({ "Untagged": t }));
    let deleted = r.deleted.iter().map(|d| json!({ "Deleted": d }));
    Ok(Reply::ok(Value::Array(untagged.chain(deleted).collect())))
}

fn prune(ctx: &Ctx, req: &Req) -> Result<Reply> {
    let f = req.filters()?;
    // dangling=false: every image no container uses (`image prune -a`).
    let all = f.get("dangling").and_then(|v| v.first()).is_some_and(|d| d == "false" || d == "0");
    let (ids, bytes) = ctx.engine.image_prune(all).map_err(err)?;
    let deleted: Vec<Value> = ids.iter().map(|id| json!({ "Deleted": id })).collect();
    Ok(Reply::ok(json!({ "ImagesDeleted": if deleted.is_empty() { Value::Null } else { Value::Array(deleted) }, "SpaceReclaimed": bytes })))
}

// ---- streaming long operations ----

/// Where a long operation sends its JSON lines, or its failure.
type Lines = mpsc::Sender<Result<Value>>;

/// Runs `work` on a thread of its own and streams the JSON lines it sends,
/// as dockerd does: a failure before the first line is a plain HTTP error
/// (`docker pull nosuch` reads "Error response from daemon: ..."); a later
/// one, once 200 is sent, is an `errorDetail` line, which clients show and
/// exit non-zero on.
fn streamed(work: impl FnOnce(&Lines) -> Result<()> + Send + 'static) -> Result<Reply> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("berth-api-work".into())
        .spawn(move || {
            if let Err(e) = work(&tx) {
                let _ = tx.send(Err(e));
            }
        })
        .map_err(|e| ApiError::internal(format!("cannot start a thread: {e}")))?;
    let first = match rx.recv() {
        Ok(Err(e)) => return Err(e),
        Ok(Ok(v)) => Some(v),
        // Done without a word.
        Err(_) => None,
    };
    Ok(Reply::stream(JSON, move |sink| {
        for line in first.map(Ok).into_iter().chain(rx) {
            let v = line.unwrap_or_else(|e| json!({ "errorDetail": { "message": e.message }, "error": e.message }));
            // The client went away: the work finishes on its own.
            if sink.json(&v).is_err() {
                break;
            }
        }
    }))
}

/// A pull's or push's steps as docker's JSON progress lines.
fn reporter(lines: &Lines) -> Progress {
    let tx = lines.clone();
    Progress::Events(Arc::new(move |e: Event| {
        let _ = tx.send(Ok(progress_json(&e)));
    }))
}

fn progress_json(e: &Event) -> Value {
    match e {
        Event::Status { id: None, status } => json!({ "status": status }),
        Event::Status { id: Some(id), status } => json!({ "status": status, "progressDetail": {}, "id": id }),
        Event::Bytes { id, status, current, total } => json!({
            "status": status,
            "progressDetail": { "current": current, "total": total },
            "progress": bar(*current, *total),
            "id": id,
        }),
        Event::Pushed { tag, digest, size } => json!({ "progressDetail": {}, "aux": { "Tag": tag, "Digest": digest, "Size": size } }),
    }
}

/// docker's text bar, for clients that print `progress` as it comes.
fn bar(current: u64, total: u64) -> String {
    const W: usize = 50;
    let done = (current.min(total) * W as u64).checked_div(total).map_or(W, |d| d as usize);
    let body = if done >= W { "=".repeat(W) } else { format!("{}>{}", "=".repeat(done), " ".repeat(W - done - 1)) };
    let mb = |n: u64| format!("{:.3}MB", n as f64 / 1e6);
    format!("[{body}] {}/{}", mb(current), mb(total))
}

/// The credentials of `X-Registry-Auth`: base64url of
/// `{"username","password","serveraddress"}`. Empty means "use what
/// `berth login` stored".
fn registry_auth(req: &Req) -> Option<(String, String)> {
    let h = req.header("x-registry-auth")?.trim();
    let std_alphabet: String = h.chars().map(|c| match c {
        '-' => '+',
        '_' => '/',
        c => c,
    }).collect();
    let raw = crate::image::registry::base64_decode(&std_alphabet)?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let user = v["username"].as_str().filter(|u| !u.is_empty())?;
    Some((user.to_string(), v["password"].as_str().unwrap_or("").to_string()))
}

/// The credentials of `X-Registry-Config` (a build's, for its FROM
/// images): base64url of `{"HOST": {"username","password"}, ...}`.
fn registry_config(req: &Req) -> BTreeMap<String, (String, String)> {
    let Some(raw) = req.header("x-registry-config").and_then(|h| crate::image::registry::base64_decode(&h.trim().replace('-', "+").replace('_', "/"))) else {
        return BTreeMap::new();
    };
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&raw) else { return BTreeMap::new() };
    m.into_iter()
        .filter_map(|(host, v)| {
            let user = v["username"].as_str().filter(|u| !u.is_empty())?.to_string();
            // docker keys Docker Hub by its index URL.
            let host = match host.trim_start_matches("https://").trim_start_matches("http://").split('/').next().unwrap_or("") {
                "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
                h => h.to_string(),
            };
            Some((host, (user, v["password"].as_str().unwrap_or("").to_string())))
        })
        .collect()
}

// ---- pull, import, push, search ----

fn create(ctx: &Ctx, req: &mut Req) -> Result<Reply> {
    if let Some(src) = req.q("fromSrc").filter(|s| !s.is_empty()) {
        if src != "-" {
            return Err(ApiError::bad(format!("fromSrc={src}: importing from a URL is not supported; send the archive as the request body (fromSrc=-)")));
        }
        return import(ctx, req);
    }
    let from = req.q("fromImage").filter(|s| !s.is_empty()).ok_or_else(|| ApiError::bad("fromImage or fromSrc is required"))?;
    let name = match req.q("tag").filter(|t| !t.is_empty()) {
        Some(d) if d.starts_with("sha256:") => format!("{from}@{d}"),
        Some(t) => format!("{from}:{t}"),
        None => from.to_string(),
    };
    let creds = registry_auth(req);
    let engine = ctx.engine.clone();
    streamed(move |lines| {
        engine.pull_as(&name, reporter(lines), creds).map_err(err)?;
        Ok(())
    })
}

/// `docker import`: a root filesystem tarball in the body.
fn import(ctx: &Ctx, req: &mut Req) -> Result<Reply> {
    let tag = match (req.q("repo").filter(|r| !r.is_empty()), req.q("tag").filter(|t| !t.is_empty())) {
        (Some(r), Some(t)) => Some(format!("{r}:{t}")),
        (Some(r), None) => Some(r.to_string()),
        _ => None,
    };
    let changes: Vec<String> = req.all("changes").iter().flat_map(|c| c.lines()).filter(|c| !c.trim().is_empty()).map(String::from).collect();
    let img = ctx.engine.import(&mut req.body, "-", tag.as_deref(), &changes).map_err(err)?;
    json_lines(&[json!({ "status": img.id })])
}

fn push(ctx: &Ctx, req: &Req, name: &str) -> Result<Reply> {
    let names = match req.q("tag").filter(|t| !t.is_empty()) {
        Some(t) => vec![format!("{name}:{t}")],
        None => tags_of_repo(ctx, name)?,
    };
    let creds = registry_auth(req);
    let engine = ctx.engine.clone();
    streamed(move |lines| {
        for n in &names {
            engine.push_as(n, reporter(lines), creds.clone()).map_err(err)?;
        }
        Ok(())
    })
}

/// A push without a tag: the name's own tag when it has one, else every
/// tag of the repository, as dockerd does.
fn tags_of_repo(ctx: &Ctx, name: &str) -> Result<Vec<String>> {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        return Ok(vec![name.to_string()]);
    }
    let repo = crate::image::Reference::parse(name).map_err(|e| ApiError::bad(e.to_string()))?.familiar_name();
    let mut tags: Vec<String> = ctx.engine.images().map_err(err)?.into_iter().flat_map(|i| i.tags).filter(|t| t.rsplit_once(':').is_some_and(|(r, _)| r == repo)).collect();
    tags.sort();
    if tags.is_empty() {
        return Err(ApiError::not_found(format!("No such image: {name}")));
    }
    Ok(tags)
}

fn search(ctx: &Ctx, req: &Req) -> Result<Reply> {
    let term = req.q("term").unwrap_or("");
    let limit = req.num::<usize>("limit")?.filter(|n| *n > 0).unwrap_or(25);
    let f = req.filters()?;
    // A term that starts with a registry host searches that registry.
    let (registry, term) = match term.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => (host.to_string(), rest),
        _ => (std::env::var("BERTH_REGISTRY").unwrap_or_else(|_| "docker.io".into()), term),
    };
    let min_stars: u64 = f.get("stars").and_then(|v| v.first()).and_then(|s| s.parse().ok()).unwrap_or(0);
    let official = f.get("is-official").and_then(|v| v.first()).map(|s| s == "true" || s == "1");
    let found = ctx.engine.search(&registry, term).map_err(err)?;
    let out: Vec<Value> = found
        .into_iter()
        .filter(|r| r.stars >= min_stars && official.is_none_or(|o| o == r.official))
        .take(limit)
        .map(|r| json!({ "name": r.name, "description": r.description, "star_count": r.stars, "is_official": r.official, "is_automated": false }))
        .collect();
    Ok(Reply::ok(Value::Array(out)))
}

// ---- save and load ----

fn save(ctx: &Ctx, names: Vec<String>) -> Result<Reply> {
    if names.is_empty() {
        return Err(ApiError::bad("no image named: GET /images/NAME/get or /images/get?names=NAME"));
    }
    // Every name is checked while an error can still be a status.
    for n in &names {
        ctx.engine.image(n).map_err(err)?;
    }
    let engine = ctx.engine.clone();
    Ok(Reply::stream(TAR, move |sink| {
        let mut w = BufWriter::with_capacity(256 << 10, sink);
        if let Err(e) = engine.save(&names, &mut w, crate::image::archive::Format::Docker).map_err(|e| e.to_string()).and_then(|_| w.flush().map_err(|e| e.to_string())) {
            // Past the status line: the client sees a cut archive.
            tracing::warn!("serve: saving {}: {e}", names.join(", "));
        }
    }))
}

fn load(ctx: &Ctx, req: &mut Req) -> Result<Reply> {
    let report = ctx.engine.load(&mut req.body).map_err(err)?;
    let lines: Vec<Value> = report.iter().map(|l| json!({ "stream": format!("{l}\n") })).collect();
    json_lines(&lines)
}

/// A short reply in the streaming shape clients expect (JSON lines).
fn json_lines(lines: &[Value]) -> Result<Reply> {
    let mut body = Vec::new();
    for l in lines {
        serde_json::to_writer(&mut body, l).map_err(|e| ApiError::internal(e.to_string()))?;
        body.push(b'\n');
    }
    Ok(Reply::Raw { status: StatusCode::OK, content_type: JSON, body })
}

// ---- build and commit ----

fn build(ctx: &Ctx, req: &mut Req) -> Result<Reply> {
    if let Some(r) = req.q("remote").filter(|r| !r.is_empty()) {
        return Err(ApiError::bad(format!("remote={r}: a build context from a URL or git is not supported; send the context as a tar body")));
    }
    let tags: Vec<String> = req.all("t").into_iter().filter(|t| !t.is_empty()).map(String::from).collect();
    for t in &tags {
        crate::image::Reference::parse(t).map_err(|e| ApiError::bad(format!("invalid tag {t:?}: {e}")))?;
    }
    let args = json_map(req, "buildargs")?;
    let labels = json_map(req, "labels")?;
    let dockerfile = req.q("dockerfile").filter(|d| !d.is_empty()).unwrap_or("Dockerfile").to_string();
    let target = req.q("target").filter(|t| !t.is_empty()).map(String::from);
    let (no_cache, quiet) = (req.flag("nocache"), req.flag("q"));
    let credentials = registry_config(req);
    let pull = req.flag("pull");
    let context = ctx.engine.build_context(&mut req.body).map_err(err)?;
    let file = dockerfile_in(context.path(), &dockerfile)?;
    let engine = ctx.engine.clone();
    streamed(move |lines| {
        // The context's place on this host means nothing to the client.
        let prefix = format!("{}/", context.path().display());
        let tx = lines.clone();
        let p = prefix.clone();
        let log: crate::build::builder::BuildLog = Arc::new(move |line: &str| {
            let _ = tx.send(Ok(json!({ "stream": format!("{}\n", line.replace(&p, "")) })));
        });
        let opts = crate::build::builder::BuildOptions { context: context.path().to_path_buf(), file: Some(file), tag: tags.first().cloned(), args, target, no_cache, show_output: !quiet, log: Some(log), labels, credentials, pull };
        let img = engine.build(&opts).map_err(|e| ApiError::internal(e.to_string().replace(&prefix, "")))?;
        for t in tags.iter().skip(1) {
            engine.tag(&img.id, t).map_err(err)?;
        }
        let say = |v: Value| lines.send(Ok(v)).map_err(|_| ApiError::internal("the client went away"));
        say(json!({ "aux": { "ID": img.id } }))?;
        if quiet {
            return say(json!({ "stream": format!("{}\n", img.id) }));
        }
        say(json!({ "stream": format!("Successfully built {}\n", img.short_id()) }))?;
        for t in &tags {
            let shown = crate::image::Reference::parse(t).ok().and_then(|r| r.tag_key()).unwrap_or_else(|| t.clone());
            say(json!({ "stream": format!("Successfully tagged {shown}\n") }))?;
        }
        Ok(())
    })
}

/// A JSON object parameter of strings (`buildargs`, `labels`); a null
/// value (an unset `--build-arg K`) is left out.
fn json_map(req: &Req, key: &str) -> Result<BTreeMap<String, String>> {
    let Some(raw) = req.q(key).filter(|s| !s.is_empty()) else { return Ok(BTreeMap::new()) };
    let v: BTreeMap<String, Option<String>> = serde_json::from_str(raw).map_err(|e| ApiError::bad(format!("invalid {key} {raw:?}: {e}")))?;
    Ok(v.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
}

/// The Dockerfile's path inside the context; one that leaves it (`..`, or a
/// symlink pointing out) is refused, so a request cannot have the server
/// read its own files as a Dockerfile.
fn dockerfile_in(context: &std::path::Path, name: &str) -> Result<std::path::PathBuf> {
    let rel = std::path::Path::new(name.trim_start_matches('/'));
    let bad = || ApiError::bad(format!("dockerfile {name:?}: must be a file inside the build context"));
    if rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(bad());
    }
    let path = context.join(rel);
    let real = std::fs::canonicalize(&path).map_err(|_| ApiError::bad(format!("Cannot locate specified Dockerfile: {name}")))?;
    let root = std::fs::canonicalize(context).map_err(|e| ApiError::internal(format!("build context: {e}")))?;
    if !real.starts_with(&root) || !real.is_file() {
        return Err(bad());
    }
    Ok(real)
}

fn commit(ctx: &Ctx, req: &Req) -> Result<Reply> {
    let container = req.q("container").filter(|c| !c.is_empty()).ok_or_else(|| ApiError::bad("container is required: POST /commit?container=NAME"))?;
    let tag = match (req.q("repo").filter(|r| !r.is_empty()), req.q("tag").filter(|t| !t.is_empty())) {
        (Some(r), Some(t)) => Some(format!("{r}:{t}")),
        (Some(r), None) => Some(r.to_string()),
        _ => None,
    };
    let o = crate::changes::CommitOptions {
        tag,
        // One `changes` per --change; docker-py joins them with newlines.
        changes: req.all("changes").iter().flat_map(|c| c.lines()).filter(|c| !c.trim().is_empty()).map(String::from).collect(),
        message: req.q("comment").unwrap_or("").to_string(),
        author: req.q("author").unwrap_or("").to_string(),
        pause: !matches!(req.q("pause"), Some("0" | "false" | "False")),
    };
    let img = ctx.engine.commit(container, &o).map_err(err)?;
    Ok(Reply::created(json!({ "Id": img.id })))
}

// ---- registry login ----

/// `docker login`: checks the credentials against the registry. The client
/// keeps them and sends them with each pull and push (X-Registry-Auth);
/// berth stores nothing.
fn auth(ctx: &Ctx, req: &mut Req) -> Result<Reply> {
    let v: Value = req.json()?;
    let user = v["username"].as_str().unwrap_or("");
    let password = v["password"].as_str().unwrap_or("");
    if user.is_empty() {
        return Err(ApiError::bad("username is required"));
    }
    let registry = registry_host(v["serveraddress"].as_str().unwrap_or(""));
    ctx.engine.login_check(&registry, user, password).map_err(err)?;
    Ok(Reply::ok(json!({ "Status": "Login Succeeded", "IdentityToken": "" })))
}

/// `https://index.docker.io/v1/` -> `docker.io`; `127.0.0.1:5000` stays.
fn registry_host(addr: &str) -> String {
    let a = addr.trim().trim_start_matches("https://").trim_start_matches("http://");
    let host = a.split('/').next().unwrap_or("");
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_go_path_match() {
        assert!(glob("busybox", "busybox"));
        assert!(glob("busy*", "busybox"));
        assert!(glob("busybox:*", "busybox:latest"));
        assert!(!glob("*", "127.0.0.1:5000/lab/web"), "* stops at /");
        assert!(glob("*/lab/*", "127.0.0.1:5000/lab/web"));
        assert!(glob("b?sybox", "busybox"));
        assert!(!glob("busybox", "busybox:latest"));
    }

    #[test]
    fn registry_hosts_from_server_addresses() {
        assert_eq!(registry_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_host(""), "docker.io");
        assert_eq!(registry_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_host("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
    }

    #[test]
    fn path_segments_are_unescaped() {
        assert_eq!(unescape("127.0.0.1%3A5000"), "127.0.0.1:5000");
        assert_eq!(unescape("a%2"), "a%2");
        assert_eq!(unescape("plain"), "plain");
    }

    #[test]
    fn progress_bars_fill() {
        assert!(bar(0, 100).starts_with("[>"));
        assert!(bar(100, 100).starts_with(&format!("[{}]", "=".repeat(50))));
        assert_eq!(bar(50, 100).len(), bar(0, 100).len());
    }
}
