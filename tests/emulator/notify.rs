//! `[notify]`: each release event reaches the Slack and the generic webhook in order, with its
//! colour, image, digest and weights; the URLs never show in any output; an endpoint that is down
//! or a variable that is unset is one warning and never changes the exit code.

use crate::support::{Fixture, Outcome, Receiver};
use serde_json::Value;

/// The secret part of every URL in these tests: it must never reach any output.
const TOKEN: &str = "T0KEN-s3cr3t-5f8a";

/// A fixture with v1 and v2 and a `[notify]` naming `SLACK_URL` and/or `HOOK_URL`.
async fn fixture(notify: &str) -> Fixture {
    let fx = Fixture::v1_v2().await;
    fx.write_config(&format!(
        "{}\n[notify]\n{notify}\n",
        fx.stack.config_toml("")
    ));
    fx
}

const BOTH: &str = "slack_webhook_env = \"SLACK_URL\"\nwebhook_url_env = \"HOOK_URL\"";

/// The events' names, in order.
fn names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

/// The lines of `text` that mention `needle`.
fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

fn assert_no_url(outs: &[Outcome], url: &str) {
    for out in outs {
        for text in [&out.stdout, &out.stderr] {
            assert!(
                !text.contains(TOKEN) && !text.contains(url),
                "the URL leaked:\n{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_notifies_each_event_in_order_and_never_shows_the_url() {
    let fx = fixture(BOTH).await;
    let rx = Receiver::start(200);
    let hook = format!("{}/hook/{TOKEN}", rx.base);
    let slack = format!("{}/slack/{TOKEN}", rx.base);
    let run = |args: &[&str]| {
        fx.bgcloud(args)
            .env("HOOK_URL", &hook)
            .env("SLACK_URL", &slack)
            .env("GITHUB_SERVER_URL", "https://github.example")
            .env("GITHUB_REPOSITORY", "o/shop")
            .env("GITHUB_RUN_ID", "77")
    };
    let outs = vec![
        run(&["status"]).ok(),
        run(&["deploy", "--image", "v1"]).ok(),
        run(&["deploy", "--image", "v2", "--canary", "10"]).ok(),
        run(&["promote"]).ok(),
        run(&["rollback"]).ok(),
        run(&["deploy", "--image", "nope"]).code(2),
    ];
    assert_no_url(&outs, &hook);
    assert_no_url(&outs, &slack);
    assert!(!fx.record().await.to_string().contains(TOKEN), "recorded");

    let events = rx.bodies(&format!("/hook/{TOKEN}"));
    assert_eq!(
        names(&events),
        [
            "started",
            "shifted",
            "started",
            "step",
            "promoted",
            "rolled_back",
            "failed"
        ],
        "status sends nothing: {events:#?}"
    );
    let (v1, v2) = (&fx.stack.images["v1"], &fx.stack.images["v2"]);
    let expect = |i: usize, color: &str, image: &str, digest: &str, blue: u8, green: u8| {
        let e = &events[i];
        assert_eq!(
            (&e["color"], &e["image"], &e["digest"]),
            (
                &Value::from(color),
                &Value::from(image),
                &Value::from(digest)
            ),
            "{e}"
        );
        assert_eq!(
            e["weights"],
            serde_json::json!({"blue": blue, "green": green}),
            "{e}"
        );
    };
    expect(0, "green", "v1", v1, 100, 0);
    expect(1, "green", "v1", v1, 0, 100);
    expect(2, "blue", "v2", v2, 0, 100);
    expect(3, "blue", "v2", v2, 10, 90);
    expect(4, "blue", "v2", v2, 100, 0);
    expect(5, "green", "v1", v1, 0, 100);
    assert_eq!(events[5]["reason"], "by hand");
    for e in &events {
        assert!(e["by"].as_str().unwrap().starts_with("tester@"), "{e}");
        assert!(e["at"].as_str().unwrap().ends_with('Z'), "{e}");
        assert_eq!(
            e["run_url"],
            "https://github.example/o/shop/actions/runs/77"
        );
    }
    // The refused deploy never got to a colour: unknown fields are null, the reason is its error.
    let failed = &events[6];
    assert!(
        failed["reason"].as_str().unwrap().contains("nope"),
        "{failed}"
    );
    assert!(
        failed["color"].is_null() && failed["weights"].is_null(),
        "{failed}"
    );

    let texts: Vec<String> = rx
        .bodies(&format!("/slack/{TOKEN}"))
        .iter()
        .map(|b| b["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts.len(), events.len(), "{texts:#?}");
    let app = &fx.stack.spec.name;
    assert!(
        texts[1].starts_with(&format!("bgcloud {app}: v1 ("))
            && texts[1].contains("on green: traffic shifted to blue 0 % / green 100 %")
            && texts[1].ends_with("<https://github.example/o/shop/actions/runs/77>"),
        "{}",
        texts[1]
    );
    assert!(texts[5].contains("rolled back to v1"), "{}", texts[5]);
    assert!(
        texts[6].starts_with(&format!("bgcloud {app}: deploy failed: image nope")),
        "{}",
        texts[6]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gate_breach_is_notified_as_an_automatic_rollback_then_the_failure() {
    let fx = fixture("webhook_url_env = \"HOOK_URL\"").await;
    let rx = Receiver::start(200);
    let hook = format!("{}/hook/{TOKEN}", rx.base);
    fx.set_target_health(
        &fx.stack.green_target_group_arn,
        "unhealthy",
        "Target.FailedHealthChecks",
    );
    // --force: the shift goes to the unhealthy colour, and its watch fails at the first poll.
    let out = fx
        .bgcloud(&["shift", "--to", "green", "--force", "--watch", "30s"])
        .env("HOOK_URL", &hook)
        .code(1);
    assert_no_url(&[out], &hook);
    let events = rx.bodies(&format!("/hook/{TOKEN}"));
    assert_eq!(
        names(&events),
        ["shifted", "rolled_back", "failed"],
        "{events:#?}"
    );
    let back = &events[1];
    assert_eq!(back["color"], "blue");
    assert_eq!(
        back["weights"],
        serde_json::json!({"blue": 100, "green": 0})
    );
    let reason = back["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("automatically: green's target"),
        "{reason}"
    );
    assert!(
        events[2]["reason"]
            .as_str()
            .unwrap()
            .contains("Rolled back automatically"),
        "{}",
        events[2]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_that_is_down_is_one_warning_and_the_release_succeeds() {
    let fx = fixture(BOTH).await;
    // Nothing listens: refused at once, retried once, then skipped for the rest of the run.
    let down = format!(
        "http://127.0.0.1:{}/hook/{TOKEN}",
        crate::support::closed_port()
    );
    // Answers 500: retried once, then skipped.
    let failing = Receiver::start(500);
    let slack = format!("{}/slack/{TOKEN}", failing.base);
    let out = fx
        .bgcloud(&["deploy", "--image", "v1"])
        .env("HOOK_URL", &down)
        .env("SLACK_URL", &slack)
        .ok();
    assert_no_url(std::slice::from_ref(&out), &down);
    assert_no_url(std::slice::from_ref(&out), &slack);
    let warnings = lines_with(&out.stderr, "could not notify");
    assert_eq!(warnings.len(), 2, "one per endpoint:\n{}", out.stderr);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("HOOK_URL") && w.contains("refused"))
            && warnings
                .iter()
                .any(|w| w.contains("SLACK_URL") && w.contains("HTTP 500")),
        "{warnings:#?}"
    );
    assert_eq!(
        failing.received().len(),
        2,
        "the first event and its one retry, then nothing more"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_variable_that_is_unset_is_one_warning_and_nothing_is_sent() {
    let fx = fixture("slack_webhook_env = \"SLACK_URL\"").await;
    let out = fx
        .bgcloud(&["deploy", "--image", "v1"])
        .env_remove("SLACK_URL")
        .ok();
    let warnings = lines_with(&out.stderr, "SLACK_URL");
    assert_eq!(warnings.len(), 1, "{}", out.stderr);
    assert!(warnings[0].contains("unset or empty"), "{}", warnings[0]);
    // Empty counts as unset; a read-only command says nothing at all.
    let out = fx.bgcloud(&["status"]).env("SLACK_URL", "").ok();
    assert!(!out.stderr.contains("SLACK_URL"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inconclusive_watch_is_its_own_event_and_step_summary_not_a_failure() {
    let fx = fixture("webhook_url_env = \"HOOK_URL\"").await;
    let config = std::fs::read_to_string(&fx.config).unwrap().replace(
        "\n[notify]",
        "\n[backend.gates]\nperiod = \"1s\"\nmax_5xx_rate = 0.01\n\n[notify]",
    );
    fx.write_config(&config);
    let rx = Receiver::start(200);
    let summary = tempfile::NamedTempFile::new().unwrap();
    fx.bgcloud(&["deploy", "--image", "v1", "--canary", "20", "--watch", "2s"])
        .env("HOOK_URL", &format!("{}/hook/{TOKEN}", rx.base))
        .env("GITHUB_STEP_SUMMARY", summary.path().to_str().unwrap())
        .code(4);
    let events = rx.bodies(&format!("/hook/{TOKEN}"));
    assert_eq!(names(&events), ["started", "step", "inconclusive"]);
    let last = &events[2];
    assert_eq!(last["color"], "green");
    assert_eq!(
        last["weights"],
        serde_json::json!({"blue": 80, "green": 20})
    );
    assert!(
        last["reason"].as_str().unwrap().contains("5xx_rate"),
        "{last}"
    );
    let md = std::fs::read_to_string(summary.path()).unwrap();
    assert!(
        md.contains("### bgcloud deploy: paused, watch inconclusive (exit 4)"),
        "{md}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_slowing_down_is_waited_for_and_its_error_text_is_shown() {
    let fx = fixture("slack_webhook_env = \"SLACK_URL\"").await;
    // Slack's rate limit: 429 with Retry-After, then fine.
    let rx = Receiver::scripted(vec![
        (429, "Retry-After: 1", "rate_limited"),
        (200, "", "ok"),
    ]);
    let url = format!("{}/slack/{TOKEN}", rx.base);
    let out = fx
        .bgcloud(&["deploy", "--image", "v1"])
        .env("SLACK_URL", &url)
        .ok();
    assert!(!out.stderr.contains("could not notify"), "{}", out.stderr);
    let paths: Vec<String> = rx.received().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths.len(),
        3,
        "started (429, then again after 1 s), shifted"
    );

    // Always 429: each event is dropped with a warning, but the endpoint is not given up on.
    let rx = Receiver::scripted(vec![(429, "Retry-After: 0", "rate_limited")]);
    let url = format!("{}/slack/{TOKEN}", rx.base);
    let out = fx
        .bgcloud(&["deploy", "--image", "v2"])
        .env("SLACK_URL", &url)
        .ok();
    assert_eq!(
        lines_with(&out.stderr, "asked bgcloud to slow down").len(),
        2,
        "{}",
        out.stderr
    );
    assert_eq!(rx.received().len(), 4, "both events tried twice");
    out.assert_stderr_has("HTTP 429: rate_limited");

    // A payload Slack refuses: its own words in the warning, once.
    let rx = Receiver::scripted(vec![(400, "", "invalid_payload")]);
    let url = format!("{}/slack/{TOKEN}", rx.base);
    let out = fx
        .bgcloud(&["deploy", "--image", "v1"])
        .env("SLACK_URL", &url)
        .ok();
    out.assert_stderr_has("HTTP 400: invalid_payload");
    assert_no_url(&[out], &url);
}
