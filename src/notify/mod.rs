//! Release notifications: a Slack incoming webhook and/or a generic JSON webhook hear when a
//! deploy starts, reaches a step, shifts traffic, is promoted, rolled back (by hand or by a gate)
//! or fails. The URLs come only from the environment variables `[notify]` names and are never
//! printed, logged or recorded. Sending never fails or slows a release by more than its timeout:
//! a notification that cannot be delivered is one warning.
//!
//! Here: who is told ([`Notifier`], its endpoints) and what an event is about ([`Subject`]).
//! What a notification says is in `message`, its HTTP delivery in `webhook`, and the GitHub step
//! summary in `summary`.

pub mod message;
pub mod summary;
mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::config::NotifyConfig;
use crate::model::color::Color;
use crate::model::weights::Weights;
use crate::state::record::{now, Release};

// What a notification says lives in `message`; these names stay where callers find them.
pub use message::{run_url, Event, Kind};

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
    /// Delivers the bodies (one connector for the run).
    http: webhook::Client,
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
            http: webhook::Client::default(),
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
        let Err(failed) = self.http.post(&target.url, body).await else {
            return;
        };
        let why = failed.why;
        if failed.rate_limited {
            // Slow down, not down: the next event may well go through.
            tracing::warn!(
                "could not notify the URL in {}: it asked bgcloud to slow down ({why}) and this \
                 event was dropped; the release goes on",
                target.var
            );
            return;
        }
        target.down.store(true, Ordering::Relaxed);
        tracing::warn!(
            "could not notify the URL in {} ({why}); the release goes on, and this run sends \
             nothing more there. Check {} and that the endpoint answers",
            target.var,
            target.var
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
