//! Frontend releases against the emulator: S3 objects checked with HeadObject, CloudFront's
//! origin path read back with the SDK, writes counted in the emulator's request log.

use crate::support::stack::fnv32 as fnv;
use crate::support::Fixture;

/// Where a file of release `id` is stored with the shared asset layout (the default fixture):
/// hashed assets once at the bucket root, the rest under the release.
fn stored_key(id: &str, path: &str) -> String {
    if path.starts_with("assets/") {
        path.to_string()
    } else {
        format!("releases/{id}/{path}")
    }
}

/// The distribution's first origin path, read back with the SDK.
pub(crate) async fn origin_path(fx: &Fixture) -> String {
    let out = fx
        .aws
        .cloudfront
        .get_distribution_config()
        .id(&fx.stack.distribution_id)
        .send()
        .await
        .unwrap();
    let config = out.distribution_config().unwrap();
    config.origins().unwrap().items()[0]
        .origin_path()
        .unwrap_or_default()
        .to_string()
}

/// S3 writes bgcloud sent to the site bucket since `from` (index into the request log):
/// (uploads with a body, server-side copies).
fn site_writes(fx: &Fixture, from: usize) -> (Vec<String>, Vec<String>) {
    let prefix = format!("/{}/", fx.stack.site_bucket);
    let log = &fx.requests()[from..];
    let pick = |method: &str| {
        log.iter()
            .filter_map(|(_, a)| a.strip_prefix(method))
            .filter(|p| p.starts_with(&prefix))
            .map(|p| p[prefix.len()..].to_string())
            .collect::<Vec<_>>()
    };
    (pick("PUT "), pick("COPY "))
}

