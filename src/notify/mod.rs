//! Release notifications: a Slack incoming webhook and/or a generic JSON webhook hear when a
//! deploy starts, reaches a step, shifts traffic, is promoted, rolled back (by hand or by a gate)
//! or fails. The URLs come only from the environment variables `[notify]` names and are never
//! printed, logged or recorded. Sending never fails or slows a release by more than its timeout:
//! a notification that cannot be delivered is one warning.

pub mod summary;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::http::Request;
use aws_smithy_types::body::SdkBody;
use serde::Serialize;

use crate::config::NotifyConfig;
use crate::model::color::Color;
use crate::model::digest::short_digest;
use crate::model::weights::Weights;
use crate::state::record::{now, Release};

/// One attempt's limit; a failed attempt is retried once after [`RETRY_AFTER`].
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Started,
    Step,
    Shifted,
    Promoted,
    RolledBack,
    Failed,
}

impl Kind {
    /// The event of a verified traffic change, from the action `shift::apply` records, and its
    /// reason: a rollback says whether a gate or a person made it.
    pub fn of_change(
        action: &str,
        color: Color,
        to: Weights,
        because: Option<&str>,
    ) -> (Kind, Option<String>) {
        let because = because.map(str::to_string);
        match action {
            // A deploy that moves only part of the traffic is a stepped rollout's first step.
            "deploy" if to.get(color) < 100 => (Kind::Step, because),
            "step" => (Kind::Step, because),
            "promote" => (Kind::Promoted, because),
            "auto-rollback" => (
                Kind::RolledBack,
                Some(format!(
                    "automatically: {}",
                    because.as_deref().unwrap_or("a gate failed")
                )),
            ),
            "rollback" => (
                Kind::RolledBack,
                Some(match because {
                    Some(why) => format!("by hand, {why}"),
                    None => "by hand".to_string(),
                }),
            ),
            _ => (Kind::Shifted, because),
        }
    }
}

/// What an event is about; None where unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subject {
    /// The colour that gained traffic (a rollback: the colour traffic went back to).
    pub color: Option<Color>,
    pub image: Option<String>,
    pub digest: Option<String>,
    pub weights: Option<Weights>,
}

impl Subject {
    /// `color` running `release` (if known) at `weights`.
    pub fn new(color: Color, release: Option<&Release>, weights: Weights) -> Subject {
        Subject {
            color: Some(color),
            image: release.map(|r| r.image.clone()),
            digest: release.map(|r| r.digest.clone()),
            weights: Some(weights),
        }
    }
}

/// The generic webhook's JSON body, field for field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub event: Kind,
    pub app: String,
    pub color: Option<Color>,
    pub image: Option<String>,
    pub digest: Option<String>,
    pub weights: Option<Weights>,
    pub by: String,
    pub at: String,
    pub run_url: Option<String>,
    pub reason: Option<String>,
    /// The command that failed, for the Slack sentence only.
    #[serde(skip)]
    pub command: Option<String>,
}

impl Event {
    /// The generic webhook's body.
    pub fn webhook_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event serializes")
    }

    /// Slack's body: `{"text": ...}`.
    pub fn slack_body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "text": self.slack_text() }))
            .expect("a string serializes")
    }

    /// One readable line, e.g. "bgcloud shop: v2 (sha256:abcd1234abcd) on green: traffic
    /// shifted to blue 0 % / green 100 % — by ci <https://…/runs/1>".
    pub fn slack_text(&self) -> String {
        let release = self
            .image
            .as_ref()
            .map(|image| match self.digest.as_deref() {
                Some(d) => format!("{image} ({})", short_digest(d)),
                None => image.clone(),
            });
        // "v2 (sha256:…) on green"; `to` instead of `on` where it reads better.
        let about = |on: &str| match (&release, self.color) {
            (Some(r), Some(c)) => Some(format!("{r} {on} {c}")),
            (None, Some(c)) => Some(c.to_string()),
            (r, None) => r.clone(),
        };
        let on = about("on").unwrap_or_else(|| "traffic".to_string());
        let w = self
            .weights
            .map_or_else(|| "unknown".to_string(), |w| w.to_string());
        let reason = self.reason.as_deref().map(one_line).unwrap_or_default();
        let what = match self.event {
            Kind::Started => format!(
                "deploy of {} started; traffic {w}",
                about("to").unwrap_or(on)
            ),
            Kind::Step => format!("{on} reached a step: traffic {w}"),
            Kind::Shifted => format!("{on}: traffic shifted to {w}"),
            Kind::Promoted => format!("{on} promoted: traffic {w}"),
            Kind::RolledBack => format!("rolled back to {on} ({reason}): traffic {w}"),
            Kind::Failed => {
                let command = self.command.as_deref().unwrap_or("a command");
                let command = match about("to") {
                    Some(a) => format!("{command} of {a}"),
                    None => command.to_string(),
                };
                let traffic = self.weights.map(|w| format!("; traffic {w}"));
                format!("{command} failed: {reason}{}", traffic.unwrap_or_default())
            }
        };
        let mut text = slack_escape(&format!("bgcloud {}: {what} — by {}", self.app, self.by));
        if let Some(url) = &self.run_url {
            text.push_str(&format!(" <{url}>"));
        }
        text
    }
}

