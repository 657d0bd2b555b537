//! Running the real `bgcloud` binary: a fluent builder (config, access key, environment), its
//! outcome (exit code, stdout, stderr), and signals for a spawned run.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::emulator::{endpoint, s3_endpoint};

/// Sends `signal` (INT, TERM, KILL) to a spawned bgcloud.
pub fn signal(child: &std::process::Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal}");
}

/// Waits for a spawned bgcloud: (exit code, -1 when killed by a signal; stdout; stderr).
pub fn finish(child: std::process::Child) -> (i32, String, String) {
    let out = child.wait_with_output().expect("wait for bgcloud");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A command about to run; `.ok()`, `.code(n)` and `.json()` run it and check the outcome.
pub struct Run {
    cmd: Command,
}

#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// stderr says `text` (shown whole when it does not).
    #[track_caller]
    pub fn assert_stderr_has(&self, text: &str) {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
    }
}

impl Run {
    /// The real binary, signed with `access_key`, reading `config`, isolated from the user's
    /// AWS profile, CI variables and BGCLOUD_* overrides.
    pub fn new(access_key: &str, config: &Path, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bgcloud"));
        // bgcloud refuses a BGCLOUD_* variable it does not know (the lane's, a developer's).
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("BGCLOUD_") {
                cmd.env_remove(name);
            }
        }
        cmd.args(args)
            .current_dir(config.parent().unwrap())
            .env("BGCLOUD_CONFIG", config)
            .env("AWS_ENDPOINT_URL", endpoint())
            .env("AWS_ACCESS_KEY_ID", access_key)
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("USER", "tester")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env_remove("RUST_LOG");
        match s3_endpoint() {
            // The SDK's per-service variable: S3 there, everything else to AWS_ENDPOINT_URL.
            Some(url) => cmd.env("AWS_ENDPOINT_URL_S3", url),
            None => cmd.env_remove("AWS_ENDPOINT_URL_S3"),
        };
        Run { cmd }
    }

    /// The same run started through `program args…` (e.g. a pseudo-terminal wrapper), which
    /// gets bgcloud's path and command line after its own arguments, and the same environment.
    pub fn wrapped(self, program: &Path, args: &[&str]) -> Run {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .arg(self.cmd.get_program())
            .args(self.cmd.get_args());
        if let Some(dir) = self.cmd.get_current_dir() {
            cmd.current_dir(dir);
        }
        for (key, value) in self.cmd.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        Run { cmd }
    }

    pub fn env(mut self, key: &str, value: &str) -> Run {
        self.cmd.env(key, value);
        self
    }

    /// Runs it in `dir` instead of the config's folder.
    pub fn in_dir(mut self, dir: &Path) -> Run {
        self.cmd.current_dir(dir);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Run {
        self.cmd.env_remove(key);
        self
    }

    pub fn run(mut self) -> Outcome {
        let out = self.cmd.stdin(Stdio::null()).output().expect("run bgcloud");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts it without waiting, output captured.
    pub fn spawn(mut self) -> std::process::Child {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bgcloud")
    }

    /// Runs and asserts exit code 0.
    pub fn ok(self) -> Outcome {
        self.code(0)
    }

    /// Runs and asserts the exit code.
    pub fn code(self, expected: i32) -> Outcome {
        let out = self.run();
        assert_eq!(
            out.code, expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            out.stdout, out.stderr
        );
        out
    }

    /// Runs with `--output json`, asserts success, parses stdout.
    pub fn json(mut self) -> Value {
        self.cmd.args(["--output", "json"]);
        let out = self.ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", out.stdout))
    }
}
