//! Dockerfile builds: real RUN containers, layers, whiteouts, stages, the
//! cache and the failure cases.

use std::path::{Path, PathBuf};

use crate::util::*;

fn ctx(env: &Env, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = env.dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("Dockerfile"), dockerfile).unwrap();
    for (f, c) in files {
        let p = d.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
    d
}

fn build(env: &Env, dir: &Path, extra: &[&str]) -> Out {
    let mut args = vec!["build"];
    args.extend_from_slice(extra);
    let d = dir.to_str().unwrap().to_string();
    args.push(&d);
    env.berth_timeout(&args, std::time::Duration::from_secs(120))
}

#[test]
fn course_example_builds_runs_and_rebuilds_from_cache() {
    let env = Env::new("course_example_builds_runs_and_rebuilds_from_cache");
    let d = ctx(
        &env,
        "app",
        "FROM busybox\nWORKDIR /app\nADD . /app\nRUN echo built > /app/built.txt && rm /app/Dockerfile\nEXPOSE 80\nENV NAME=World\nCMD [\"sh\", \"-c\", \"echo Hello $NAME; cat /app/index.html /app/built.txt\"]\n",
        &[("index.html", "<h1>hi</h1>\n"), ("debug.log", "junk\n"), (".dockerignore", "*.log\n")],
    );
    let o = build(&env, &d, &["-t", "myimg"]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("Step 4/7 : RUN echo built"), "steps are printed: {o}");
    assert!(o.stdout.contains("Running in"), "{o}");
    let r = env.berth(&["run", "--rm", "myimg"]);
    assert_eq!(r.stdout, "Hello World\n<h1>hi</h1>\nbuilt\n", "{r}");
    let ls = env.berth(&["run", "--rm", "myimg", "ls", "-a", "/app"]);
    assert!(!ls.stdout.contains("debug.log"), ".dockerignore keeps files out: {ls}");
    assert!(!ls.stdout.contains("Dockerfile"), "a file removed by RUN stays removed (whiteout): {ls}");
    let cfg = env.inspect("myimg");
    assert_eq!(cfg["Config"]["ExposedPorts"]["80/tcp"], serde_json::json!({}), "{cfg}");
    assert_eq!(cfg["Config"]["WorkingDir"], "/app");
    let id1 = env.ok(&["image", "inspect", "-f", "{{.Id}}", "myimg"]);
    // A fully cached rebuild runs no container and gives the same image.
    let o = build(&env, &d, &["-t", "myimg"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stdout.matches("CACHED").count(), 6, "every step after FROM is cached: {o}");
    assert!(!o.stdout.contains("Running in"), "no container ran: {o}");
    assert_eq!(env.ok(&["image", "inspect", "-f", "{{.Id}}", "myimg"]), id1);
    // Changing one copied file rebuilds from that step on.
    std::fs::write(d.join("index.html"), "<h1>changed</h1>\n").unwrap();
    let o = build(&env, &d, &["-t", "myimg"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stdout.matches("CACHED").count(), 1, "only WORKDIR, before the changed COPY, is cached: {o}");
    assert!(o.stdout.contains("Running in"), "{o}");
    let r = env.berth(&["run", "--rm", "myimg"]);
    assert!(r.stdout.contains("changed"), "{r}");
    // History: one line per instruction, layer sizes on the filesystem steps.
    let h = env.ok(&["image", "history", "myimg"]);
    assert_eq!(h.lines().count(), 1 + 7, "header + 6 steps + base: {h}");
    assert!(h.lines().any(|l| l.contains("EXPOSE 80") && l.contains(" 0B")), "{h}");
    // --no-cache runs everything again.
    let o = build(&env, &d, &["--no-cache", "-t", "myimg"]);
    assert!(!o.stdout.contains("CACHED") && o.stdout.contains("Running in"), "{o}");
}

#[test]
fn a_remembered_file_digest_never_hides_a_change() {
    // Rebuilds reuse the digests of unchanged context files (by stat);
    // a file rewritten with the same size and its old mtime still misses.
    let env = Env::new("a_remembered_file_digest_never_hides_a_change");
    let d = ctx(&env, "app", "FROM busybox\nCOPY data.txt /data.txt\nCMD [\"cat\", \"/data.txt\"]\n", &[("data.txt", "first\n")]);
    // Older than two seconds: young files are hashed every time.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(build(&env, &d, &["-t", "sums"]).code, 0);
    let sums = std::fs::read_to_string(env.root.join("build-sums")).unwrap_or_default();
    assert!(sums.contains("data.txt"), "the digest is remembered: {sums:?}");
    let o = build(&env, &d, &["-t", "sums"]);
    assert_eq!(o.stdout.matches("CACHED").count(), 2, "COPY and CMD: {o}");
    let old = std::fs::metadata(d.join("data.txt")).unwrap().modified().unwrap();
    std::fs::write(d.join("data.txt"), "other\n").unwrap();
    std::fs::File::options().write(true).open(d.join("data.txt")).unwrap().set_modified(old).unwrap();
    let o = build(&env, &d, &["-t", "sums"]);
    assert_eq!((o.code, o.stdout.matches("CACHED").count()), (0, 0), "{o}");
    assert_eq!(env.ok(&["run", "--rm", "sums"]), "other");
    env.ok(&["system", "prune", "-a", "-f"]);
    assert!(!env.root.join("build-sums").exists(), "prune -a forgets the digests with the build cache");
}

#[test]
fn multi_stage_copy_from_target_and_args() {
    let env = Env::new("multi_stage_copy_from_target_and_args");
    let d = ctx(
        &env,
        "ms",
        "ARG V=1\nFROM busybox AS build\nARG V\nRUN mkdir /out && echo \"version $V\" > /out/v.txt\nFROM busybox AS final\nCOPY --from=build /out/v.txt /v.txt\nCMD [\"cat\", \"/v.txt\"]\nFROM busybox AS other\nRUN echo never-built\n",
        &[],
    );
    let o = build(&env, &d, &["-t", "ms:1", "--target", "final", "--build-arg", "V=2"]);
    assert_eq!(o.code, 0, "{o}");
    assert!(!o.stdout.contains("never-built"), "stages after the target are not built: {o}");
    assert_eq!(env.berth(&["run", "--rm", "ms:1"]).stdout, "version 2\n");
    let o = build(&env, &d, &["-t", "ms:2", "--target", "final"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(env.berth(&["run", "--rm", "ms:2"]).stdout, "version 1\n", "the ARG default applies without --build-arg");
    let tags = env.ok(&["images"]);
    assert!(!tags.contains("build "), "only the final stage is tagged: {tags}");
    assert!(!tags.contains("<none>"), "intermediate steps are hidden from images: {tags}");
    assert!(env.ok(&["images", "-a"]).contains("<none>"), "images -a shows them");
}

#[test]
fn copy_chown_globs_dirs_heredoc_and_add_archive() {
    let env = Env::new("copy_chown_globs_dirs_heredoc_and_add_archive");
    let d = env.dir.join("cp");
    std::fs::create_dir_all(d.join("src/sub")).unwrap();
    std::fs::write(d.join("a.txt"), "A").unwrap();
    std::fs::write(d.join("b.txt"), "B").unwrap();
    std::fs::write(d.join("src/sub/c.txt"), "C").unwrap();
    // A tar for ADD to unpack.
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_cksum();
    t.append_data(&mut h, "inner/x.txt", &b"inner"[..]).unwrap();
    std::fs::write(d.join("bundle.tar"), t.into_inner().unwrap()).unwrap();
    std::fs::write(
        d.join("Dockerfile"),
        "FROM busybox\nCOPY --chown=1000:1000 *.txt /dst/\nCOPY src /tree\nADD bundle.tar /unpacked/\nRUN <<EOF\necho from-heredoc > /hd.txt\nEOF\nCMD [\"sh\", \"-c\", \"stat -c '%u %n' /dst/a.txt; cat /dst/a.txt /dst/b.txt /tree/sub/c.txt /unpacked/inner/x.txt /hd.txt\"]\n",
    )
    .unwrap();
    let o = build(&env, &d, &["-t", "cp:1"]);
    assert_eq!(o.code, 0, "{o}");
    let r = env.berth(&["run", "--rm", "cp:1"]);
    assert_eq!(r.stdout, "1000 /dst/a.txt\nABCinnerfrom-heredoc\n", "{r}");
}

#[test]
fn build_failures_name_the_line_and_tag_nothing() {
    let env = Env::new("build_failures_name_the_line_and_tag_nothing");
    let cases: &[(&str, &str, &str)] = &[
        ("unknown", "FROM busybox\nFORM busybox\n", "line 2"),
        ("noarg", "FROM busybox\nENV\n", "line 2"),
        ("missing", "FROM busybox\nCOPY nothere.txt /x\n", "nothere.txt"),
        ("outside", "FROM busybox\nCOPY ../../etc/passwd /x\n", "outside the build context"),
        ("failrun", "FROM busybox\nRUN echo about to fail && exit 3\n", "returned a non-zero code: 3"),
    ];
    for (name, df, want) in cases {
        let d = ctx(&env, name, df, &[]);
        let tag = format!("bad-{name}:1");
        let o = build(&env, &d, &["-t", &tag]);
        assert_ne!(o.code, 0, "{name}: {o}");
        assert!(o.stderr.contains(want), "{name}: expected {want:?} in the error: {o}");
        assert!(env.berth(&["image", "inspect", &tag]).code != 0, "{name}: nothing tagged");
    }
    let d = ctx(&env, "failrun2", "FROM busybox\nRUN exit 7\n", &[]);
    let o = build(&env, &d, &[]);
    assert!(o.stderr.contains("RUN") && o.stderr.contains("exit 7") && o.stderr.contains("Dockerfile:2"), "step, command and line: {o}");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "the failed step's container is gone");
}

#[test]
fn build_from_a_script() {
    let env = Env::new("build_from_a_script");
    let d = ctx(&env, "s", "FROM busybox\nARG WHO=nobody\nRUN echo \"hi $WHO\" > /who\nCMD [\"cat\", \"/who\"]\n", &[]);
    let f = env.dir.join("b.rhai");
    std::fs::write(
        &f,
        format!("let img = build(\"{}\", #{{ tag: \"scripted:1\", args: #{{ WHO: \"rhai\" }} }});\nassert(img.tags.contains(\"scripted:1\"), \"tagged\");\nlet r = run_once(\"scripted:1\", [\"cat\", \"/who\"]);\nassert_eq(r.stdout, \"hi rhai\\n\");\nprint(\"built ok\");\n", d.display()),
    )
    .unwrap();
    let o = env.berth(&["run", f.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("built ok"), "{o}");
}

#[test]
fn copy_from_an_image_and_onbuild_triggers() {
    let env = Env::new("copy_from_an_image_and_onbuild_triggers");
    let base = ctx(&env, "base", "FROM busybox\nONBUILD RUN echo triggered > /onbuild.txt\n", &[]);
    assert_eq!(build(&env, &base, &["-t", "obbase:1"]).code, 0);
    let child = ctx(&env, "child", "FROM obbase:1\nCOPY --from=busybox /bin/busybox /copied/busybox\nCMD [\"sh\", \"-c\", \"cat /onbuild.txt; /copied/busybox echo copied\"]\n", &[]);
    let o = build(&env, &child, &["-t", "obchild:1"]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("Executing ONBUILD trigger"), "{o}");
    assert_eq!(env.berth(&["run", "--rm", "obchild:1"]).stdout, "triggered\ncopied\n");
    let grandchild = ctx(&env, "grand", "FROM obchild:1\nRUN test ! -e /x\n", &[]);
    let o = build(&env, &grandchild, &["-t", "obgrand:1"]);
    assert!(!o.stdout.contains("Executing ONBUILD trigger"), "triggers are not inherited: {o}");
}