/// An error text on one line, cut to a length a chat message can carry.
fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(400) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// Slack reads `<…>` as a link and `&` as an entity: its docs ask for these three escaped.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The GitHub Actions run, when the job's variables say which.
pub fn run_url(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let server = var("GITHUB_SERVER_URL")?;
    let repo = var("GITHUB_REPOSITORY")?;
    let run = var("GITHUB_RUN_ID")?;
    Some(format!("{server}/{repo}/actions/runs/{run}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Slack,
    Webhook,
}

/// One endpoint: the variable that named it (all that messages may show) and its URL.
struct Target {
    format: Format,
    var: String,
    url: String,
    /// Set after a failed delivery: the rest of the run skips it, so an endpoint that is down
    /// costs one timeout and one warning, not one per event.
    down: AtomicBool,
}

/// Sends the events of one run. Built once per run, with the URLs read from the environment.
pub struct Notifier {
    app: String,
    by: String,
    run_url: Option<String>,
    slack: Option<Target>,
    webhook: Option<Target>,
    /// Configured variables that are unset, empty or not a URL: said once, at the first event
    /// (read-only commands send none, so they do not warn).
    unusable: Mutex<Vec<String>>,
    /// Built at the first send: loading the root certificates is not free.
    connector: OnceLock<Connector>,
    /// What the run's first event was about, with the latest weights: what a failure refers to.
    subject: Mutex<Option<Subject>>,
}

impl Notifier {
    /// Reads the variables `config` names through `var` (the process environment in a run).
    pub fn new(
        config: &NotifyConfig,
        app: &str,
        by: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Notifier {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut unusable = Vec::new();
        let mut target = |format, name: &Option<String>| {
            let name = name.as_ref()?;
            match var(name) {
                Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                    Some(Target {
                        format,
                        var: name.clone(),
                        url: url.trim().to_string(),
                        down: AtomicBool::new(false),
                    })
                }
                Some(_) => {
                    unusable.push(format!(
                        "{name} does not hold an http(s):// URL, so no notification goes there; \
                         set it to the webhook's URL"
                    ));
                    None
                }
                None => {
                    unusable.push(format!(
                        "{name} is unset or empty, so no notification goes there; set it (in \
                         CI: from a secret) or remove it from [notify]"
                    ));
                    None
                }
            }
        };
        let slack = target(Format::Slack, &config.slack_webhook_env);
        let webhook = target(Format::Webhook, &config.webhook_url_env);
        Notifier {
            app: app.to_string(),
            by: by.to_string(),
            run_url: run_url(var),
            slack,
            webhook,
            unusable: Mutex::new(unusable),
            connector: OnceLock::new(),
            subject: Mutex::new(None),
        }
    }

    /// A notifier that sends nothing (no `[notify]`).
    pub fn none(app: &str, by: &str) -> Notifier {
        Notifier::new(&NotifyConfig::default(), app, by, |_| None)
    }

    /// Sends `kind` about `subject` to every configured endpoint.
    pub async fn send(&self, kind: Kind, subject: Subject, reason: Option<String>) {
        {
            let mut first = self.subject.lock().expect("subject");
            match first.as_mut() {
                Some(s) => s.weights = subject.weights.or(s.weights),
                None => *first = Some(subject.clone()),
            }
        }
        self.deliver(self.event(kind, subject, reason, None)).await;
    }

    /// A changing command failed: `reason` is its error, about what the run's first event was
    /// about (a deploy's colour and image), at the latest weights it sent.
    pub async fn failed(&self, command: &str, reason: &str) {
        let subject = self.subject.lock().expect("subject").clone();
        let event = self.event(
            Kind::Failed,
            subject.unwrap_or_default(),
            Some(reason.trim_end().to_string()),
            Some(command.to_string()),
        );
        self.deliver(event).await;
    }

    /// A verified traffic change by `action` (see [`Kind::of_change`]) to `to`; `color` gained
    /// traffic and runs `runs`.
    pub async fn traffic(
        &self,
        action: &str,
        color: Color,
        runs: Option<&Release>,
        to: Weights,
        because: Option<&str>,
    ) {
        let (kind, reason) = Kind::of_change(action, color, to, because);
        self.send(kind, Subject::new(color, runs, to), reason).await;
    }

    fn event(
        &self,
        kind: Kind,
        subject: Subject,
        reason: Option<String>,
        command: Option<String>,
    ) -> Event {
        Event {
            event: kind,
            app: self.app.clone(),
            color: subject.color,
            image: subject.image,
            digest: subject.digest,
            weights: subject.weights,
            by: self.by.clone(),
            at: now(),
            run_url: self.run_url.clone(),
            reason,
            command,
        }
    }

    async fn deliver(&self, event: Event) {
        for warning in self.unusable.lock().expect("unusable").drain(..) {
            tracing::warn!("[notify]: {warning}");
        }
        // Both at once: two endpoints that are down cost one timeout, not two.
        tokio::join!(
            self.post(self.slack.as_ref(), &event),
            self.post(self.webhook.as_ref(), &event)
        );
    }

    /// Posts `event` to `target`, retrying once; a failure is one warning naming the variable.
    async fn post(&self, target: Option<&Target>, event: &Event) {
        let Some(target) = target.filter(|t| !t.down.load(Ordering::Relaxed)) else {
            return;
        };
        let body = match target.format {
            Format::Slack => event.slack_body(),
            Format::Webhook => event.webhook_body(),
        };
        let mut why = String::new();
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(RETRY_AFTER).await;
            }
            match self.attempt(&target.url, body.clone()).await {
                Ok(()) => return,
                Err(failure) => {
                    why = failure.why;
                    if !failure.retry {
                        break;
                    }
                }
            }
        }
        target.down.store(true, Ordering::Relaxed);
        tracing::warn!(
            "could not notify the URL in {} ({why}); the release goes on, and this run sends \
             nothing more there. Check {} and that the endpoint answers",
            target.var,
            target.var
        );
    }

    async fn attempt(&self, url: &str, body: Vec<u8>) -> Result<(), Failure> {
        let mut request = Request::new(SdkBody::from(body));
        let permanent = |why: &str| Failure {
            retry: false,
            why: why.to_string(),
        };
        // Neither error is shown: either could quote the URL.
        request
            .set_uri(url)
            .map_err(|_| permanent("it is not a valid URL"))?;
        request
            .set_method("POST")
            .map_err(|_| permanent("POST refused"))?;
        request
            .headers_mut()
            .insert("content-type", "application/json");
        // The SDK's own connector: the same hyper, rustls (aws-lc) and root certificates.
        let connector = self.connector.get_or_init(|| {
            Connector::builder()
                .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
                .build()
        });
        match tokio::time::timeout(ATTEMPT_TIMEOUT, connector.call(request)).await {
            Err(_) => Err(Failure {
                retry: true,
                why: format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
            }),
            Ok(Err(e)) => Err(Failure {
                retry: true,
                why: redact(&root_cause(&e), url),
            }),
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                Err(Failure {
                    // A 4xx other than 429 is the URL or the payload: trying again won't help.
                    retry: status == 429 || status >= 500,
                    why: format!("HTTP {status}"),
                })
            }
        }
    }
}

