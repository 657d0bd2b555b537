//! Renders the shell script that SSM runs on each instance to start a colour's container.
//! Every interpolated value is shell-quoted; secrets are fetched on the instance by parameter
//! name, so no secret value is ever in the command text.

use std::collections::BTreeMap;

use crate::aws::target_group::HealthCheck;

/// Quotes `s` for a POSIX shell: the result is one word whose value is exactly `s`.
///
/// Not `shlex::try_quote`, although its words read back the same through `sh` (the property
/// test below passes with it): it also quotes `=`, `,` and `%`, so `-e NODE_ENV=production` and
/// `--label bgcloud.digest=sha256:…` would turn into `'…'` in every launch script (the stored
/// desired state too), in the plan and in `--output json`, which users and the tests read as
/// they are; and it answers a Result for NUL, which the config already refuses.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `argv` as one shell command line: each argument one quoted word.
pub fn command_line(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// The lock every script that starts containers on an instance takes, the module's boot loop
/// included: one of them at a time, so the boot loop cannot run an older desired state over a
/// container a deploy just started (or the reverse).
pub const LOCK_FILE: &str = "/run/bgcloud.lock";

/// Set by a script that holds [`LOCK_FILE`] for the scripts it runs (the boot loop running each
/// colour's desired state): they must not wait for it again.
pub const LOCK_HELD: &str = "BGCLOUD_LOCK_HELD";

/// How long a command waits for the instance's boot (cloud-init) to finish ([`boot_wait`]), and
/// a script for the lock: an Amazon Linux boot that installs Docker takes a minute or two.
pub const BOOT_WAIT_SECONDS: u32 = 300;

/// How much of the release task's output is kept (its end), well inside SSM's 24,000
/// characters of stdout.
pub const RELEASE_OUTPUT: usize = 20_000;

/// Everything the launch script needs.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub app: &'a str,
    pub color: &'a str,
    pub region: &'a str,
    /// `registry/repository`, without tag or digest.
    pub repository_uri: &'a str,
    pub digest: &'a str,
    pub deployment_id: &'a str,
    pub host_port: u16,
    pub container_port: u16,
    pub env: &'a BTreeMap<String, String>,
    /// Variable name → SSM parameter name.
    pub secrets: &'a BTreeMap<String, String>,
    /// The target group's health check, which the on-instance readiness probe mirrors.
    pub health_check: &'a HealthCheck,
    /// How long the on-instance readiness probe waits for a passing answer.
    pub ready_seconds: u32,
    /// `docker stop -t`: how long the container being replaced gets after SIGTERM.
    pub stop_grace_seconds: u64,
}

