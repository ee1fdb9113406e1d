//! `berth repl`: one Scope for the session; each line's AST is merged so
//! functions persist; engine objects print as the CLI's tables.

use std::sync::Arc;

use rhai::{Array, Dynamic, EvalAltResult};

use super::{Container, Image};
use crate::cli::table;
use crate::engine::Engine;

pub fn run(e: Engine) -> anyhow::Result<i32> {
    let engine = Arc::new(e);
    let (r, mut scope) = super::build(engine.clone(), vec![]);
    let mut rl = rustyline::DefaultEditor::new()?;
    let hist = std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".berth_history"));
    if let Some(h) = &hist {
        let _ = rl.load_history(h);
    }
    println!("berth REPL: Rhai with engine objects. Try `images()`, `let c = run(\"busybox\", #{{ cmd: [\"sleep\", \"60\"] }})`. Ctrl-D leaves.");
    let mut ast_all = rhai::AST::empty();
    let mut buf = String::new();
    loop {
        let prompt = if buf.is_empty() { "berth> " } else { "  ...> " };
        match rl.readline(prompt) {
            Ok(line) => {
                buf.push_str(&line);
                buf.push('\n');
                let ast = match r.compile_with_scope(&scope, &buf) {
                    Ok(a) => a,
                    Err(pe) if matches!(pe.err_type(), rhai::ParseErrorType::MissingToken(_, _)) || pe.to_string().contains("end of") => continue,
                    Err(pe) => {
                        let err: EvalAltResult = pe.into();
                        eprintln!("{}", super::render_error("repl", &buf, &err));
                        buf.clear();
                        continue;
                    }
                };
                let _ = rl.add_history_entry(buf.trim_end());
                let src = std::mem::take(&mut buf);
                ast_all = ast_all.merge(&ast);
                let run_ast = ast_all.clone_functions_only().merge(&ast);
                match r.eval_ast_with_scope::<Dynamic>(&mut scope, &run_ast) {
                    Ok(v) => show(&engine, v),
                    Err(err) => eprintln!("{}", super::render_error("repl", &src, &err)),
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => buf.clear(),
            Err(_) => break,
        }
    }
    if let Some(h) = &hist {
        let _ = rl.save_history(h);
    }
    Ok(0)
}

fn show(engine: &Engine, v: Dynamic) {
    if v.is_unit() {
        return;
    }
    if let Some(c) = v.clone().try_cast::<Container>() {
        if let Ok(x) = engine.container(&c.id) {
            print!("{}", table::containers(&[x]));
        }
        return;
    }
    if let Some(i) = v.clone().try_cast::<Image>() {
        if let Ok(x) = engine.image(&i.id) {
            print!("{}", table::images(&[x]));
        }
        return;
    }
    if let Some(a) = v.clone().try_cast::<Array>() {
        if !a.is_empty() && a.iter().all(|x| x.is::<Container>()) {
            let list: Vec<_> = a.iter().filter_map(|x| engine.container(&x.clone().cast::<Container>().id).ok()).collect();
            print!("{}", table::containers(&list));
            return;
        }
        if !a.is_empty() && a.iter().all(|x| x.is::<Image>()) {
            let list: Vec<_> = a.iter().filter_map(|x| engine.image(&x.clone().cast::<Image>().id).ok()).collect();
            print!("{}", table::images(&list));
            return;
        }
    }
    println!("{v:?}");
}
