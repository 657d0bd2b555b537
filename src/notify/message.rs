//! What a notification says: the event's kind ([`Kind`]) and body ([`Event`]), as the generic
//! webhook's JSON and as Slack's one-line text, and the CI run it links to ([`run_url`]). Pure
//! text, no I/O: who is told and how it is sent live beside it (`notify`, `notify::webhook`).

use serde::Serialize;

use crate::model::color::Color;
use crate::model::digest::short_digest;
use crate::model::weights::Weights;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Started,
    Step,
    Shifted,
    Promoted,
    RolledBack,
    /// A watch ended without a verdict; the rollout is paused where it is.
    Inconclusive,
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
            Kind::Inconclusive => format!(
                "{on}: watch inconclusive ({reason}); paused at traffic {w}, waiting for promote \
                 or rollback"
            ),
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
}