impl Launch<'_> {
    pub fn image(&self) -> String {
        format!("{}@{}", self.repository_uri, self.digest)
    }

    pub fn registry(&self) -> &str {
        self.repository_uri
            .split('/')
            .next()
            .unwrap_or(self.repository_uri)
    }

    pub fn container(&self) -> String {
        format!("{}-{}", self.app, self.color)
    }

    /// The script's lines (SSM `AWS-RunShellScript` takes a list of commands).
    pub fn render(&self) -> Vec<String> {
        let q = quote;
        let container = q(&self.container());
        let mut lines = self.prelude(&format!("start {} on this instance", self.container()));
        // SIGTERM first, as `docker stop` does, so the app can finish the requests it holds
        // (those of a drain cut short by drain_wait_max, a client slower than the delay);
        // killed after the grace. No container yet: nothing to stop.
        lines.push(format!(
            "docker stop -t {} {container} >/dev/null 2>&1 || true",
            self.stop_grace_seconds
        ));
        // `rm -f` of a container in a restart loop (--restart unless-stopped, a crashing image)
        // can race with its restart and leave the name taken (measured with podman on the real
        // lane: "the container name … is already in use"): remove until the name is free.
        lines.push(format!(
            "for bgcloud_try in 1 2 3 4 5 6 7 8 9 10; do\n  docker rm -f {container} >/dev/null 2>&1 || true\n  docker inspect {container} >/dev/null 2>&1 || break\n  sleep 1\ndone"
        ));
        let run = format!(
            "docker run -d --restart unless-stopped --name {container} -p {}:{} \\\n  --label {} --label {} --label {} --label {}{} \\\n  {} >/dev/null 9>&-",
            self.host_port,
            self.container_port,
            q(&format!("bgcloud.app={}", self.app)),
            q(&format!("bgcloud.color={}", self.color)),
            q(&format!("bgcloud.digest={}", self.digest)),
            q(&format!("bgcloud.deployment={}", self.deployment_id)),
            self.env_flags(),
            q(&self.image()),
        );
        lines.push(run);
        lines.extend(self.readiness());
        lines
    }

    /// The release task (migrations): `argv` run once with the new image by digest, the same env
    /// and secrets, in a container named `<app>-release` and removed afterwards (the name also
    /// stops a second task from starting while one still runs there). Its output is kept to the
    /// last `RELEASE_OUTPUT` bytes (SSM would keep the first 24,000 characters; the end is what
    /// says why it failed), with any secret's value masked, and a failure's exit code is the
    /// last line.
    pub fn release_task(&self, argv: &[String]) -> Vec<String> {
        let q = quote;
        let mut lines = self.prelude(&format!(
            "release task of {} with {}, before its containers start",
            self.app,
            self.image()
        ));
        let command = command_line(argv);
        // bgcloud_*: names no secret can shadow before docker reads the environment.
        lines.push("bgcloud_out=\"$(mktemp)\"".to_string());
        lines.push(format!(
            "if docker run --rm --name {} --label {} --label {}{} \\\n  {} {} >\"$bgcloud_out\" 2>&1 9>&-; then bgcloud_code=0; else bgcloud_code=$?; fi",
            q(&format!("{}-release", self.app)),
            q(&format!("bgcloud.app={}", self.app)),
            q(&format!("bgcloud.release-task={}", self.deployment_id)),
            self.env_flags(),
            q(&self.image()),
            command,
        ));
        let mask = if self.secrets.is_empty() {
            String::new()
        } else {
            // A tool that fails to connect often prints its URL, password included. ENVIRON,
            // not -v: awk would read escapes in a -v value.
            let names: Vec<&str> = self.secrets.keys().map(String::as_str).collect();
            format!(
                " | awk 'BEGIN {{ n = split(\"{}\", names, \" \") }} {{ for (k = 1; k <= n; k++) {{ s = ENVIRON[names[k]]; if (s == \"\") continue; out = \"\"; rest = $0; while ((i = index(rest, s)) > 0) {{ out = out substr(rest, 1, i - 1) \"***\"; rest = substr(rest, i + length(s)) }} $0 = out rest }} print }}'",
                names.join(" ")
            )
        };
        lines.push(format!(
            "tail -c {RELEASE_OUTPUT} \"$bgcloud_out\"{mask}; rm -f \"$bgcloud_out\""
        ));
        lines.push(format!(
            "if [ $bgcloud_code -ne 0 ]; then echo \"bgcloud: the release task {} exited $bgcloud_code\" >&2; fi",
            command.replace(['"', '$', '`', '\\'], "")
        ));
        lines.push("exit $bgcloud_code".to_string());
        lines
    }

    /// The start every script shares: take the instance's lock, log in to ECR with the instance
    /// role, pull by digest, fetch the secrets on the instance by parameter name.
    fn prelude(&self, what: &str) -> Vec<String> {
        let q = quote;
        let region = q(self.region);
        let mut lines = vec![
            "#!/bin/sh".to_string(),
            format!("# bgcloud: {what}"),
            "set -eu".to_string(),
            lock(),
            // The instance role logs in; no registry token is ever in this text.
            format!(
                "aws ecr get-login-password --region {region} | docker login --username AWS --password-stdin {} >/dev/null",
                q(self.registry())
            ),
            // Pull before removing anything: a failed pull leaves the old container as it was.
            format!("docker pull --quiet {}", q(&self.image())),
        ];
        for (name, parameter) in self.secrets {
            // Fetched here, exported, and passed to docker by name (`-e NAME`): the value is in
            // neither this script, nor docker's command line, nor bgcloud's output.
            lines.push(format!(
                "{name}=\"$(aws ssm get-parameter --region {region} --with-decryption --name {} --query Parameter.Value --output text)\"",
                q(parameter)
            ));
            lines.push(format!("export {name}"));
        }
        lines
    }

    /// ` \\\n  -e NAME=value` for each env entry and ` -e NAME` for each secret.
    fn env_flags(&self) -> String {
        let mut flags = String::new();
        for (name, value) in self.env {
            flags.push_str(&format!(" \\\n  -e {}", quote(&format!("{name}={value}"))));
        }
        for name in self.secrets.keys() {
            flags.push_str(&format!(" \\\n  -e {name}"));
        }
        flags
    }

    /// The URL the ALB's health check would ask, on this instance.
    pub fn probe_url(&self) -> String {
        let hc = self.health_check;
        let scheme = if hc.protocol.eq_ignore_ascii_case("HTTPS") {
            "https"
        } else {
            "http"
        };
        let port = hc.port.unwrap_or(self.host_port);
        format!("{scheme}://127.0.0.1:{port}{}", hc.path)
    }

    /// The readiness probe: what the ALB's health check will ask (path, protocol, port), judged
    /// by its matcher, every second while the container runs. Not ready in time: the container's
    /// last log lines, bounded so the reason fits SSM's 8,000 characters of stderr, and the
    /// reason itself as the very last line.
    fn readiness(&self) -> Vec<String> {
        let hc = self.health_check;
        let container = quote(&self.container());
        let name = self.container();
        let insecure = if self.probe_url().starts_with("https") {
            " -k"
        } else {
            ""
        };
        let tests: Vec<String> = hc
            .matcher
            .ranges
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    format!("  [ \"$1\" -eq {lo} ] && return 0")
                } else {
                    format!("  [ \"$1\" -ge {lo} ] && [ \"$1\" -le {hi} ] && return 0")
                }
            })
            .collect();
        vec![
            format!(
                "# Ready when the container answers as the target group's health check expects ({}).",
                hc.matcher
            ),
            format!(
                "bgcloud_passes() {{\n  case \"$1\" in ''|*[!0-9]*) return 1 ;; esac\n{}\n  return 1\n}}",
                tests.join("\n")
            ),
            format!("url={}", quote(&self.probe_url())),
            format!(
                "code=none; state=missing; i=0\n\
                 while [ $i -lt {seconds} ]; do\n  \
                   state=\"$(docker inspect -f '{{{{.State.Status}}}} (exit code {{{{.State.ExitCode}}}})' {container} 2>/dev/null || echo missing)\"\n  \
                   case \"$state\" in running*) ;; *) break ;; esac\n  \
                   code=\"$(curl -s -o /dev/null -w '%{{http_code}}' --max-time {timeout}{insecure} \"$url\" || true)\"\n  \
                   if bgcloud_passes \"$code\"; then echo \"bgcloud: {name} answers $code on $url\"; exit 0; fi\n  \
                   i=$((i+1)); sleep 1\n\
                 done",
                seconds = self.ready_seconds,
                timeout = hc.timeout.as_secs().clamp(1, 10),
            ),
            format!("echo \"bgcloud: last log lines of {name}:\" >&2"),
            format!("docker logs --tail 50 {container} 2>&1 | tail -c 3000 >&2 || true"),
            format!(
                "case \"$state\" in\n  \
                   running*) case \"$code\" in\n    \
                     none|000) echo \"bgcloud: {name} is not ready: no answer on $url within {seconds} s\" >&2 ;;\n    \
                     *) echo \"bgcloud: {name} is not ready: $url answered $code, the target group expects {matcher} (waited {seconds} s)\" >&2 ;;\n  \
                   esac ;;\n  \
                   *) echo \"bgcloud: {name} is not running: $state\" >&2 ;;\n\
                 esac",
                seconds = self.ready_seconds,
                matcher = hc.matcher,
            ),
            "exit 1".to_string(),
        ]
    }
}