/// Checks what the release of r2 (see `Fixture::release_v1_then_v2`) wrote with the shared
/// asset layout: the new bundle to the shared store once, the 6 unchanged hashed assets not at
/// all, the 6 unchanged unhashed files copied into the new release.
fn assert_only_the_change_was_written(fx: &Fixture, out: &serde_json::Value, from: usize) {
    let (mut puts, copies) = site_writes(fx, from);
    puts.sort();
    let app = format!("assets/index-{:08x}.js", fnv("console.log('app 2');"));
    assert_eq!(puts, [app, "releases/r2/index.html".to_string()]);
    assert_eq!(copies.len(), 6, "{copies:?}");
    assert_eq!(
        (
            out["uploaded"].as_u64(),
            out["copied"].as_u64(),
            out["reused"].as_u64()
        ),
        (Some(2), Some(6), Some(6))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn first_release_sets_types_cache_headers_and_switches_the_origin() {
    let fx = Fixture::new().await;
    let dir = fx.site("1");
    let out = fx
        .bgcloud(&["frontend", "deploy", &dir, "--release-id", "r1"])
        .json();
    assert_eq!(out["release_id"], "r1");
    assert_eq!(out["files"], 14);
    assert_eq!(out["uploaded"], 14);
    // What CloudFront says when bgcloud returns: InProgress until the change has reached every
    // edge (cf_propagation), which can be after the invalidation completed.
    assert!(
        ["InProgress", "Deployed"].contains(&out["distribution_status"].as_str().unwrap()),
        "{out}"
    );
    assert_eq!(origin_path(&fx).await, "/releases/r1");

    let immutable = "public, max-age=31536000, immutable";
    for (key, content_type, cache) in [
        ("index.html", "text/html; charset=utf-8", "no-cache"),
        ("about/index.html", "text/html; charset=utf-8", "no-cache"),
        (
            "assets/vendor-3f9a1c2e.js",
            "text/javascript; charset=utf-8",
            immutable,
        ),
        (
            "assets/index-8b2d4e6f.css",
            "text/css; charset=utf-8",
            immutable,
        ),
        ("assets/logo-1a2b3c4d.svg", "image/svg+xml", immutable),
        ("assets/inter-5e6f7a8b.woff2", "font/woff2", immutable),
        ("assets/module-9c8d7e6f.wasm", "application/wasm", immutable),
        ("favicon.ico", "image/x-icon", "no-cache"),
        ("robots.txt", "text/plain; charset=utf-8", "no-cache"),
        (
            "manifest.webmanifest",
            "application/manifest+json",
            "no-cache",
        ),
        ("data.json", "application/json", "no-cache"),
        ("hero.webp", "image/webp", "no-cache"),
    ] {
        let head = fx
            .aws
            .s3
            .head_object()
            .bucket(&fx.stack.site_bucket)
            .key(stored_key("r1", key))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        assert_eq!(head.content_type(), Some(content_type), "{key}");
        assert_eq!(head.cache_control(), Some(cache), "{key}");
    }

    // HTML went up after every other file.
    let (puts, _) = site_writes(&fx, 0);
    let first_html = puts.iter().position(|k| k.ends_with(".html")).unwrap();
    assert!(
        puts[first_html..].iter().all(|k| k.ends_with(".html")),
        "{puts:?}"
    );

    // Only the unhashed paths were invalidated.
    let paths: Vec<&str> = out["invalidation_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"/") && paths.contains(&"/index.html") && paths.contains(&"/about/"),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.starts_with("/assets/")),
        "{paths:?}"
    );

    let releases = fx.bgcloud(&["frontend", "releases"]).json();
    assert_eq!(releases["current"], "r1");
    assert_eq!(releases["releases"][0]["current"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_with_no_change_writes_nothing() {
    let fx = Fixture::new().await;
    let dir = fx.site("1");
    fx.bgcloud(&["frontend", "deploy", &dir]).ok();
    let before = fx.requests().len();
    let out = fx.bgcloud(&["frontend", "deploy", &dir]).ok();
    assert!(out.stdout.contains("nothing to do"), "{}", out.stdout);
    let (puts, copies) = site_writes(&fx, before);
    assert!(
        puts.is_empty() && copies.is_empty(),
        "puts {puts:?} copies {copies:?}"
    );
    let cloudfront_writes: Vec<_> = fx.requests()[before..]
        .iter()
        .filter(|(s, a)| s == "cloudfront" && !crate::support::is_read(a))
        .cloned()
        .collect();
    assert!(cloudfront_writes.is_empty(), "{cloudfront_writes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_bundle_uploads_exactly_the_changed_files() {
    let fx = Fixture::new().await;
    let (out, before) = fx.release_v1_then_v2();
    assert_only_the_change_was_written(&fx, &out, before);
    assert_eq!(out["previous"], "r1");
    assert_eq!(origin_path(&fx).await, "/releases/r2");
    // Copies keep their headers.
    let head = fx
        .aws
        .s3
        .head_object()
        .bucket(&fx.stack.site_bucket)
        .key("releases/r2/robots.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.cache_control(), Some("no-cache"));
    assert_eq!(head.content_type(), Some("text/plain; charset=utf-8"));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_one_origin_every_release_is_a_full_tree_and_unchanged_files_are_copied() {
    let fx = Fixture::with(|s| s.shared_assets = false).await;
    fx.bgcloud(&["frontend", "deploy", &fx.site("1"), "--release-id", "r1"])
        .ok();
    let before = fx.requests().len();
    let out = fx
        .bgcloud(&["frontend", "deploy", &fx.site("2"), "--release-id", "r2"])
        .json();
    let (mut puts, copies) = site_writes(&fx, before);
    puts.sort();
    let app = format!(
        "releases/r2/assets/index-{:08x}.js",
        fnv("console.log('app 2');")
    );
    assert_eq!(puts, [app, "releases/r2/index.html".to_string()]);
    assert_eq!(copies.len(), 12, "{copies:?}");
    assert_eq!(out["shared_assets"], false);
    let head = fx
        .aws
        .s3
        .head_object()
        .bucket(&fx.stack.site_bucket)
        .key("releases/r2/assets/vendor-3f9a1c2e.js")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.cache_control(),
        Some("public, max-age=31536000, immutable")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_restores_the_previous_origin_path() {
    let fx = Fixture::new().await;
    fx.bgcloud(&["frontend", "deploy", &fx.site("1"), "--release-id", "r1"])
        .ok();
    fx.bgcloud(&["frontend", "deploy", &fx.site("2"), "--release-id", "r2"])
        .ok();
    let out = fx.bgcloud(&["frontend", "rollback"]).json();
    assert_eq!(out["release_id"], "r1");
    assert_eq!(origin_path(&fx).await, "/releases/r1");
    fx.bgcloud(&["frontend", "rollback", "--to", "r2"]).ok();
    assert_eq!(origin_path(&fx).await, "/releases/r2");
    // Each rollback invalidated what the switch made stale, as read from CloudFront.
    let sent = invalidations(&fx).await;
    assert_eq!(sent.len(), 4, "two releases, two rollbacks: {sent:?}");
    for (_, paths) in &sent {
        assert!(
            paths.iter().any(|p| p == "/index.html" || p == "/*"),
            "{paths:?}"
        );
    }
    let history = fx.bgcloud(&["history"]).json();
    let kinds: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "frontend-rollback",
            "frontend-rollback",
            "frontend-deploy",
            "frontend-deploy"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_etag_is_retried() {
    let fx = Fixture::new().await;
    // Another writer updates the distribution right after bgcloud reads its config, once.
    let body = serde_json::json!({"distribution_id": fx.stack.distribution_id, "after_reads": 2});
    crate::support::control("cloudfront-etag", body);
    let out = fx
        .bgcloud(&["frontend", "deploy", &fx.site("1"), "--release-id", "r1"])
        .ok();
    assert!(
        out.stderr.contains("changed while switching it"),
        "{}",
        out.stderr
    );
    assert_eq!(origin_path(&fx).await, "/releases/r1");
    let updates = fx
        .requests()
        .iter()
        .filter(|(s, a)| s == "cloudfront" && a.starts_with("PUT "))
        .count();
    assert_eq!(updates, 2, "one 412, one success");
}

/// A frontend rollback's critical path, with 50 ms a request: the distribution (with its ETag),
/// the record and the site bucket's region are read while the lock is taken, then the release
/// is checked, then the switch: three round trips before the UpdateDistribution. When another
/// writer changed the distribution after that read, it reads both again and decides again.
#[tokio::test(flavor = "multi_thread")]
async fn a_frontend_rollback_switches_after_three_round_trips_and_decides_again_on_a_change() {
    let fx = Fixture::new().await;
    fx.release("1", "r1");
    fx.release("2", "r2");
    const LATENCY: f64 = 0.05;
    let latency = |seconds: f64| {
        crate::support::control(
            "latency",
            serde_json::json!({"access_key": fx.access_key, "seconds": seconds}),
        )
    };
    let update = format!(
        "PUT /2020-05-31/distribution/{}/config",
        fx.stack.distribution_id
    );
    latency(LATENCY);
    let mark = fx.mark();
    fx.bgcloud(&["frontend", "rollback", "--no-wait"]).ok();
    latency(0.0);
    assert_eq!(origin_path(&fx).await, "/releases/r1");
    let log: Vec<serde_json::Value> = crate::support::request_log(&fx.access_key)
        .into_iter()
        .skip(mark)
        .collect();
    let trips = crate::support::round_trips_before(&log, &update, LATENCY);
    println!("frontend rollback: round trips before the UpdateDistribution: {trips:?}");
    assert!(trips.len() <= 3, "{trips:?}");

    // Another writer changes the distribution right after the rollback's first read of it.
    let body = serde_json::json!({"distribution_id": fx.stack.distribution_id, "after_reads": 1});
    crate::support::control("cloudfront-etag", body);
    let mark = fx.mark();
    let out = fx.bgcloud(&["frontend", "rollback", "--no-wait"]).ok();
    out.assert_stderr_has("changed since it was read; reading it and the record again");
    assert_eq!(origin_path(&fx).await, "/releases/r2");
    let updates = fx.requests()[mark..]
        .iter()
        .filter(|(_, a)| *a == update)
        .count();
    assert_eq!(updates, 2, "one 412, then one from the new read");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_folders_and_unknown_releases_are_refused() {
    let fx = Fixture::new().await;
    let missing = fx.dir.path().join("nope");
    let out = fx
        .bgcloud(&["frontend", "deploy", missing.to_str().unwrap()])
        .code(2);
    out.assert_stderr_has("is not a folder");

    let empty = fx.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = fx
        .bgcloud(&["frontend", "deploy", empty.to_str().unwrap()])
        .code(2);
    out.assert_stderr_has("is empty");

    let no_index = fx.dir.path().join("src");
    std::fs::create_dir_all(no_index.join("assets")).unwrap();
    std::fs::write(no_index.join("assets/app.js"), "x").unwrap();
    let out = fx
        .bgcloud(&["frontend", "deploy", no_index.to_str().unwrap()])
        .code(2);
    out.assert_stderr_has("no index.html");
    assert_eq!(fx.requests(), vec![], "refused before any request");

    fx.bgcloud(&["frontend", "deploy", &fx.site("1"), "--release-id", "r1"])
        .ok();
    let out = fx.bgcloud(&["frontend", "rollback", "--to", "r0"]).code(2);
    assert!(
        out.stderr.contains("release r0 does not exist"),
        "{}",
        out.stderr
    );
    assert_eq!(origin_path(&fx).await, "/releases/r1");
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_keeps_the_newest_and_always_current_and_previous() {
    let fx = Fixture::new().await;
    for (v, id) in [("1", "r1"), ("2", "r2"), ("3", "r3"), ("4", "r4")] {
        fx.release(v, id);
    }
    fx.bgcloud(&["frontend", "rollback", "--to", "r1"]).ok(); // live r1, previous r4
    let out = fx.bgcloud(&["frontend", "prune", "--keep", "1"]).json();
    let deleted: Vec<&str> = out["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(deleted, ["r2", "r3"]);
    let releases = fx.bgcloud(&["frontend", "releases"]).json();
    let ids: Vec<&str> = releases["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["r4", "r1"]);
    assert_eq!(origin_path(&fx).await, "/releases/r1");

    // What is really in the buckets, read with the test's own client.
    let site: Vec<String> = fx
        .objects(&fx.stack.site_bucket, "")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for gone in ["releases/r2/", "releases/r3/"] {
        assert!(
            !site.iter().any(|k| k.starts_with(gone)),
            "{gone} left: {site:?}"
        );
    }
    for kept in ["releases/r1/index.html", "releases/r4/index.html"] {
        assert!(site.contains(&kept.to_string()), "{kept} missing: {site:?}");
    }
    let state: Vec<String> = fx
        .objects(&fx.stack.state_bucket, "")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let manifest = |id: &str| format!("bgcloud/{}/frontend/{id}.json", fx.stack.spec.name);
    for id in ["r2", "r3"] {
        assert!(
            !state.contains(&manifest(id)),
            "{id}'s manifest left: {state:?}"
        );
    }
    // Every asset the live release references is still in the shared store.
    let live: serde_json::Value = serde_json::from_slice(
        &fx.s3()
            .get_object()
            .bucket(&fx.stack.state_bucket)
            .key(manifest("r1"))
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes(),
    )
    .unwrap();
    let assets: Vec<String> = live["files"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|p| p.starts_with("assets/"))
        .cloned()
        .collect();
    assert!(!assets.is_empty());
    for asset in assets {
        assert!(
            site.contains(&asset),
            "live asset {asset} was pruned: {site:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_writes_nothing() {
    let fx = Fixture::new().await;
    let out = fx
        .bgcloud(&["frontend", "deploy", &fx.site("1"), "--dry-run"])
        .ok();
    assert!(
        out.stdout.contains("would release") && out.stdout.contains("14 uploaded"),
        "{}",
        out.stdout
    );
    let writes: Vec<_> = fx
        .requests()
        .into_iter()
        .filter(|(_, a)| !crate::support::is_read(a))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(origin_path(&fx).await, "");
}

/// `frontend rollback --dry-run` and `frontend prune --dry-run`: what would be switched,
/// invalidated and deleted, the same refusals, and not one write (the lock included).
#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_of_frontend_rollback_and_prune_show_the_change_and_write_nothing() {
    let fx = Fixture::new().await;
    for (v, id) in [("1", "r1"), ("2", "r2"), ("3", "r3")] {
        fx.release(v, id);
    }
    let site_before = fx.objects(&fx.stack.site_bucket, "").await;
    let dry = |args: &[&str]| fx.dry_run(args);

    let out = dry(&["frontend", "rollback"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("would roll back to release r2\n")
            && out.stdout.contains("\ninvalidate: /")
            && out.stdout.contains(" /index.html ")
            && out
                .stdout
                .ends_with("dry run: nothing was changed; run it without --dry-run to apply\n"),
        "{}",
        out.stdout
    );
    let out = dry(&["frontend", "rollback", "--to", "r9"]);
    assert!(
        out.code == 2 && out.stderr.contains("release r9 does not exist"),
        "{}",
        out.stderr
    );
    assert_eq!(origin_path(&fx).await, "/releases/r3");

    // Live r3, previous r2, newest 1: r1 would go, with every object under it.
    let out = dry(&["frontend", "prune", "--keep", "1", "--output", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let r1_objects = site_before
        .iter()
        .filter(|(k, _)| k.starts_with("releases/r1/"))
        .count();
    assert!(r1_objects > 0);
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["deleted"], serde_json::json!(["r1"]));
    assert_eq!(json["objects_deleted"], r1_objects);
    assert_eq!(fx.objects(&fx.stack.site_bucket, "").await, site_before);
    // The real prune deletes what the dry run said.
    let real = fx.bgcloud(&["frontend", "prune", "--keep", "1"]).json();
    assert_eq!(
        (
            &real["deleted"],
            &real["objects_deleted"],
            &real["assets_deleted"]
        ),
        (
            &json["deleted"],
            &json["objects_deleted"],
            &json["assets_deleted"]
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_assets_are_reused_on_an_sse_kms_bucket() {
    use aws_sdk_s3::types::{
        ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
        ServerSideEncryptionRule,
    };
    let fx = Fixture::new().await;
    // Default encryption SSE-KMS: S3's ETags are then not the MD5 of the content.
    let kms = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::AwsKms)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .build()
        .unwrap();
    fx.aws
        .s3
        .put_bucket_encryption()
        .bucket(&fx.stack.site_bucket)
        .server_side_encryption_configuration(kms)
        .send()
        .await
        .unwrap();
    let (out, before) = fx.release_v1_then_v2();
    assert_only_the_change_was_written(&fx, &out, before);
}

/// The invalidations the emulator holds for the fixture's distribution: (id, paths), oldest first.
async fn invalidations(fx: &Fixture) -> Vec<(String, Vec<String>)> {
    let cf = &fx.aws.cloudfront;
    let list = cf
        .list_invalidations()
        .distribution_id(&fx.stack.distribution_id)
        .send()
        .await
        .unwrap();
    let mut found = Vec::new();
    for summary in list
        .invalidation_list()
        .map(|l| l.items())
        .unwrap_or_default()
    {
        let one = cf
            .get_invalidation()
            .distribution_id(&fx.stack.distribution_id)
            .id(summary.id())
            .send()
            .await
            .unwrap();
        let paths = one
            .invalidation()
            .and_then(|i| i.invalidation_batch())
            .and_then(|b| b.paths())
            .map(|p| p.items().to_vec())
            .unwrap_or_default();
        found.push((summary.id().to_string(), paths));
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_id_used_again_after_prune_gets_its_own_invalidation() {
    let fx = Fixture::new().await;
    let first = fx.release("1", "r1");
    fx.release("2", "r2");
    fx.release("3", "r3");
    let pruned = fx.bgcloud(&["frontend", "prune", "--keep", "1"]).json();
    assert_eq!(pruned["deleted"], serde_json::json!(["r1"]));
    // r1 again, with the same HTML paths: CloudFront would hand back the first r1's (long
    // finished) invalidation for a reused CallerReference and invalidate nothing.
    let again = fx.release("1", "r1");
    assert_ne!(again["invalidation_id"], first["invalidation_id"]);
    assert_eq!(invalidations(&fx).await.len(), 4);
    assert_eq!(origin_path(&fx).await, "/releases/r1");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalidation_paths_are_url_encoded() {
    let fx = Fixture::new().await;
    let dir = fx.dir.path().join("odd-names");
    for (path, body) in [
        ("index.html", "<!doctype html>"),
        ("menu du jour.html", "<p>soup</p>"),
        ("café/index.html", "<p>café</p>"),
        ("c#.txt", "sharp"),
        ("what?.txt", "query"),
        ("100%.txt", "all"),
    ] {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    let out = fx
        .bgcloud(&[
            "frontend",
            "deploy",
            dir.to_str().unwrap(),
            "--release-id",
            "r1",
        ])
        .json();
    let mut expected = vec![
        "/",
        "/100%25.txt",
        "/c%23.txt",
        "/caf%C3%A9/",
        "/caf%C3%A9/index.html",
        "/index.html",
        "/menu%20du%20jour.html",
        "/what%3F.txt",
    ];
    let mut sent: Vec<String> = invalidations(&fx).await.remove(0).1;
    sent.sort();
    expected.sort();
    assert_eq!(sent, expected);
    // What CloudFront says when bgcloud returns: InProgress until the change has reached every
    // edge (cf_propagation), which can be after the invalidation completed.
    assert!(
        ["InProgress", "Deployed"].contains(&out["distribution_status"].as_str().unwrap()),
        "{out}"
    );
    // The objects themselves keep their real names.
    fx.aws
        .s3
        .head_object()
        .bucket(&fx.stack.site_bucket)
        .key("releases/r1/café/index.html")
        .send()
        .await
        .expect("the object under its unencoded key");
}

/// Whether CloudFront says the invalidation has reached every edge.
async fn invalidation_status(fx: &Fixture, id: &str) -> String {
    fx.aws
        .cloudfront
        .get_invalidation()
        .distribution_id(&fx.stack.distribution_id)
        .id(id)
        .send()
        .await
        .unwrap()
        .invalidation()
        .unwrap()
        .status()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_and_a_rollback_return_once_their_invalidation_has_completed() {
    // CloudFront as modelled: an invalidation is InProgress for a while, then Completed; an
    // update without If-Match is refused.
    let fx = Fixture::new().await;
    let unconditional = fx
        .aws
        .cloudfront
        .update_distribution()
        .id(&fx.stack.distribution_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        unconditional
            .as_service_error()
            .and_then(|e| e.meta().code()),
        Some("InvalidIfMatchVersion")
    );

    for args in [
        vec!["frontend", "deploy", &fx.site("1"), "--release-id", "r1"],
        vec!["frontend", "deploy", &fx.site("2"), "--release-id", "r2"],
        vec!["frontend", "rollback"],
    ] {
        let from = fx.mark();
        let out = fx.bgcloud(&args).json();
        let id = out["invalidation_id"].as_str().expect("an invalidation");
        // Read at once after bgcloud returned: it waited until the edges had it.
        assert_eq!(invalidation_status(&fx, id).await, "Completed", "{args:?}");
        let log = crate::support::request_log(&fx.access_key);
        let polls = log[from..]
            .iter()
            .filter(|r| {
                r["service"] == "cloudfront"
                    && r["method"] == "GET"
                    && r["path"].as_str().unwrap().contains("/invalidation/")
            })
            .count();
        assert!(
            polls >= 2,
            "{args:?}: asked while InProgress, then Completed ({polls})"
        );
        // Every distribution update bgcloud made was conditional.
        for update in log[from..]
            .iter()
            .filter(|r| r["service"] == "cloudfront" && r["method"] == "PUT")
        {
            assert!(update["if_match"].is_string(), "{update}");
        }
    }

    // --no-wait returns with the invalidation still on its way.
    let out = fx
        .bgcloud(&["frontend", "rollback", "--to", "r2", "--no-wait"])
        .json();
    let id = out["invalidation_id"].as_str().unwrap();
    assert_eq!(invalidation_status(&fx, id).await, "InProgress");
}
