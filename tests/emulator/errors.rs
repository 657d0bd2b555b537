//! What a person reads when AWS says no: one or two lines naming the resource, the AWS error
//! and the next step; the SDK's whole chain only with -v.

use crate::support::Fixture;

/// The lines of stderr from the `error:` line on.
fn error_lines(stderr: &str) -> Vec<&str> {
    let lines: Vec<&str> = stderr.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    lines[start..].to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_bucket_is_named_in_two_lines() {
    let fx = Fixture::new().await;
    let missing = format!("{}-gone", fx.stack.spec.name);
    fx.write_config(&fx.stack.config_toml("").replace(
        &format!("bucket = \"{}\"", fx.stack.state_bucket),
        &format!("bucket = \"{missing}\""),
    ));
    // Nothing was changed and the config names a bucket that is not there: exit 2.
    let out = fx.bgcloud(&["status"]).code(2);
    let lines = error_lines(&out.stderr);
    assert!(lines.len() <= 2, "{}", out.stderr);
    let text = lines.join("\n");
    assert!(
        text.contains(&missing)
            && text.contains("does not exist")
            && text.contains("[state].bucket"),
        "{text}"
    );
    for noise in ["SdkBody", "ServiceError", "Unhandled", "raw:"] {
        assert!(!text.contains(noise), "{noise} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn access_denied_names_the_action() {
    let fx = Fixture::new().await;
    crate::support::control(
        "faults",
        serde_json::json!({"access_key": fx.access_key, "action": "DescribeListeners",
                           "status": 403, "code": "AccessDenied", "times": 10}),
    );
    let out = fx.bgcloud(&["status"]).code(1);
    let text = error_lines(&out.stderr).join("\n");
    assert!(
        text.contains("elasticloadbalancing:DescribeListeners") && text.contains("IAM"),
        "{text}"
    );
    assert!(error_lines(&out.stderr).len() <= 2, "{text}");
    // The SDK's whole chain only with -v.
    assert!(!text.contains("caused by:"), "{text}");
    let verbose = fx.bgcloud(&["-v", "status"]).code(1);
    assert!(verbose.stderr.contains("caused by:"), "{}", verbose.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_credentials_says_how_to_provide_them() {
    let fx = Fixture::new().await;
    let out = fx
        .bgcloud(&["status"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let text = error_lines(&out.stderr).join("\n");
    assert!(
        text.contains("no AWS credentials were found") && text.contains("AWS_PROFILE"),
        "{text}"
    );
    assert!(error_lines(&out.stderr).len() <= 2, "{text}");
}

/// The first run's failures, each from a real server answering that way: the first line names
/// what failed and why in plain words, and nothing of the SDK's insides (`{`, `Some(`,
/// `source:`) reaches stderr without -v.
#[tokio::test(flavor = "multi_thread")]
async fn each_first_run_failure_reads_as_one_plain_first_line() {
    let fx = Fixture::v1_v2().await;
    let listener = format!("error: reading listener {}: ", fx.stack.listener_arn);
    let fault = |action: &str, status: u16, code: &str| {
        crate::support::control(
            "faults",
            serde_json::json!({"access_key": fx.access_key, "action": action,
                               "status": status, "code": code, "times": 10}),
        );
    };
    let clear = || {
        crate::support::control(
            "faults",
            serde_json::json!({"access_key": fx.access_key, "clear": true}),
        )
    };
    let closed = crate::support::receiver::closed_port();

    let mut seen = Vec::new();
    let mut check =
        |case: &str, out: crate::support::run::Outcome, first: &dyn Fn(&str) -> bool| {
            let line = error_lines(&out.stderr)[0].to_string();
            assert!(first(&line), "{case}: {line}");
            for noise in ["{", "Some(", "source:", "SdkBody"] {
                assert!(
                    !out.stderr.contains(noise),
                    "{case}: {noise} in {}",
                    out.stderr
                );
            }
            seen.push(format!("{case}: {line}"));
        };

    let none = fx
        .bgcloud(&["status"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .run();
    check("no credentials", none, &|l| {
        l == format!("{listener}no AWS credentials.")
    });

    // The same, with the instance-metadata provider tried too, and refused (403, as where
    // IMDS is off or hop-limited): the SDK's warning for it is not shown without -v.
    let imds_endpoint = crate::support::receiver::Receiver::start(403);
    let imds = fx
        .bgcloud(&["status"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds_endpoint.base)
        .run();
    check("no credentials, metadata tried", imds, &|l| {
        l == format!("{listener}no AWS credentials.")
    });

    let refused = fx
        .bgcloud(&["status"])
        .env("AWS_ENDPOINT_URL", &format!("http://127.0.0.1:{closed}"))
        .env_remove("AWS_ENDPOINT_URL_S3")
        .run();
    check("unreachable endpoint", refused, &|l| {
        l.starts_with("error: ")
            && l.ends_with(": could not reach the endpoint (Connection refused (os error 111)).")
    });

    let dns = fx
        .bgcloud(&["status"])
        .env("AWS_ENDPOINT_URL", "http://bgcloud-test.invalid:4566")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .run();
    check("DNS failure", dns, &|l| {
        l.starts_with("error: ")
            && l.ends_with(
                ": could not reach the endpoint (failed to lookup address information: Name or \
                 service not known).",
            )
    });

    // An endpoint that speaks plain HTTP, asked over TLS.
    let plain_http = crate::support::receiver::Receiver::start(200);
    let tls = fx
        .bgcloud(&["status"])
        .env(
            "AWS_ENDPOINT_URL",
            &plain_http.base.replace("http://", "https://"),
        )
        .env_remove("AWS_ENDPOINT_URL_S3")
        .run();
    assert!(
        tls.stderr.contains("did not complete a TLS handshake"),
        "{}",
        tls.stderr
    );
    check("TLS failure", tls, &|l| {
        l.starts_with("error: ")
            && l.ends_with(
                ": the TLS handshake failed (received corrupt message of type \
                 InvalidContentType).",
            )
    });

    // A region the listener is not in: said before any request.
    let mark = fx.mark();
    let region = fx.bgcloud(&["status", "--region", "eu-west-1"]).code(2);
    check("wrong region", region, &|l| {
        l == format!(
            "error: the listener {} is in us-east-1, but bgcloud would call eu-west-1 (from \
             --region): set region = \"us-east-1\" in {}, or pass --region us-east-1",
            fx.stack.listener_arn,
            fx.config.display()
        )
    });
    assert_eq!(fx.requests().len(), mark, "no request in the wrong region");

    // Throttled on every attempt: the retries are spent, and the hint says what to do.
    fault("DescribeListeners", 400, "Throttling");
    let throttled = fx.bgcloud(&["status", "--max-attempts", "2"]).code(1);
    assert!(
        throttled
            .stderr
            .contains("AWS throttled the call even after retries: wait a minute"),
        "{}",
        throttled.stderr
    );
    check("throttled", throttled, &|l| {
        l == format!("{listener}Throttling: injected fault (Throttling).")
    });
    clear();

    fault("DescribeListeners", 403, "ExpiredToken");
    let expired = fx.bgcloud(&["status"]).code(1);
    check("expired token", expired, &|l| {
        l == format!("{listener}ExpiredToken: injected fault (ExpiredToken).")
    });
    clear();

    fault("DescribeListeners", 403, "AccessDenied");
    let denied = fx.bgcloud(&["status"]).code(1);
    check("access denied", denied, &|l| {
        l == format!("{listener}AccessDenied: injected fault (AccessDenied).")
    });
    clear();

    // A JSON-protocol service's 400 (SSM), met by a deploy.
    fault("DescribeInstanceInformation", 400, "ValidationException");
    let json = fx.bgcloud(&["deploy", "--image", "v1"]).code(1);
    check("a 400 with a JSON body", json, &|l| {
        l.starts_with("error: ")
            && l.ends_with(": ValidationException: injected fault (ValidationException)")
    });
    clear();
    println!("{}", seen.join("\n"));
}

/// With `--output json`, a failure is exactly one JSON object on stdout (and its text on
/// stderr still): AWS saying no, a refused config, a held lock, a refused flag.
#[tokio::test(flavor = "multi_thread")]
async fn with_output_json_a_failure_is_one_json_object_on_stdout() {
    let fx = Fixture::v1_v2().await;
    let error_of = |out: &crate::support::run::Outcome| -> serde_json::Value {
        let doc: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", out.stdout));
        assert!(out.stderr.contains("error: "), "{}", out.stderr);
        doc["error"].clone()
    };

    crate::support::control(
        "faults",
        serde_json::json!({"access_key": fx.access_key, "action": "DescribeListeners",
                           "status": 403, "code": "AccessDenied", "times": 10}),
    );
    let denied = error_of(&fx.bgcloud(&["--output", "json", "status"]).code(1));
    crate::support::control(
        "faults",
        serde_json::json!({"access_key": fx.access_key, "clear": true}),
    );
    assert_eq!(denied["kind"], "failed", "{denied}");
    assert_eq!(denied["exit_code"], 1);
    assert_eq!(
        denied["resource"],
        fx.stack.listener_arn.as_str(),
        "{denied}"
    );
    assert!(
        denied["message"]
            .as_str()
            .unwrap()
            .starts_with("reading listener arn:"),
        "{denied}"
    );
    assert!(
        denied["hint"]
            .as_str()
            .unwrap()
            .contains("elasticloadbalancing:DescribeListeners"),
        "{denied}"
    );

    // The lock held by a deploy waiting in its health gate.
    fx.set_target_states(
        &fx.stack.green_target_group_arn,
        serde_json::json!([{"state": "initial"}]),
    );
    // The `status` runs above read target health too: wait for the holder's own read.
    let mark = fx.mark();
    let holder = fx.bgcloud(&["deploy", "--image", "v1"]).spawn();
    fx.wait_until("the holder's health wait", |log| {
        log[mark..].iter().any(|(_, a)| a == "DescribeTargetHealth")
    });
    let locked = error_of(
        &fx.bgcloud(&["-o", "json", "deploy", "--image", "v2"])
            .code(3),
    );
    fx.set_target_states(&fx.stack.green_target_group_arn, serde_json::json!([]));
    assert_eq!(crate::support::run::finish(holder).0, 0);
    assert_eq!(
        (locked["kind"].as_str(), locked["exit_code"].as_u64()),
        (Some("locked"), Some(3)),
        "{locked}"
    );
    assert!(
        locked["resource"]
            .as_str()
            .unwrap_or_default()
            .starts_with("s3://"),
        "the lock's location: {locked}"
    );

    let text = std::fs::read_to_string(&fx.config).unwrap();
    fx.write_config(&text.replace("poll_interval = \"100ms\"", "pol_interval = \"100ms\""));
    let refused = error_of(&fx.bgcloud(&["--output=json", "status"]).code(2));
    assert_eq!(refused["kind"], "refused", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("bgcloud.toml")
            && refused["hint"].as_str().unwrap().contains("pol_interval")
            && refused["hint"]
                .as_str()
                .unwrap()
                .ends_with("did you mean `poll_interval`?"),
        "{refused}"
    );
    fx.write_config(&text);

    let usage = error_of(
        &fx.bgcloud(&["-o", "json", "shift", "--to", "purple"])
            .code(2),
    );
    assert_eq!(
        (usage["kind"].as_str(), usage["exit_code"].as_u64()),
        (Some("usage"), Some(2)),
        "{usage}"
    );
    assert!(
        usage["message"].as_str().unwrap().contains("purple"),
        "{usage}"
    );

    // Text output prints nothing on stdout for a failure.
    let plain = fx.bgcloud(&["shift", "--to", "purple"]).code(2);
    assert_eq!(plain.stdout, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_record_names_the_os_user_when_user_is_unset() {
    let fx = Fixture::new().await;
    fx.bgcloud(&["deploy", "--image", "v1"])
        .env_remove("USER")
        .env_remove("USERNAME")
        .ok();
    let me = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = String::from_utf8(me.stdout).unwrap().trim().to_string();
    let by = fx.record().await["history"][0]["by"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(by.starts_with(&format!("{me}@")), "{by}");
}
