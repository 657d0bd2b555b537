//! Installing bgcloud as a user would: `scripts/package` makes the release archive of the built
//! binary, a local HTTP server serves it where GitHub would (`<repo>/releases/download/<tag>/`),
//! and `install.sh` (or the GitHub Action's own shell steps) downloads, verifies and installs it.
//! No emulator: the release server is `support::receiver`'s file server on 127.0.0.1.
//!
//! The archive is named for the release target `install.sh` picks on this machine (e.g.
//! x86_64-unknown-linux-musl) although it holds the host's debug build: this tests the layout
//! and the installer, not the portability of the binary (the release workflow builds those).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use crate::support::receiver::Receiver;

const TAG: &str = "v0.1.0";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The release target install.sh chooses on this machine (its platform table, again).
fn target() -> &'static str {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => "x86_64-unknown-linux-musl",
        ("linux", "aarch64") => "aarch64-unknown-linux-musl",
        ("macos", "aarch64") => "aarch64-apple-darwin",
        other => panic!("no release target for {other:?}"),
    }
}

fn asset() -> String {
    format!("bgcloud-{}.tar.gz", target())
}

/// The release, packaged once for the whole test binary (gzip of the debug binary takes
/// seconds) into cargo's scratch directory for tests, so no run leaves it behind in /tmp: a
/// directory holding `<asset>` and `<asset>.sha256`.
fn packaged() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("release");
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(root().join("scripts/package"))
            .args([
                "--binary",
                env!("CARGO_BIN_EXE_bgcloud"),
                "--target",
                target(),
            ])
            .arg("--out")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/package: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "scripts/package: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
        dir
    })
}

/// One byte of `archive` changed: a tampered archive.
fn flip_a_byte(archive: &mut [u8]) {
    let middle = archive.len() / 2;
    archive[middle] ^= 0xff;
}

/// A release server for `acme/bgcloud`: `TAG` and `latest` both serve the packaged release
/// (`tamper` may change the archive first).
struct Releases {
    _dir: tempfile::TempDir,
    server: Receiver,
}

impl Releases {
    fn new(tamper: impl Fn(&mut [u8])) -> Releases {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = std::fs::read(packaged().join(asset())).unwrap();
        tamper(&mut archive);
        for place in [format!("download/{TAG}"), "latest/download".to_string()] {
            let to = dir.path().join("acme/bgcloud/releases").join(place);
            std::fs::create_dir_all(&to).unwrap();
            std::fs::write(to.join(asset()), &archive).unwrap();
            let sum = format!("{}.sha256", asset());
            std::fs::copy(packaged().join(&sum), to.join(&sum)).unwrap();
        }
        let server = Receiver::files(dir.path().to_path_buf());
        Releases { _dir: dir, server }
    }

    fn base(&self) -> String {
        format!("{}/acme/bgcloud/releases", self.server.base)
    }

    fn requested(&self) -> Vec<String> {
        self.server
            .received()
            .into_iter()
            .map(|(path, _)| path)
            .collect()
    }
}