struct Failure {
    retry: bool,
    why: String,
}

/// The innermost error's text ("Connection refused (os error 111)", a certificate problem):
/// what to act on, without the client's layers around it.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// `text` with the URL, and its path (where a webhook keeps its secret), cut out: HTTP client
/// errors may quote them.
fn redact(text: &str, url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let mut text = text.replace(url, "<the URL>").replace(rest, "<the URL>");
    if path.len() > 1 {
        text = text.replace(path, "<the path>");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: Kind) -> Event {
        Event {
            event: kind,
            app: "shop".into(),
            color: Some(Color::Green),
            image: Some("shop-api:v2".into()),
            digest: Some(format!("sha256:{}", "ab".repeat(32))),
            weights: Some(Weights::all(Color::Green)),
            by: "tester@host".into(),
            at: "2026-01-02T03:04:05Z".into(),
            run_url: Some("https://github.com/o/r/actions/runs/7".into()),
            reason: None,
            command: None,
        }
    }

    #[test]
    fn the_webhook_body_has_every_field_null_where_unknown() {
        let mut e = event(Kind::RolledBack);
        e.image = None;
        e.digest = None;
        e.run_url = None;
        e.reason = Some("automatically: 5xx".into());
        let v: serde_json::Value = serde_json::from_slice(&e.webhook_body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "event": "rolled_back", "app": "shop", "color": "green", "image": null,
                "digest": null, "weights": {"blue": 0, "green": 100}, "by": "tester@host",
                "at": "2026-01-02T03:04:05Z", "run_url": null, "reason": "automatically: 5xx",
            })
        );
    }

    #[test]
    fn the_slack_text_is_one_readable_line() {
        let text = event(Kind::Shifted).slack_text();
        assert_eq!(
            text,
            "bgcloud shop: shop-api:v2 (sha256:abababababab) on green: traffic shifted to \
             blue 0 % / green 100 % — by tester@host <https://github.com/o/r/actions/runs/7>"
        );
        let mut failed = event(Kind::Failed);
        failed.command = Some("deploy".into());
        failed.reason = Some("the <health gate>\n  timed out & gave up".into());
        let text = failed.slack_text();
        assert!(
            text.starts_with(
                "bgcloud shop: deploy of shop-api:v2 (sha256:abababababab) to green \
                              failed: the &lt;health gate&gt; timed out &amp; gave up; traffic"
            ) && !text.contains('\n'),
            "{text}"
        );
        let unknown = Event {
            color: None,
            image: None,
            digest: None,
            weights: None,
            ..failed.clone()
        };
        assert!(
            unknown
                .slack_text()
                .starts_with("bgcloud shop: deploy failed: the &lt;health gate&gt; timed out"),
            "{}",
            unknown.slack_text()
        );
        let body: serde_json::Value = serde_json::from_slice(&failed.slack_body()).unwrap();
        assert_eq!(body["text"], text);
    }

    #[test]
    fn each_traffic_action_is_its_event_and_a_rollback_says_who_made_it() {
        let green = Color::Green;
        let of = |action, to, because| Kind::of_change(action, green, to, because);
        let all = Weights::all(green);
        let part = Weights::split(green, 10);
        assert_eq!(of("deploy", all, None), (Kind::Shifted, None));
        assert_eq!(of("deploy", part, None), (Kind::Step, None));
        assert_eq!(of("step", part, None).0, Kind::Step);
        assert_eq!(of("shift", part, None).0, Kind::Shifted);
        assert_eq!(of("promote", all, None).0, Kind::Promoted);
        assert_eq!(
            of("auto-rollback", all, Some("green's 5xx rate 0.2")),
            (
                Kind::RolledBack,
                Some("automatically: green's 5xx rate 0.2".into())
            )
        );
        assert_eq!(
            of("rollback", all, None),
            (Kind::RolledBack, Some("by hand".into()))
        );
        assert_eq!(
            of("rollback", all, Some("requested by ci")).1.as_deref(),
            Some("by hand, requested by ci")
        );
    }

    #[test]
    fn run_url_needs_all_three_variables() {
        const ALL: [(&str, &str); 3] = [
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_RUN_ID", "42"),
        ];
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            run_url(env(&ALL)).as_deref(),
            Some("https://github.com/o/r/actions/runs/42")
        );
        assert_eq!(run_url(env(&ALL[..2])), None);
    }

    #[test]
    fn an_unset_or_non_url_variable_is_no_target_and_one_warning() {
        let config = NotifyConfig {
            slack_webhook_env: Some("SLACK".into()),
            webhook_url_env: Some("HOOK".into()),
        };
        let n = Notifier::new(&config, "shop", "me", |name| {
            (name == "HOOK").then(|| "hooks.example.com/x".to_string())
        });
        assert!(n.slack.is_none() && n.webhook.is_none());
        let warnings = n.unusable.lock().unwrap().clone();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("SLACK is unset or empty"));
        assert!(
            warnings[1].starts_with("HOOK does not hold") && !warnings[1].contains("example"),
            "never the value: {warnings:?}"
        );
    }

    #[tokio::test]
    async fn an_https_url_is_spoken_to_in_tls() {
        // A plain-HTTP server: the client's TLS handshake gets an answer that is not TLS.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut stream in listener.incoming().flatten() {
                let _ = stream.read(&mut [0; 512]);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let url = format!("https://127.0.0.1:{port}/hook/s3cr3t");
        let n = Notifier::none("shop", "me");
        let failure = n.attempt(&url, b"{}".to_vec()).await.unwrap_err();
        assert!(
            failure.retry && !failure.why.contains("s3cr3t"),
            "{}",
            failure.why
        );
        let http = format!("http://127.0.0.1:{port}/hook/s3cr3t");
        assert!(n.attempt(&http, b"{}".to_vec()).await.is_ok());
    }

    #[test]
    fn redact_cuts_the_url_and_its_path_out_of_an_error() {
        let url = "http://127.0.0.1:9/hook/s3cr3t";
        let text = "error sending to http://127.0.0.1:9/hook/s3cr3t: 127.0.0.1:9/hook/s3cr3t \
                    or /hook/s3cr3t refused";
        let out = redact(text, url);
        assert!(!out.contains("s3cr3t"), "{out}");
        assert_eq!(redact("connection refused", url), "connection refused");
    }
}