/// EC2 says `running` and the SSM agent `Online` before user data has finished: a command sent
/// through SSM first waits for the boot (cloud-init, bounded), *before* the script takes the
/// lock, never while holding it (the boot loop needs the lock to finish). Not part of the
/// script itself: the script is also the stored desired state, which a boot loop runs from
/// inside cloud-init, where waiting for cloud-init would wait for itself ([`crate::backend::launch`]
/// puts this in front of what it sends). Without cloud-init (custom AMIs, the real lane) there is
/// no boot this can see: it says so.
pub fn boot_wait() -> String {
    let wait = BOOT_WAIT_SECONDS;
    format!(
        "if command -v cloud-init >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then\n  \
           bgcloud_boot=0; timeout {wait} cloud-init status --wait >/dev/null 2>&1 || bgcloud_boot=$?\n  \
           case $bgcloud_boot in\n    \
             0) ;;\n    \
             124) echo \"bgcloud: this instance is still booting after {wait} s (cloud-init status --wait); see /var/log/cloud-init-output.log on it, then deploy again\" >&2; exit 1 ;;\n    \
             *) echo \"bgcloud: this instance's boot (cloud-init) ended with status $bgcloud_boot; going on (see /var/log/cloud-init-output.log)\" >&2 ;;\n  \
           esac\n\
         else\n  \
           echo \"bgcloud: no cloud-init on this instance: not waiting for its boot to finish\" >&2\n\
         fi"
    )
}

/// Takes [`LOCK_FILE`] on fd 9 until the script ends, unless the boot loop runs this script
/// under its own hold ([`LOCK_HELD`]). The containers' processes must not inherit fd 9
/// (podman's conmon would hold the lock for the container's life): `docker run` closes it.
fn lock() -> String {
    let (wait, lock) = (BOOT_WAIT_SECONDS, LOCK_FILE);
    format!(
        "if [ -z \"${{{LOCK_HELD}:-}}\" ]; then\n  \
           exec 9>{lock}\n  \
           if ! command -v flock >/dev/null 2>&1; then echo \"bgcloud: no flock on this instance (util-linux): not waiting for its boot loop's lock\" >&2\n  \
           elif ! flock -w {wait} 9; then echo \"bgcloud: {lock} is still held after {wait} s (a boot script or another launch on this instance; see which with: fuser -v {lock})\" >&2; exit 1; fi\n\
         fi"
    )
}

