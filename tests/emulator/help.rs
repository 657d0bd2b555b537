//! `bgcloud completions` and `bgcloud man`: generated from the command line's definitions, usable
//! without a config or AWS, and loaded by the programs that use them.

use std::process::Command;

use crate::support::Bare;

/// What bash completes after `words` (the last one being typed), with bgcloud's own script.
fn bash_completes(script: &str, words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bgcloud.bash");
    std::fs::write(&path, script).unwrap();
    let words: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let probe = format!(
        "source '{}' && COMP_WORDS=({}) && COMP_CWORD={} && COMP_LINE=\"${{COMP_WORDS[*]}}\" && \
         COMP_POINT=${{#COMP_LINE}} && _bgcloud bgcloud \"${{COMP_WORDS[$COMP_CWORD]}}\" \
         \"${{COMP_WORDS[$COMP_CWORD-1]}}\" && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display(),
        words.join(" "),
        words.len() - 1
    );
    let out = Command::new("bash").arg("-c").arg(&probe).output().unwrap();
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_bash_completion_script_loads_and_completes_commands_and_flags() {
    let bare = Bare::new("");
    let out = bare
        .bgcloud(&[
            "--config",
            "/nonexistent/bgcloud.toml",
            "completions",
            "bash",
        ])
        .ok();
    assert!(
        bash_completes(&out.stdout, &["bgcloud", "fr"]).contains(&"frontend".to_string()),
        "{out:?}"
    );
    assert!(
        bash_completes(&out.stdout, &["bgcloud", "frontend", "pr"]).contains(&"prune".to_string())
    );
    assert!(bash_completes(&out.stdout, &["bgcloud", "deploy", "--can"])
        .contains(&"--canary".to_string()));
    assert_eq!(bare.requests(), vec![], "no AWS request");
    // The other shells' scripts are generated (their shells are not installed here).
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let script = bare.bgcloud(&["completions", shell]).ok().stdout;
        assert!(
            script.contains("bgcloud") && script.contains("frontend"),
            "{shell}"
        );
    }
    bare.bgcloud(&["completions", "tcsh"]).code(2);
}

#[test]
fn the_manual_page_renders_with_groff() {
    let bare = Bare::new("");
    let page = bare
        .bgcloud(&["--config", "/nonexistent/bgcloud.toml", "man"])
        .ok()
        .stdout;
    assert!(
        page.starts_with(".ie") || page.contains(".TH bgcloud 1"),
        "{page}"
    );
    let Ok(mut groff) = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        println!("groff is not installed: the page was generated, not rendered");
        return;
    };
    use std::io::Write;
    groff
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = groff.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warnings");
    for command in ["deploy", "rollback", "frontend", "completions"] {
        assert!(page.contains(command), "{command} in the page");
    }
}
