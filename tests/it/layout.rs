//! The shape of `src/`, checked from the source text so it keeps holding:
//! no import cycle between files, and no module of the flow reaches back up
//! it (source → ingest → pipeline → parse → attribute → classify → metrics →
//! serve). Reads every `use crate::…`, `use super::…`, `use self::…` line
//! and every `crate::…` path in code (not comments).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The flow, upstream first: each stage hands data to the next by calling
/// it. A file of a module at position i may use modules at positions > i
/// (downstream) but not < i. Modules not listed (config, aws, state, event,
/// app, cli, inventory, probe, report, …) stand beside the flow; for them
/// only the no-cycle rule applies.
const FLOW: &[&str] = &[
    "source",
    "ingest",
    "pipeline",
    "parse",
    "attribute",
    "classify",
    "metrics",
];

/// The serving edge is the end of the flow, but Prometheus pulls: it reads
/// the count stage (metrics) and sees the rest of the daemon only through
/// the view the app gives it, never a stage before counting.
const SERVE: &[&str] = &["http", "web"];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src readable") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` → `a::b`; `src/a/mod.rs` → `a`; `src/lib.rs` → ``.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
    {
        parts.pop();
    }
    parts.join("::")
}

/// Code without comments and string contents (good enough for paths).
fn code_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_test = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            // Test modules may reach anywhere (they assemble fixtures).
            in_test = true;
        }
        if in_test {
            continue;
        }
        if t.starts_with("//") {
            continue;
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push(code.to_owned());
    }
    out
}

/// Module paths a file refers to, resolved against `this` (its module).
fn references(this: &str, text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let parent = match this.rsplit_once("::") {
        Some((p, _)) => p.to_owned(),
        None => String::new(),
    };
    for line in code_lines(text) {
        for (prefix, base) in [
            ("crate::", String::new()),
            ("super::", parent.clone()),
            ("self::", this.to_owned()),
        ] {
            let mut rest = line.as_str();
            while let Some(i) = rest.find(prefix) {
                let before = rest[..i].chars().last();
                rest = &rest[i + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let path: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let full = if base.is_empty() {
                    path
                } else {
                    format!("{base}::{path}")
                };
                out.insert(full.trim_end_matches(':').to_owned());
            }
        }
    }
    out
}

/// The longest module (a file) that `path` starts with.
fn resolve(modules: &BTreeSet<String>, path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains(m))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let texts: Vec<(String, String)> = files
        .iter()
        .filter(|f| !f.ends_with("main.rs") && !f.ends_with("lib.rs"))
        .map(|f| {
            (
                module_of(&src, f),
                std::fs::read_to_string(f).expect("readable"),
            )
        })
        .collect();
    let modules: BTreeSet<String> = texts.iter().map(|(m, _)| m.clone()).collect();
    let mut g = BTreeMap::new();
    for (m, text) in &texts {
        let deps: BTreeSet<String> = references(m, text)
            .iter()
            .filter_map(|p| resolve(&modules, p))
            .filter(|d| d != m)
            // A parent declares its children (`pub mod x;`, `self::x`):
            // that is structure, not a use of the child's items.
            .filter(|d| !d.starts_with(&format!("{m}::")) || m.is_empty())
            .collect();
        g.insert(m.clone(), deps);
    }
    g
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

#[test]
fn no_import_cycle_between_files() {
    let g = graph();
    assert!(g.len() > 20, "read the sources: {:?}", g.keys());
    // Depth-first search for a back edge; report the cycle.
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        n: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(n.to_owned());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_owned());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, d, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(c) = visit(&g, n, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", c.join(" -> "));
        }
    }
}

#[test]
fn no_module_reaches_back_up_the_flow() {
    let g = graph();
    let rank = |m: &str| FLOW.iter().position(|f| *f == top(m));
    let mut bad = Vec::new();
    for (m, deps) in &g {
        if SERVE.contains(&top(m)) {
            for d in deps {
                if rank(d).is_some_and(|r| FLOW[r] != "metrics") {
                    bad.push(format!("{m} uses {d} (serving reads only the count stage)"));
                }
            }
            continue;
        }
        let Some(r) = rank(m) else { continue };
        for d in deps {
            if let Some(rd) = rank(d) {
                if rd < r {
                    bad.push(format!("{m} uses {d} (upstream of it)"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "back-edges:\n{}", bad.join("\n"));
}

#[test]
fn the_checker_sees_a_cycle_and_a_back_edge() {
    // The rules above would pass on anything if `references` found nothing.
    let r = references(
        "source::poller",
        "use crate::ingest::Ingest;\nuse super::checkpoint::X;\n// use crate::app;\n",
    );
    assert!(r.contains("ingest::Ingest"), "{r:?}");
    assert!(r.contains("source::checkpoint::X"), "{r:?}");
    assert!(
        !r.iter().any(|p| p.starts_with("app")),
        "comments ignored: {r:?}"
    );
    let g = graph();
    assert!(
        g["source::poller"].contains("ingest"),
        "the poller feeds the ingest boundary: {:?}",
        g["source::poller"]
    );
}
