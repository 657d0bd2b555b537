//! Stamps `bgcloud --version` with the commit it was built from and that commit's date
//! (`bgcloud 0.1.0 (abc1234 2026-12-07)`): the commit's date, not the build's, so two builds of
//! one commit say the same. Outside a git checkout (a source archive) it is the version alone.
//!
//! Cargo reruns this script only when the checked-out commit can have changed: git's HEAD, its
//! reflog (appended to by every commit, checkout, reset and pull), the branch it points at, the
//! branches directory and packed-refs are watched, nothing else, so `cargo test` after an edit
//! does not rebuild for it. (The reflog matters: after `git gc` packs the refs, the next commit
//! creates a loose branch file that was not there to be watched.)

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    // Whatever happens below, the script does not rerun for source edits (its default is to
    // rerun when any file of the package changes).
    println!("cargo:rerun-if-changed=build.rs");
    let version = env!("CARGO_PKG_VERSION");
    // The commit of this package's own repository: a source archive unpacked inside some other
    // checkout is not that checkout's commit.
    let here = std::env::var("CARGO_MANIFEST_DIR")
        .ok()
        .and_then(|d| std::fs::canonicalize(d).ok());
    let top = git(&["rev-parse", "--show-toplevel"]).and_then(|d| std::fs::canonicalize(d).ok());
    let head = match (here, top) {
        (Some(here), Some(top)) if here == top => {
            git(&["log", "-1", "--format=%h %cs", "--abbrev=7"])
        }
        _ => None,
    };
    let Some(head) = head else {
        println!("cargo:rustc-env=VERSION_WITH_COMMIT={version}");
        return;
    };
    println!("cargo:rustc-env=VERSION_WITH_COMMIT={version} ({head})");

    // The files a new commit or a checkout changes. A linked worktree keeps HEAD in its own git
    // directory and the branches in the common one. Only paths that exist are named: cargo
    // reruns a script on every build while a watched path is missing.
    let dirs: Vec<PathBuf> = ["--git-dir", "--git-common-dir"]
        .iter()
        .filter_map(|flag| git(&["rev-parse", flag]).map(PathBuf::from))
        .collect();
    let mut watched = Vec::new();
    for dir in &dirs {
        watched.push(dir.join("HEAD"));
        watched.push(dir.join("logs/HEAD"));
        watched.push(dir.join("packed-refs"));
        watched.push(dir.join("refs/heads"));
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        for dir in &dirs {
            watched.push(dir.join(&branch));
        }
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