/// The script `bgcloud idle stop` sends: the colour's container stopped (SIGTERM, then
/// `stop_grace`) and kept — its logs stay readable (`docker logs`), and a person can
/// `docker start` it — while bgcloud's own start runs the colour's launch script again (a fresh
/// container: the recorded digest, the secrets as they are now). Under the instance's lock, as
/// every script that changes containers. `docker stop` of a container run with
/// `--restart unless-stopped` keeps it stopped across a Docker restart and a reboot (the Docker
/// reference, restart policies). No container (an instance that booted while the colour slept):
/// nothing to stop.
pub fn stop(app: &str, color: &str, grace_seconds: u64) -> Vec<String> {
    let name = format!("{app}-{color}");
    let container = quote(&name);
    vec![
        "#!/bin/sh".to_string(),
        format!("# bgcloud: stop {name} on this instance (kept, not removed)"),
        "set -eu".to_string(),
        lock(),
        format!(
            "if docker inspect {container} >/dev/null 2>&1; then\n  \
               docker stop -t {grace_seconds} {container} >/dev/null\n  \
               echo \"bgcloud: {name} stopped\"\n\
             else\n  \
               echo \"bgcloud: no {name} container on this instance: nothing to stop\"\n\
             fi"
        ),
    ]
}

/// The lines a sleeping colour's desired state starts with: the boot loop runs the stored
/// script as it runs any, and these end it before the launch script kept below them (what
/// `bgcloud idle start` and a rollback run). `since`: an RFC 3339 time bgcloud wrote.
pub fn asleep(app: &str, color: &str, since: &str) -> Vec<String> {
    let name = format!("{app}-{color}");
    vec![
        "#!/bin/sh".to_string(),
        format!(
            "{}{since} {name} sleeps (bgcloud idle stop): `bgcloud idle start` or `bgcloud rollback` starts it",
            crate::state::desired::STOPPED_MARK
        ),
        format!(
            "echo {} >&2",
            quote(&format!(
                "bgcloud: {name} is stopped since {since} (bgcloud idle stop): not started"
            ))
        ),
        "exit 0".to_string(),
    ]
}