/// A directory of stand-ins put first on PATH: `id -u` answers `uid`, and `uname` answers
/// `platform` (-s, -m) when given.
fn fake_bin(home: &Path, uid: u32, platform: Option<(&str, &str)>) -> String {
    let bin = tempfile::tempdir_in(home).unwrap().keep();
    let mut scripts = vec![("id", format!("#!/bin/sh\necho {uid}\n"))];
    if let Some((os, arch)) = platform {
        scripts.push((
            "uname",
            format!("#!/bin/sh\ncase \"$1\" in -s) echo {os} ;; -m) echo {arch} ;; esac\n"),
        ));
    }
    for (name, text) in scripts {
        stand_in(&bin, name, &text);
    }
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

/// An executable script `name` in `bin`.
fn stand_in(bin: &Path, name: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = bin.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A PATH with only the tools install.sh uses, wget instead of curl (`id -u` answering 1000).
fn wget_only_path(home: &Path) -> String {
    let bin = tempfile::tempdir_in(home).unwrap().keep();
    let tools = [
        "sh",
        "uname",
        "grep",
        "tr",
        "cat",
        "mktemp",
        "rm",
        "cut",
        "sha256sum",
        "tar",
        "gzip",
        "mkdir",
        "cp",
        "chmod",
        "mv",
        "wget",
    ];
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        let found = String::from_utf8(found.stdout).unwrap();
        assert!(!found.trim().is_empty(), "{tool} is not installed here");
        std::os::unix::fs::symlink(found.trim(), bin.join(tool)).unwrap();
    }
    stand_in(&bin, "id", "#!/bin/sh\necho 1000\n");
    bin.display().to_string()
}

/// `sh install.sh ARGS` with HOME = `home` and `path` as PATH.
fn install(home: &Path, path: &str, args: &[&str]) -> Output {
    Command::new("sh")
        .arg(root().join("install.sh"))
        .args(args)
        .env("HOME", home)
        .env("PATH", path)
        .env_remove("TMPDIR")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn version_of(binary: &Path) -> String {
    let out = Command::new(binary).arg("--version").output().unwrap();
    assert!(
        out.status.success(),
        "{} --version: {out:?}",
        binary.display()
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_installer_verifies_and_installs_a_release_that_then_runs() {
    let releases = Releases::new(|_| {});
    let home = tempfile::tempdir().unwrap();
    let path = fake_bin(home.path(), 1000, None);
    let to = home.path().join("tools");
    let to_s = to.to_str().unwrap();

    let started = Instant::now();
    let out = install(
        home.path(),
        &path,
        &[
            "--version",
            TAG,
            "--repo",
            "acme/bgcloud",
            "--base-url",
            &releases.base(),
            "--to",
            to_s,
        ],
    );
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let built = version_of(Path::new(env!("CARGO_BIN_EXE_bgcloud")));
    assert!(
        built.starts_with("bgcloud ") && built.contains(" ("),
        "{built}"
    );
    assert_eq!(
        version_of(&to.join("bgcloud")),
        built,
        "the installed binary is the released one"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{to_s}/bgcloud")
    );
    let said = stderr(&out);
    assert!(
        said.contains(&format!("installed {built} (sha256 ")),
        "{said}"
    );
    assert!(said.contains("is not on your PATH"), "{said}");
    let asset = asset();
    assert_eq!(
        releases.requested(),
        vec![
            format!("/acme/bgcloud/releases/download/{TAG}/{asset}.sha256"),
            format!("/acme/bgcloud/releases/download/{TAG}/{asset}"),
        ]
    );
    let size = std::fs::metadata(packaged().join(&asset)).unwrap().len();
    eprintln!(
        "install.sh: {} ms for a {size}-byte archive from 127.0.0.1",
        took.as_millis()
    );

    // Without --version: the latest release; without --to: ~/.local/bin; with wget where
    // there is no curl. A second install replaces the first.
    let out = install(
        home.path(),
        &wget_only_path(home.path()),
        &["--repo", "acme/bgcloud", "--base-url", &releases.base()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(version_of(&home.path().join(".local/bin/bgcloud")), built);
    assert_eq!(
        releases.requested()[2..],
        [
            format!("/acme/bgcloud/releases/latest/download/{asset}.sha256"),
            format!("/acme/bgcloud/releases/latest/download/{asset}"),
        ]
    );
}

#[test]
fn a_tampered_archive_or_a_wrong_pinned_checksum_installs_nothing() {
    let home = tempfile::tempdir().unwrap();
    let path = fake_bin(home.path(), 1000, None);
    let to = home.path().join("bin");
    std::fs::create_dir_all(&to).unwrap();
    std::fs::write(to.join("bgcloud"), "the bgcloud installed before").unwrap();
    let to_s = to.to_str().unwrap();

    let install_from = |releases: &Releases, more: &[&str]| {
        let base = releases.base();
        let args = [&["--version", TAG, "--base-url", &base, "--to", to_s], more].concat();
        install(home.path(), &path, &args)
    };

    // One byte changed in the archive: its .sha256 no longer matches.
    let out = install_from(&Releases::new(flip_a_byte), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains(&format!(
            "checksum mismatch for {}: the release says ",
            asset()
        )),
        "{said}"
    );
    assert!(said.contains("nothing was installed"), "{said}");

    // An archive that matches its own .sha256, but not the checksum the user pinned.
    let pinned = "0".repeat(64);
    let out = install_from(&Releases::new(|_| {}), &["--sha256", &pinned]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("--sha256 says {pinned}")),
        "{}",
        stderr(&out)
    );

    assert_eq!(
        std::fs::read_to_string(to.join("bgcloud")).unwrap(),
        "the bgcloud installed before",
        "the binary already there is untouched"
    );
    let left: Vec<_> = std::fs::read_dir(&to)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "nothing else written to {to_s}: {left:?}");
}

#[test]
fn an_unknown_platform_root_or_a_doubtful_address_is_refused_before_any_download() {
    let releases = Releases::new(|_| {});
    let home = tempfile::tempdir().unwrap();
    let base = releases.base();
    let args = [
        "--version",
        TAG,
        "--repo",
        "acme/bgcloud",
        "--base-url",
        &base,
    ];

    let sparc = fake_bin(home.path(), 1000, Some(("SunOS", "sparc64")));
    let out = install(home.path(), &sparc, &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("no bgcloud release for SunOS sparc64"),
        "{said}"
    );
    assert!(
        said.contains(
            "cargo install --locked --git https://github.com/acme/bgcloud --tag v0.1.0 bgcloud"
        ),
        "the way to build it instead: {said}"
    );

    let home_root = tempfile::tempdir().unwrap();
    let as_root = fake_bin(home_root.path(), 0, None);
    let out = install(home_root.path(), &as_root, &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing to run as root"),
        "{}",
        stderr(&out)
    );
    assert!(!home_root.path().join(".local").exists());

    let user = fake_bin(home.path(), 1000, None);
    let refusals = [
        // Plain HTTP from anywhere but this machine: the checksum would come with the archive.
        (
            "http://releases.example.com/acme/bgcloud/releases".to_string(),
            "is not https://",
        ),
        // Looks like 127.0.0.1, but curl reads `127.0.0.1:80@` as a user name and goes to the
        // host after it: here the release server itself, which must not be asked.
        (
            format!("http://127.0.0.1:80@{}", base.trim_start_matches("http://")),
            "has a user name in it",
        ),
    ];
    for (url, why) in refusals {
        let out = install(home.path(), &user, &["--version", TAG, "--base-url", &url]);
        assert_eq!(out.status.code(), Some(1), "{url}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{url}: {}", stderr(&out));
    }
    let two_lines = format!("{TAG}\n../../elsewhere");
    let out = install(
        home.path(),
        &user,
        &["--version", &two_lines, "--base-url", &base],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--version must be one line"),
        "{}",
        stderr(&out)
    );

    // --help works piped into sh as well (no file to read the text from): to stdout, exit 0.
    let piped = Command::new("sh")
        .args(["-s", "--", "--help"])
        .stdin(std::fs::File::open(root().join("install.sh")).unwrap())
        .output()
        .unwrap();
    assert!(piped.status.success(), "{}", stderr(&piped));
    let help = String::from_utf8(piped.stdout).unwrap();
    assert!(
        help.contains("--sha256 HEX") && help.contains("--allow-root"),
        "{help}"
    );

    assert_eq!(
        releases.requested(),
        Vec::<String>::new(),
        "nothing downloaded"
    );
    assert!(!home.path().join(".local").exists(), "nothing installed");
}

/// action.yml as JSON (PyYAML from the emulator's virtualenv).
fn action() -> serde_json::Value {
    let out = Command::new(root().join("localstack/.venv/bin/python"))
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(root().join("action.yml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of a `${{ … }}` expression in a step's env: the inputs given (else the input's
/// default) and earlier steps' outputs. Any other expression fails the test, so a change to
/// action.yml is looked at here too.
fn evaluate(
    value: &str,
    action: &serde_json::Value,
    inputs: &[(&str, &str)],
    outputs: &std::collections::HashMap<String, String>,
) -> String {
    let Some(expression) = value
        .strip_prefix("${{ ")
        .and_then(|v| v.strip_suffix(" }}"))
    else {
        return value.to_string();
    };
    if let Some(name) = expression.strip_prefix("inputs.") {
        let given = inputs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string());
        let default = action["inputs"][name]["default"]
            .as_str()
            .map(str::to_string);
        return given.or(default).unwrap_or_default();
    }
    if let Some(output) = expression.strip_prefix("steps.") {
        return outputs.get(output).cloned().unwrap_or_default();
    }
    panic!("action.yml: an expression this test does not know: {value}");
}

/// Runs the action's `run:` steps as the runner would (bash -eo pipefail, the step's env, the
/// runner's files), from `<work>/_actions/acme/bgcloud/<sha>`; the `uses:` step (actions/cache)
/// does not run here: the archives directory simply stays between runs, as a cache hit would
/// restore it. Returns what the steps left, or the failed step and what it printed.
/// What the action's steps left: GITHUB_PATH's lines, the steps' outputs, their stderr.
#[derive(Debug)]
struct ActionRun {
    path: Vec<String>,
    outputs: std::collections::HashMap<String, String>,
    said: String,
}

fn run_action(work: &Path, inputs: &[(&str, &str)]) -> Result<ActionRun, String> {
    let action = action();
    let action_path = work.join("_actions/acme/bgcloud/0123456789abcdef0123456789abcdef01234567");
    std::fs::create_dir_all(&action_path).unwrap();
    std::fs::copy(root().join("install.sh"), action_path.join("install.sh")).unwrap();
    let github_path = work.join("github_path");
    std::fs::write(&github_path, "").unwrap();
    let mut outputs = std::collections::HashMap::new();
    let mut said = String::new();
    for step in action["runs"]["steps"].as_array().unwrap() {
        let Some(script) = step["run"].as_str() else {
            assert!(
                step["uses"].as_str().unwrap().starts_with("actions/cache@"),
                "{step}"
            );
            continue;
        };
        assert_eq!(step["shell"], "bash", "{step}");
        let id = step["id"].as_str().unwrap();
        let output_file = work.join(format!("output-{id}"));
        std::fs::write(&output_file, "").unwrap();
        let mut command = Command::new("bash");
        command.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script]);
        for (key, value) in step["env"].as_object().unwrap() {
            command.env(
                key,
                evaluate(value.as_str().unwrap(), &action, inputs, &outputs),
            );
        }
        let out = command
            .env("GITHUB_ACTION_PATH", &action_path)
            .env("GITHUB_OUTPUT", &output_file)
            .env("GITHUB_PATH", &github_path)
            .env("RUNNER_TOOL_CACHE", work.join("tool-cache"))
            .env("RUNNER_ARCH", "X64")
            .output()
            .unwrap();
        if !out.status.success() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            return Err(format!("step {id}: {stdout}{}", stderr(&out)));
        }
        said.push_str(&stderr(&out));
        for line in std::fs::read_to_string(&output_file).unwrap().lines() {
            let (key, value) = line.split_once('=').unwrap();
            outputs.insert(format!("{id}.outputs.{key}"), value.to_string());
        }
    }
    let lines = std::fs::read_to_string(&github_path).unwrap();
    Ok(ActionRun {
        path: lines.lines().map(str::to_string).collect(),
        outputs,
        said,
    })
}

#[test]
fn the_action_installs_the_release_of_the_repository_it_comes_from_and_never_trusts_its_cache() {
    let releases = Releases::new(|_| {});
    let work = tempfile::tempdir().unwrap();
    let digest = std::fs::read_to_string(packaged().join(format!("{}.sha256", asset()))).unwrap();
    let digest = digest.split_whitespace().next().unwrap().to_string();
    let inputs = [
        ("version", TAG),
        ("sha256", digest.as_str()),
        ("server-url", releases.server.base.as_str()),
    ];
    let archive = format!("/acme/bgcloud/releases/download/{TAG}/{}", asset());
    let checksum = format!("{archive}.sha256");

    let ActionRun { path, outputs, .. } = run_action(work.path(), &inputs).unwrap();
    let dir = work
        .path()
        .join(format!("tool-cache/bgcloud/acme/bgcloud/{TAG}/X64"));
    assert_eq!(
        path,
        vec![dir.display().to_string()],
        "bgcloud's directory is put on PATH"
    );
    assert_eq!(
        outputs["install.outputs.path"],
        dir.join("bgcloud").display().to_string()
    );
    let built = version_of(Path::new(env!("CARGO_BIN_EXE_bgcloud")));
    assert_eq!(version_of(&dir.join("bgcloud")), built);
    // The repository comes from the action's own path (github.action_repository is empty in a
    // composite action).
    assert_eq!(
        releases.requested(),
        vec![checksum.clone(), archive.clone()]
    );

    // The archive is cached: the next run fetches only the release's checksum to check it.
    let said = run_action(work.path(), &inputs).unwrap().said;
    assert!(said.contains("it matches the release's checksum"), "{said}");
    assert_eq!(releases.requested()[2..], [checksum.as_str()]);

    // A cached archive someone changed (the cache is shared with jobs that run npm) is not
    // used: the release's archive is downloaded again, and a binary someone planted is replaced.
    let cached = work.path().join(format!(
        "tool-cache/bgcloud-archives/acme/bgcloud/{TAG}/X64/{}",
        asset()
    ));
    let mut bytes = std::fs::read(&cached).unwrap();
    flip_a_byte(&mut bytes);
    std::fs::write(&cached, bytes).unwrap();
    std::fs::write(dir.join("bgcloud"), "#!/bin/sh\necho planted\n").unwrap();
    let said = run_action(work.path(), &inputs).unwrap().said;
    assert!(
        said.contains("does not match the release's checksum: downloading it again"),
        "{said}"
    );
    assert_eq!(releases.requested()[3..], [checksum, archive]);
    assert_eq!(version_of(&dir.join("bgcloud")), built);

    // A version that is not a tag is refused by the first step, before any download.
    let other = tempfile::tempdir().unwrap();
    let refused = run_action(other.path(), &[("version", "latest")]).unwrap_err();
    assert!(
        refused.starts_with("step release: ") && refused.contains("'latest' is not a release tag"),
        "{refused}"
    );
    assert_eq!(releases.requested().len(), 5, "{:?}", releases.requested());
}

fn git(args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_version_names_the_commit_it_was_built_from_and_that_commits_date() {
    let said = version_of(Path::new(env!("CARGO_BIN_EXE_bgcloud")));
    let commit = git(&["log", "-1", "--format=%h %cs", "--abbrev=7"]);
    assert_eq!(
        said,
        format!("bgcloud {} ({commit})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_release_tag_must_match_the_version_and_have_its_changelog_section() {
    let notes = |args: &[&str]| {
        Command::new(root().join("scripts/release-notes"))
            .args(args)
            .output()
            .unwrap()
    };
    let version = env!("CARGO_PKG_VERSION");
    let repository = env!("CARGO_PKG_REPOSITORY");
    let out = notes(&[&format!("v{version}"), "--repository", repository]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let changelog = std::fs::read_to_string(root().join("CHANGELOG.md")).unwrap();
    assert!(
        !text.is_empty() && changelog.contains(&text),
        "the section, verbatim: {text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("## ")),
        "only this version's section: {text}"
    );

    let out = notes(&["v99.0.0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "tag v99.0.0 but Cargo.toml says version {version}"
        )),
        "{}",
        stderr(&out)
    );
    let out = notes(&[
        &format!("v{version}"),
        "--repository",
        "https://github.com/someone/else",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("set it to \"https://github.com/someone/else\""),
        "{}",
        stderr(&out)
    );
}
