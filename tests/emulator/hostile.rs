//! Hostile site builds: a symlink out of the folder, awkward names, empty files, an empty
//! index.html, a path too long for S3. Refused before anything is uploaded, or uploaded under
//! exactly the right keys.

use crate::support::Fixture;

fn uploads(fx: &Fixture) -> usize {
    fx.requests()
        .iter()
        .filter(|(s, a)| {
            s == "s3" && (a.starts_with("PUT ") || a.starts_with("COPY ") || a.starts_with("POST "))
        })
        .filter(|(_, a)| !a.ends_with("/lock.json"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_symlink_out_of_the_build_is_refused_naming_it() {
    let fx = Fixture::new().await;
    let site = fx.site("1");
    let secret = fx.dir.path().join("id_rsa");
    std::fs::write(&secret, "PRIVATE KEY").unwrap();
    let link = std::path::Path::new(&site).join("assets/key-0a0b0c0d.txt");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let out = fx.bgcloud(&["frontend", "deploy", &site]).code(2);
    assert!(
        out.stderr.contains("key-0a0b0c0d.txt") && out.stderr.contains("outside the build folder"),
        "{}",
        out.stderr
    );
    assert_eq!(uploads(&fx), 0, "nothing uploaded");

    // A link to a file inside the build is fine.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(std::path::Path::new(&site).join("robots.txt"), &link).unwrap();
    fx.bgcloud(&["frontend", "deploy", &site, "--release-id", "r1"])
        .ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn awkward_names_and_empty_files_go_up_under_exactly_their_keys() {
    let fx = Fixture::new().await;
    let site = std::path::PathBuf::from(fx.site("1"));
    let names = [
        "docs/a file with spaces.txt",
        "docs/hash#tag.txt",
        "docs/what?.txt",
        "docs/100%.txt",
        "docs/café/naïve ☕.txt",
        "docs/empty.txt",
    ];
    for name in names {
        let p = site.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let body = if name.ends_with("empty.txt") {
            ""
        } else {
            name
        };
        std::fs::write(p, body).unwrap();
    }
    let deep = format!("docs/{}/deep.txt", ["d"; 200].join("/"));
    std::fs::create_dir_all(site.join(&deep).parent().unwrap()).unwrap();
    std::fs::write(site.join(&deep), "deep").unwrap();
    fx.bgcloud(&[
        "frontend",
        "deploy",
        site.to_str().unwrap(),
        "--release-id",
        "r1",
    ])
    .ok();
    let stored = fx.objects(&fx.stack.site_bucket, "releases/r1/docs/").await;
    for name in names.iter().map(|n| n.to_string()).chain([deep]) {
        let key = format!("releases/r1/{name}");
        let size = stored.iter().find(|(k, _)| *k == key).map(|(_, s)| *s);
        let expected = if name.ends_with("empty.txt") {
            0
        } else if name.ends_with("deep.txt") {
            4
        } else {
            name.len() as i64
        };
        assert_eq!(size, Some(expected), "{key} in {stored:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_index_and_a_path_too_long_for_s3_are_refused() {
    let fx = Fixture::new().await;
    let site = std::path::PathBuf::from(fx.site("1"));
    std::fs::write(site.join("index.html"), "").unwrap();
    let out = fx
        .bgcloud(&["frontend", "deploy", site.to_str().unwrap()])
        .code(2);
    out.assert_stderr_has("index.html is empty");

    let site = std::path::PathBuf::from(fx.site("2"));
    let long = format!("docs/{}/x.txt", vec!["e".repeat(100); 10].join("/"));
    std::fs::create_dir_all(site.join(&long).parent().unwrap()).unwrap();
    std::fs::write(site.join(&long), "x").unwrap();
    let out = fx
        .bgcloud(&["frontend", "deploy", site.to_str().unwrap()])
        .code(2);
    assert!(
        out.stderr.contains("S3 keys take at most 1,024 bytes"),
        "{}",
        out.stderr
    );
    assert_eq!(uploads(&fx), 0);
}