/// The script `bgcloud sync` sends to ask what runs: one line per colour container of the app,
/// `NAME STATUS DIGEST` (docker's state and bgcloud's digest label), or `NAME missing`.
pub fn inspect(app: &str) -> Vec<String> {
    let names = [format!("{app}-blue"), format!("{app}-green")].map(|n| quote(&n));
    vec![
        "#!/bin/sh".to_string(),
        format!("# bgcloud: inspect {app}'s containers on this instance (changes nothing)"),
        format!("for c in {}; do", names.join(" ")),
        "  printf '%s %s\\n' \"$c\" \"$(docker inspect -f '{{.State.Status}} {{index .Config.Labels \"bgcloud.digest\"}}' \"$c\" 2>/dev/null || echo missing)\"".to_string(),
        "done".to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::Command;

    /// What `sh` makes of the quoted word.
    fn shell_value(word: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' {word}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "sh failed on {word}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn quoting_handles_the_nasty_cases() {
        for s in [
            "",
            "plain",
            "it's",
            "$(reboot)",
            "`id`",
            "a;b",
            "a\nb",
            "'",
            "''",
            "\\",
            "$HOME",
            "a b",
            "*",
            "-n",
        ] {
            assert_eq!(shell_value(&quote(s)), s, "{s:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn quoting_round_trips_through_sh(s in "[^\u{0}]{0,40}") {
            prop_assert_eq!(shell_value(&quote(&s)), s);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        /// Whatever env and secret names the config lets through, and any values, the script is
        /// valid `sh` and every env entry reaches docker as exactly `NAME=value`.
        #[test]
        fn any_env_and_secrets_render_a_valid_script(
            env in proptest::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,12}", "[^\u{0}]{0,30}", 0..4),
            secrets in proptest::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,12}", "/[a-z/]{1,20}", 0..3),
        ) {
            let script = launch(&env, &secrets).render().join("\n");
            let out = Command::new("sh").arg("-n").arg("-c").arg(&script).output().unwrap();
            prop_assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            for (name, value) in &env {
                let word = quote(&format!("{name}={value}"));
                prop_assert!(script.contains(&format!("-e {word}")), "{name}");
            }
        }
    }

    fn health_check(path: &str, matcher: &str) -> HealthCheck {
        HealthCheck {
            protocol: "HTTP".into(),
            port: None,
            path: path.into(),
            matcher: crate::aws::target_group::Matcher::parse(matcher).unwrap(),
            interval: std::time::Duration::from_secs(10),
            timeout: std::time::Duration::from_secs(5),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        }
    }

    static HEALTHZ: std::sync::LazyLock<HealthCheck> =
        std::sync::LazyLock::new(|| health_check("/healthz", "200-399"));

    fn launch<'a>(
        env: &'a BTreeMap<String, String>,
        secrets: &'a BTreeMap<String, String>,
    ) -> Launch<'a> {
        Launch {
            health_check: &HEALTHZ,
            app: "shop",
            color: "green",
            region: "us-east-1",
            repository_uri: "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop-api",
            digest: "sha256:abc",
            deployment_id: "20261127-1",
            host_port: 8082,
            container_port: 3000,
            env,
            secrets,
            ready_seconds: 30,
            stop_grace_seconds: 10,
        }
    }

    #[test]
    fn script_pulls_by_digest_and_maps_the_colour_port() {
        let env = BTreeMap::from([("NODE_ENV".to_string(), "production".to_string())]);
        let secrets = BTreeMap::new();
        let script = launch(&env, &secrets).render().join("\n");
        assert!(script.contains("docker login --username AWS --password-stdin 123456789012.dkr.ecr.us-east-1.amazonaws.com"));
        assert!(script.contains(
            "docker pull --quiet 123456789012.dkr.ecr.us-east-1.amazonaws.com/shop-api@sha256:abc"
        ));
        assert!(script.contains("--name shop-green -p 8082:3000"));
        assert!(script.contains("-e NODE_ENV=production"));
        assert!(script.contains("--label bgcloud.digest=sha256:abc"));
        assert!(script.contains("docker logs --tail 50 shop-green"));
        assert!(
            script.contains("url=http://127.0.0.1:8082/healthz"),
            "the probe asks the health check's path on the colour port: {script}"
        );
        let pull = script.find("docker pull").unwrap();
        assert!(
            pull < script.find("docker rm -f").unwrap(),
            "pull before removing the old container"
        );
    }

    #[test]
    fn boot_then_the_lock_then_docker_and_a_graceful_stop_before_the_removal() {
        let (env, secrets) = (BTreeMap::new(), BTreeMap::new());
        let script = launch(&env, &secrets).render().join("\n");
        // What SSM gets: the boot wait in front (crate::backend::launch::sent).
        let sent = format!("{}\n{script}", boot_wait());
        let at = |s: &str| sent.find(s).unwrap_or_else(|| panic!("{s} in {sent}"));
        assert!(at("cloud-init status --wait") < at("flock -w 300 9"));
        assert!(at("flock -w 300 9") < at("docker login"));
        assert!(
            !script.contains("cloud-init"),
            "the stored desired state never waits for cloud-init: a boot loop runs it from there"
        );
        assert!(at("docker stop -t 10 shop-green") < at("docker rm -f shop-green"));
        assert!(
            script.contains("@sha256:abc >/dev/null 9>&-"),
            "the container does not inherit the lock: {script}"
        );
        let task = launch(&env, &secrets)
            .release_task(&["migrate".into()])
            .join("\n");
        assert!(task.find("flock").unwrap() < task.find("docker run").unwrap());
    }

    #[test]
    fn hostile_env_values_stay_inert() {
        let value = "hi'; rm -rf / #$(id)`id`\nnext";
        let env = BTreeMap::from([("GREETING".to_string(), value.to_string())]);
        let secrets = BTreeMap::new();
        let script = launch(&env, &secrets).render().join("\n");
        let word = quote(&format!("GREETING={value}"));
        assert!(script.contains(&format!("-e {word} \\")), "{script}");
        assert_eq!(shell_value(&word), format!("GREETING={value}"));
    }

    #[test]
    fn secrets_are_fetched_by_name_and_never_inlined() {
        let env = BTreeMap::new();
        let secrets = BTreeMap::from([(
            "DATABASE_URL".to_string(),
            "/shop/prod/DATABASE_URL".to_string(),
        )]);
        let script = launch(&env, &secrets).render().join("\n");
        assert!(script.contains("--with-decryption --name /shop/prod/DATABASE_URL"));
        assert!(script.contains("export DATABASE_URL"));
        assert!(script.contains("\n  -e DATABASE_URL \\"), "{script}");
        let assignments: Vec<&str> = script
            .lines()
            .filter(|l| l.contains("DATABASE_URL="))
            .collect();
        assert_eq!(assignments.len(), 1, "{script}");
        assert!(
            assignments[0].starts_with("DATABASE_URL=\"$(aws ssm get-parameter"),
            "{script}"
        );
    }

    #[test]
    fn script_is_valid_sh() {
        let env = BTreeMap::from([("A".to_string(), "x y".to_string())]);
        let secrets = BTreeMap::from([("S".to_string(), "/p".to_string())]);
        let script = launch(&env, &secrets).render().join("\n");
        let out = Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A local HTTP server that answers `GET /<status>` with that status, for the probe tests.
    fn status_server() -> u16 {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let status: u16 = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.trim_start_matches('/').parse().ok())
                    .unwrap_or(404);
                let mut out = stream;
                let _ = write!(
                    out,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        port
    }

    /// Runs `script` under `sh` with the `fakes` (name, script text) standing in for those
    /// commands: (exit code, stdout, stderr). Each fake is a shell function whose body runs in
    /// a subshell (its `exit` ends only the fake), with `$bgcloud_fake` set to its name — not an
    /// executable file on PATH: running a file this process just wrote fails with ETXTBSY when
    /// another test thread forks in between (it inherits the write descriptor until it execs).
    fn run_with_fakes(script: &str, fakes: &[(&str, &str)]) -> (i32, String, String) {
        // The instance's lock (/run) and boot wait are the real lane's to prove (tests/real):
        // here the scripts run as under the boot loop, which holds the lock.
        let mut text = format!("{LOCK_HELD}=1\n");
        for (name, body) in fakes {
            let body = body.strip_prefix("#!/bin/sh\n").unwrap_or(body);
            text.push_str(&format!("{name}() (\nbgcloud_fake={name}\n{body}\n)\n"));
        }
        text.push_str(script);
        let out = Command::new("sh").arg("-c").arg(&text).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs the script's readiness part under `sh` with a fake `docker` (the container
    /// "runs" and has a long log) and the real curl: (exit code, stdout, stderr).
    fn run_readiness(launch: &Launch<'_>) -> (i32, String, String) {
        let docker = "#!/bin/sh\ncase \"$1\" in\n  inspect) echo 'running (exit code 0)' ;;\n  logs) i=0; while [ $i -lt 3000 ]; do echo \"log line $i: the app said something long enough to matter\"; i=$((i+1)); done ;;\nesac\n";
        let script = format!("set -eu\n{}", launch.readiness().join("\n"));
        run_with_fakes(&script, &[("docker", docker)])
    }

    #[test]
    fn the_probe_judges_answers_by_the_target_groups_matcher() {
        let port = status_server();
        let (env, secrets) = (BTreeMap::new(), BTreeMap::new());
        let mut cases = Vec::new();
        for matcher in ["200", "200-399", "200,302"] {
            for status in [200u16, 302, 404, 500] {
                cases.push((matcher, status));
            }
        }
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = cases
                .iter()
                .map(|&(matcher, status)| {
                    let (env, secrets) = (&env, &secrets);
                    s.spawn(move || {
                        let hc = health_check(&format!("/{status}"), matcher);
                        let mut l = launch(env, secrets);
                        l.health_check = &hc;
                        l.host_port = port;
                        l.ready_seconds = 1;
                        (matcher, status, run_readiness(&l))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (matcher, status, (code, stdout, stderr)) in results {
            let expected = crate::aws::target_group::Matcher::parse(matcher)
                .unwrap()
                .matches(status);
            assert_eq!(
                code == 0,
                expected,
                "matcher {matcher}, answer {status}: exit {code}\n{stdout}\n{stderr}"
            );
            if !expected {
                let last = stderr.lines().last().unwrap_or_default();
                assert!(
                    last.contains(&format!("answered {status}")) && last.contains(matcher),
                    "the reason is the last line: {last}"
                );
            }
        }
    }

    #[test]
    fn a_failed_probe_fits_ssm_stderr_with_the_reason_last() {
        let port = status_server();
        let (env, secrets) = (BTreeMap::new(), BTreeMap::new());
        let hc = health_check("/500", "200");
        let mut l = launch(&env, &secrets);
        l.health_check = &hc;
        l.host_port = port;
        l.ready_seconds = 1;
        let (code, _, stderr) = run_readiness(&l);
        assert_eq!(code, 1);
        assert!(
            stderr.len() < 8_000,
            "SSM keeps 8,000 characters of stderr; the script wrote {}",
            stderr.len()
        );
        assert!(
            stderr.contains("log line 2999"),
            "the newest log lines are kept"
        );
        let last = stderr.lines().last().unwrap();
        assert!(
            last.starts_with("bgcloud: shop-green is not ready") && last.contains("answered 500"),
            "{last}"
        );
    }

    /// Fakes of the commands an instance script calls (`aws`, `docker`, `curl`), each writing
    /// `name|arg|arg|…|` as one line to `calls` (args as the words it received, so a broken
    /// quote shows), and a docker whose containers live as files in `state`. `pull_exit` is
    /// what `docker pull` exits with; `inspect` answers the sync script's question for a name.
    fn instance_fakes(
        calls: &std::path::Path,
        state: &std::path::Path,
        pull_exit: i32,
    ) -> [(&'static str, String); 3] {
        let record = format!(
            // One write per line (O_APPEND): the two sides of a pipe record at the same time.
            "bgcloud_call=\"$(printf '%s|' \"$bgcloud_fake\" \"$@\")\"; echo \"$bgcloud_call\" >>'{}'\n",
            calls.display()
        );
        let state = state.display();
        let aws = format!(
            "#!/bin/sh\n{record}case \"$1 $2\" in\n  'ecr get-login-password') echo token ;;\n  'ssm get-parameter') echo 'postgres://app:pw@db/prod' ;;\n  *) exit 2 ;;\nesac\n"
        );
        // `run` records the secret it was given (by name, from its exported environment: printenv
        // is a program, it does not see shell variables) so the test
        // sees it reached docker; `inspect` of a container that does not exist fails, as docker.
        let docker = format!(
            "#!/bin/sh\n{record}last=\"\"; for a in \"$@\"; do last=\"$a\"; done\ncase \"$1\" in\n  login) echo \"docker login read $(cat) on stdin\" >>'{}' ;;\n  pull) exit {pull_exit} ;;\n  rm) rm -f '{state}'/\"$last\" ;;\n  run) name=\"\"; prev=\"\"; for a in \"$@\"; do [ \"$prev\" = --name ] && name=\"$a\"; prev=\"$a\"; done; echo \"$*\" >'{state}'/\"$name\"; echo \"secret DB_URL=$(printenv DB_URL || echo unset)\" >>'{}' ;;\n  inspect) [ -f '{state}'/\"$last\" ] || exit 1\n    case \"$*\" in *bgcloud.digest*) echo 'running sha256:abc' ;; *) echo 'running (exit code 0)' ;; esac ;;\n  logs) ;;\n  *) exit 2 ;;\nesac\n",
            calls.display(),
            calls.display()
        );
        let curl = format!("#!/bin/sh\n{record}printf 200\n");
        [("aws", aws), ("docker", docker), ("curl", curl)]
    }

    /// The launch script as SSM runs it: under `sh`, with the instance's commands faked.
    fn run_launch(pull_exit: i32, existing: &[&str]) -> (i32, String, String, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let (calls, state) = (dir.path().join("calls"), dir.path().join("containers"));
        std::fs::create_dir(&state).unwrap();
        for name in existing {
            std::fs::write(state.join(name), "old").unwrap();
        }
        let fakes = instance_fakes(&calls, &state, pull_exit);
        let env = BTreeMap::from([("GREETING".to_string(), "hello there; $(id)".to_string())]);
        let secrets = BTreeMap::from([("DB_URL".to_string(), "/shop/DB_URL".to_string())]);
        let script = launch(&env, &secrets).render().join("\n");
        let fakes: Vec<(&str, &str)> = fakes.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let (code, stdout, stderr) = run_with_fakes(&script, &fakes);
        let calls = std::fs::read_to_string(&calls).unwrap_or_default();
        (
            code,
            stdout,
            stderr,
            calls.lines().map(str::to_string).collect(),
        )
    }

    #[test]
    fn the_launch_script_runs_under_sh_login_pull_replace_probe() {
        let (code, stdout, stderr, calls) = run_launch(0, &["shop-green"]);
        assert_eq!(code, 0, "{stdout}\n{stderr}\n{calls:#?}");
        assert_eq!(
            stdout.trim_end(),
            "bgcloud: shop-green answers 200 on http://127.0.0.1:8082/healthz"
        );
        let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop-api@sha256:abc";
        // The two sides of the login pipe start together: either may be first.
        let mut calls = calls;
        calls[..2].sort();
        let expected = [
            "aws|ecr|get-login-password|--region|us-east-1|".to_string(),
            "docker|login|--username|AWS|--password-stdin|123456789012.dkr.ecr.us-east-1.amazonaws.com|".to_string(),
            "docker login read token on stdin".to_string(),
            format!("docker|pull|--quiet|{image}|"),
            "aws|ssm|get-parameter|--region|us-east-1|--with-decryption|--name|/shop/DB_URL|--query|Parameter.Value|--output|text|".to_string(),
            // The old container is asked to stop, then goes (it existed), its name is free,
            // the new one starts.
            "docker|stop|-t|10|shop-green|".to_string(),
            "docker|rm|-f|shop-green|".to_string(),
            "docker|inspect|shop-green|".to_string(),
            format!(
                "docker|run|-d|--restart|unless-stopped|--name|shop-green|-p|8082:3000|--label|bgcloud.app=shop|--label|bgcloud.color=green|--label|bgcloud.digest=sha256:abc|--label|bgcloud.deployment=20261127-1|-e|GREETING=hello there; $(id)|-e|DB_URL|{image}|"
            ),
            // The secret reached docker through the environment, fetched on the instance.
            "secret DB_URL=postgres://app:pw@db/prod".to_string(),
            "docker|inspect|-f|{{.State.Status}} (exit code {{.State.ExitCode}})|shop-green|".to_string(),
            "curl|-s|-o|/dev/null|-w|%{http_code}|--max-time|5|http://127.0.0.1:8082/healthz|".to_string(),
        ];
        assert_eq!(calls, expected);
    }

    #[test]
    fn a_launch_whose_pull_fails_leaves_the_running_container_alone() {
        let (code, _, _, calls) = run_launch(1, &["shop-green"]);
        assert_ne!(code, 0, "{calls:#?}");
        assert!(
            calls.last().unwrap().starts_with("docker|pull|"),
            "{calls:#?}"
        );
        assert!(
            !calls
                .iter()
                .any(|c| c.starts_with("docker|rm|") || c.starts_with("docker|run|")),
            "{calls:#?}"
        );
    }

    #[test]
    fn the_inspect_script_under_sh_prints_what_sync_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (calls, state) = (dir.path().join("calls"), dir.path().join("containers"));
        std::fs::create_dir(&state).unwrap();
        std::fs::write(state.join("shop-blue"), "running").unwrap();
        let fakes = instance_fakes(&calls, &state, 0);
        let fakes: Vec<(&str, &str)> = fakes.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let (code, stdout, stderr) = run_with_fakes(&inspect("shop").join("\n"), &fakes);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(stdout, "shop-blue running sha256:abc\nshop-green missing\n");
        let found = crate::backend::drift::parse(&stdout);
        assert_eq!(
            found.get("shop-blue"),
            Some(&crate::backend::drift::Found::Running {
                digest: "sha256:abc".into()
            })
        );
        assert_eq!(
            found.get("shop-green"),
            Some(&crate::backend::drift::Found::Missing)
        );
        // It only asked: no container was started, removed or pulled.
        let calls = std::fs::read_to_string(&calls).unwrap();
        assert!(
            calls.lines().all(|c| c.starts_with("docker|inspect|")),
            "{calls}"
        );
    }

    /// Runs the release task's script under `sh` with fake `aws` and `docker`; the task
    /// itself (`docker run --rm`) prints `lines` lines and exits `code`.
    fn run_release_task(lines: usize, code: i32) -> (i32, String, String) {
        // `aws ssm get-parameter` answers the secret's value (a URL with a password).
        let aws = "#!/bin/sh\necho 'postgres://app:s3cr3t*x@db/prod'\n";
        let docker = format!(
            "#!/bin/sh\ncase \"$1\" in\n  run) i=0; while [ $i -lt {lines} ]; do echo \"migration step $i of a long log\"; i=$((i+1)); done; echo \"args: $*\" >&2; echo \"cannot connect to $DB_URL (twice: $DB_URL)\"; exit {code} ;;\n  *) cat >/dev/null 2>&1 || true ;;\nesac\n"
        );
        let env = BTreeMap::new();
        let secrets = BTreeMap::from([("DB_URL".to_string(), "/shop/DB_URL".to_string())]);
        let argv = ["./migrate".to_string(), "it's; done".to_string()];
        let script = launch(&env, &secrets).release_task(&argv).join("\n");
        run_with_fakes(&script, &[("aws", aws), ("docker", &docker)])
    }

    #[test]
    fn the_release_task_keeps_the_end_of_its_output_and_its_exit_code() {
        let (code, stdout, stderr) = run_release_task(3, 0);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("migration step 2"), "{stdout}");
        // The task's arguments reach it as words, the hostile one intact.
        assert!(stdout.contains("it's; done"), "{stdout}");
        // It got the secret; its output does not show it.
        assert!(
            stdout.contains("cannot connect to *** (twice: ***)"),
            "{stdout}"
        );
        assert!(!stdout.contains("s3cr3t"), "{stdout}");

        let (code, stdout, stderr) = run_release_task(5_000, 3);
        assert_eq!(code, 3);
        assert!(
            stdout.len() <= RELEASE_OUTPUT,
            "{} bytes kept",
            stdout.len()
        );
        assert!(stdout.contains("migration step 4999"), "the end is kept");
        assert!(
            !stdout.contains("migration step 0 "),
            "the start is dropped"
        );
        assert!(
            stderr.trim_end().ends_with("exited 3"),
            "the reason is the last line: {stderr}"
        );
    }
}
