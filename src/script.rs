//! Renders the shell script that SSM runs on each instance to start a colour's container.
//! Every interpolated value is shell-quoted; secrets are fetched on the instance by parameter
//! name, so no secret value is ever in the command text.

use std::collections::BTreeMap;

/// Quotes `s` for a POSIX shell: the result is one word whose value is exactly `s`.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

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
    /// How long the on-instance readiness probe waits for the port to answer.
    pub ready_seconds: u32,
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
        let image = q(&self.image());
        let region = q(self.region);
        let mut lines = vec![
            "#!/bin/sh".to_string(),
            format!("# bgcloud: start {} on this instance", self.container()),
            "set -eu".to_string(),
            // The instance role logs in; no registry token is ever in this text.
            format!(
                "aws ecr get-login-password --region {region} | docker login --username AWS --password-stdin {} >/dev/null",
                q(self.registry())
            ),
            // Pull before removing anything: a failed pull leaves the old container as it was.
            format!("docker pull --quiet {image}"),
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
        lines.push(format!("docker rm -f {container} >/dev/null 2>&1 || true"));
        let mut run = format!(
            "docker run -d --restart unless-stopped --name {container} -p {}:{} \\\n  --label {} --label {} --label {} --label {}",
            self.host_port,
            self.container_port,
            q(&format!("bgcloud.app={}", self.app)),
            q(&format!("bgcloud.color={}", self.color)),
            q(&format!("bgcloud.digest={}", self.digest)),
            q(&format!("bgcloud.deployment={}", self.deployment_id)),
        );
        for (name, value) in self.env {
            run.push_str(&format!(" \\\n  -e {}", q(&format!("{name}={value}"))));
        }
        for name in self.secrets.keys() {
            run.push_str(&format!(" \\\n  -e {name}"));
        }
        run.push_str(&format!(" \\\n  {image} >/dev/null"));
        lines.push(run);
        // Readiness: the container must stay up and its host port must answer HTTP locally.
        lines.push(format!(
            "i=0; while [ $i -lt {} ]; do\n  \
               if [ \"$(docker inspect -f '{{{{.State.Running}}}}' {container} 2>/dev/null)\" != true ]; then break; fi\n  \
               if curl -s -o /dev/null --max-time 2 http://127.0.0.1:{}/; then echo \"bgcloud: {} is up on port {}\"; exit 0; fi\n  \
               i=$((i+1)); sleep 1\n\
             done",
            self.ready_seconds,
            self.host_port,
            self.container(),
            self.host_port,
        ));
        lines.push(format!(
            "echo \"bgcloud: {} did not answer on port {} within {} s; last 50 log lines:\" >&2",
            self.container(),
            self.host_port,
            self.ready_seconds
        ));
        lines.push(format!("docker logs --tail 50 {container} >&2 || true"));
        lines.push("exit 1".to_string());
        lines
    }
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

    fn launch<'a>(
        env: &'a BTreeMap<String, String>,
        secrets: &'a BTreeMap<String, String>,
    ) -> Launch<'a> {
        Launch {
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
        let pull = script.find("docker pull").unwrap();
        assert!(
            pull < script.find("docker rm -f").unwrap(),
            "pull before removing the old container"
        );
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
}
