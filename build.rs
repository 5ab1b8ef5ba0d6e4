//! Build script: the `revision` of `aws_transfer_exporter_build_info` and
//! the landing page.
//!
//! `GIT_REVISION` from the environment wins (a container build has no
//! `.git`: `docker build --build-arg GIT_REVISION=$(git rev-parse --short HEAD)`);
//! otherwise `git rev-parse --short HEAD` in the crate's directory when git
//! and a checkout are there; otherwise `unknown`. Never fails the build.
//!
//! Cargo re-runs this when HEAD moves: the files git itself reads for HEAD
//! (`HEAD`, the branch's ref and `packed-refs`, located with
//! `git rev-parse --git-path`, so linked worktrees work too) are watched.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        // A hostile or unusual environment must not redirect git elsewhere.
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// A revision is a short hex id (or whatever the builder passed, kept to
/// characters that are safe in a label value and a log line).
fn clean(rev: &str) -> Option<String> {
    let rev = rev.trim();
    let ok = !rev.is_empty()
        && rev.len() <= 64
        && rev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'));
    ok.then(|| rev.to_owned())
}

fn watch(dir: &Path, git_path: &str) {
    if let Some(p) = git(dir, &["rev-parse", "--git-path", git_path]) {
        let p = dir.join(PathBuf::from(p));
        // Watching a file that does not exist makes cargo re-run every
        // build; a missing packed-refs or loose ref is normal.
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GIT_REVISION");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into()));
    let from_env = std::env::var("GIT_REVISION").ok().and_then(|r| {
        let c = clean(&r);
        if c.is_none() && !r.trim().is_empty() {
            println!("cargo:warning=GIT_REVISION ignored: use up to 64 of [A-Za-z0-9._+-]");
        }
        c
    });
    let revision = from_env.or_else(|| {
        let rev = git(&dir, &["rev-parse", "--short", "HEAD"]).and_then(|r| clean(&r))?;
        watch(&dir, "HEAD");
        watch(&dir, "packed-refs");
        if let Some(head) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
            watch(&dir, &head);
        }
        Some(rev)
    });
    println!(
        "cargo:rustc-env=GIT_REVISION={}",
        revision.as_deref().unwrap_or("unknown")
    );
}
