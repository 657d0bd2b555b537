//! `status --watch` through the real binary: one line (or JSON object) per change when stdout is
//! a pipe, redrawn in place on a pseudo-terminal, Ctrl-C and SIGTERM end it with exit 0.

use std::io::Read;
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{finish, signal, Bare, Fixture};
use serde_json::json;

/// A spawned watch whose stdout is read as it comes.
struct Watching {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Watching {
    fn start(mut child: Child) -> Watching {
        let mut stdout = child.stdout.take().expect("stdout piped");
        let out = Arc::new(Mutex::new(String::new()));
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Watching { child, out }
    }

    fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Waits (up to 20 s) until stdout so far satisfies `done`; that text.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text();
            if done(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "the watch never showed {what}; stdout so far:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for `n` complete lines.
    fn lines(&self, n: usize) -> Vec<String> {
        let text = self.wait_for(&format!("{n} line(s)"), |t| t.matches('\n').count() >= n);
        text.lines().map(str::to_string).collect()
    }

    /// Sends `sig` and waits: (exit code, stderr).
    fn stop(self, sig: &str) -> (i32, String) {
        signal(&self.child, sig);
        let (code, _, stderr) = finish(self.child);
        (code, stderr)
    }
}

/// Waits until the watch has polled `polls` more times (each poll reads both target groups'
/// health), so that a test knows it has seen an unchanged state without sleeping blindly.
fn more_polls(fx: &Fixture, polls: usize) {
    let seen = fx.count("DescribeTargetHealth");
    fx.wait_until(&format!("{polls} more polls"), |log| {
        log.iter()
            .filter(|(_, a)| a == "DescribeTargetHealth")
            .count()
            >= seen + 2 * polls
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_terminal_it_prints_a_line_per_change_until_ctrl_c() {
    let fx = Fixture::new().await;
    let watch = Watching::start(fx.bgcloud(&["status", "--watch", "--every", "1s"]).spawn());
    let first = watch.lines(1);
    let (time, rest) = first[0].split_once(' ').unwrap();
    assert!(
        time.starts_with("20") && time.ends_with('Z'),
        "{}",
        first[0]
    );
    assert_eq!(
        rest,
        "blue 100 % / green 0 % · blue 2/2 healthy · green 2/2 healthy"
    );
    more_polls(&fx, 2);
    assert_eq!(watch.lines(1).len(), 1, "nothing changed: {}", watch.text());

    fx.bgcloud(&["shift", "--to", "green", "--weight", "10"])
        .ok();
    let lines = watch.lines(2);
    assert!(
        lines[1].ends_with(" blue 90 % / green 10 % · blue 2/2 healthy · green 2/2 healthy"),
        "{lines:?}"
    );
    let unhealthy = &fx.stack.green_target_group_arn;
    fx.set_target_health(unhealthy, "unhealthy", "Target.Timeout");
    let lines = watch.lines(3);
    let id = &fx.stack.instance_ids[0];
    assert!(
        lines[2].contains("green 0/2 healthy, ")
            && lines[2].contains(&format!("{id}:8082 unhealthy (Target.Timeout)")),
        "{lines:?}"
    );
    more_polls(&fx, 2);
    assert_eq!(
        watch.text().lines().count(),
        3,
        "no line repeats while nothing changes: {}",
        watch.text()
    );

    let (code, stderr) = watch.stop("INT");
    assert_eq!(code, 0, "Ctrl-C ends a watch with 0: {stderr}");
    assert!(!stderr.contains("interrupted"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_poll_is_said_once_and_the_next_ones_go_on() {
    let fx = Fixture::new().await;
    fx.fault(
        json!({"action": "DescribeListeners", "code": "InternalError", "status": 500, "times": 3}),
    );
    let watch = Watching::start(
        fx.bgcloud(&["status", "--watch", "--every", "1s", "--max-attempts", "1"])
            .spawn(),
    );
    let lines = watch.lines(1);
    assert!(
        lines[0].ends_with(" blue 100 % / green 0 % · blue 2/2 healthy · green 2/2 healthy"),
        "{lines:?}"
    );
    assert!(
        fx.count("DescribeListeners") >= 4,
        "three polls failed, the fourth worked"
    );

    let (code, stderr) = watch.stop("INT");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.matches("poll failed").count(),
        1,
        "said once: {stderr}"
    );
    assert!(stderr.contains("InternalError"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_json_it_prints_one_status_object_per_change() {
    let fx = Fixture::new().await;
    let watch = Watching::start(
        fx.bgcloud(&["status", "--watch", "--every", "1s", "--output", "json"])
            .spawn(),
    );
    watch.lines(1);
    fx.bgcloud(&["shift", "--to", "green", "--weight", "25"])
        .ok();
    watch.wait_for("the new weights", |t| {
        t.contains(r#""weights":{"blue":75,"green":25}"#)
    });
    more_polls(&fx, 2);

    let text = watch.text();
    let objects: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(objects[0]["weights"]["blue"], 100);
    assert_eq!(objects[0]["app"], fx.stack.spec.name);
    let last = objects.last().unwrap();
    assert_eq!(
        (
            last["weights"]["blue"].as_u64(),
            last["weights"]["green"].as_u64()
        ),
        (Some(75), Some(25))
    );
    assert_eq!(last["canary"], "green");
    assert_eq!(
        last["colors"]["green"]["targets"].as_array().unwrap().len(),
        2
    );
    // The shift writes the listener, then the record: a poll between them may show a step.
    assert!(objects.len() <= 3, "{text}");
    for pair in objects.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "an object is printed only when it changed: {text}"
        );
    }

    let (code, stderr) = watch.stop("TERM");
    assert_eq!(code, 0, "SIGTERM ends a watch with 0: {stderr}");
}

/// Runs its arguments on a pseudo-terminal (40 rows, 160 columns), copying what it draws to
/// stdout; SIGTERM types Ctrl-C on that terminal. Exits with the command's exit code.
const PTY: &str = r#"
import fcntl, os, pty, signal, struct, sys, termios
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    os.execv(sys.argv[1], sys.argv[1:])
signal.signal(signal.SIGTERM, lambda *_: os.write(fd, b"\x03"))
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_it_redraws_in_place_until_ctrl_c() {
    let fx = Fixture::new().await;
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("localstack/.venv/bin/python");
    let watch = Watching::start(
        fx.bgcloud(&["status", "--watch", "--every", "1s"])
            .wrapped(&python, &["-c", PTY])
            .spawn(),
    );
    let first = watch.wait_for("the status", |t| {
        t.contains("every 1s · Ctrl-C to stop") && t.contains("blue is live")
    });
    assert!(
        first.contains("\x1b["),
        "drawn with terminal commands: {first:?}"
    );
    assert!(first.contains("blue   100 %  stable"), "{first}");
    assert!(
        !first.contains("· blue 2/2 healthy"),
        "not the piped form: {first}"
    );

    fx.bgcloud(&["shift", "--to", "green", "--weight", "10"])
        .ok();
    let text = watch.wait_for("the new weights", |t| t.contains("canary green at 10 %"));
    let redraws = text.matches("Ctrl-C to stop").count();
    assert!(redraws >= 2, "redrawn each poll: {text:?}");
    assert_eq!(
        text.matches("\x1b[2J").count(),
        1,
        "the screen is cleared once, then overwritten: {text:?}"
    );

    let (code, stderr) = watch.stop("TERM");
    assert_eq!(code, 0, "Ctrl-C ends a watch with 0: {stderr}\n{}", text);
}

/// bgcloud's progress lines on a terminal: coloured by default, plain with `NO_COLOR` (set and
/// not empty) or `--color never`; `--color always` colours them into a pipe too.
#[tokio::test(flavor = "multi_thread")]
async fn colour_on_a_terminal_unless_no_color_or_color_never() {
    let fx = Fixture::v1_v2().await;
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("localstack/.venv/bin/python");
    let on_terminal = |args: &[&str], no_color: &str| {
        let out = fx
            .bgcloud(args)
            .env("NO_COLOR", no_color)
            .wrapped(&python, &["-c", PTY])
            .run();
        assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
        out.stdout
    };
    // An SGR sequence (ESC [ digits/semicolons m) is colour; the live line's cursor commands
    // (ESC [ 2K, ESC [ 1A …) are not.
    let coloured = |text: &str| {
        text.split("\x1b[").skip(1).any(|rest| {
            let params = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';');
            params.starts_with('m')
        })
    };
    let default = on_terminal(&["deploy", "--image", "v1"], "");
    assert!(
        default.contains("INFO") && coloured(&default),
        "coloured on a terminal: {default:?}"
    );
    for (args, no_color) in [
        (&["deploy", "--image", "v2"][..], "1"),
        (&["rollback", "--color", "never"][..], ""),
    ] {
        let plain = on_terminal(args, no_color);
        assert!(
            plain.contains("INFO") && !coloured(&plain),
            "{args:?} with NO_COLOR={no_color:?}: {plain:?}"
        );
    }
    let forced = fx
        .bgcloud(&["--color", "always", "deploy", "--image", "v2"])
        .ok();
    assert!(coloured(&forced.stderr), "{:?}", forced.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poll_interval_under_a_second_is_refused_before_any_aws_call() {
    let fx = Fixture::new().await;
    for every in ["0s", "200ms", "often"] {
        let out = fx.bgcloud(&["status", "--watch", "--every", every]).code(2);
        assert!(out.stderr.contains("--every"), "{every}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{every}: {}", out.stdout);
    }
    let out = fx.bgcloud(&["status", "--every", "5s"]).code(2);
    out.assert_stderr_has("--watch");
    assert_eq!(fx.requests(), vec![]);
}

#[test]
fn a_config_without_a_backend_ends_the_watch_up_front() {
    let bare =
        Bare::new("app = \"shop\"\nregion = \"us-east-1\"\n\n[state]\nbucket = \"shop-state\"\n");
    let out = bare.bgcloud(&["status", "--watch"]).code(2);
    out.assert_stderr_has("[backend]");
    assert_eq!(bare.requests(), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_reads_the_preview_route_seldom_and_its_url_once() {
    let fx = Fixture::v1_v2_with("").await;
    let config = std::fs::read_to_string(&fx.config).unwrap().replace(
        "\n[frontend]",
        "\n[backend.preview]\nheader = \"X-Bgcloud-Preview\"\n\n[frontend]",
    );
    fx.write_config(&config);
    let watch = Watching::start(fx.bgcloud(&["status", "--watch", "--every", "1s"]).spawn());
    watch.lines(1);
    more_polls(&fx, 3);
    let (code, _) = watch.stop("TERM");
    assert_eq!(code, 0);
    // Weights and health every poll; the preview rule (rules + tags) and its URL (listener +
    // load balancer) only at the first: ELB's Describe* budget is shared with deploys.
    assert!(fx.count("DescribeTargetHealth") >= 8, "{:?}", fx.requests());
    assert_eq!(fx.count("DescribeRules"), 1, "{:?}", fx.requests());
    assert_eq!(fx.count("DescribeLoadBalancers"), 1, "{:?}", fx.requests());
}

/// On a terminal a watch is one live line, redrawn in place with its clock and readings, and
/// log lines go above it whole; it is cleared when the watch ends.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_a_watch_is_a_live_line_redrawn_in_place() {
    let fx = Fixture::v1_v2().await;
    // A metric gate with no data: once the watch is over it logs that it waits for CloudWatch,
    // while the live line is still drawn, then ends inconclusive (exit 4).
    let config = fx.stack.config_toml("").replace(
        "\n[frontend]",
        "\n[backend.gates]\nperiod = \"1s\"\nmax_5xx_rate = 0.01\n\n[frontend]",
    );
    fx.write_config(&config);
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("localstack/.venv/bin/python");
    let out = fx
        .bgcloud(&["deploy", "--image", "v1", "--watch", "3s"])
        .wrapped(&python, &["-c", PTY])
        .run();
    assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
    let drawn = out.stdout.matches("watching green: ").count();
    assert!(
        drawn >= 3,
        "redrawn as it ticks ({drawn}): {:?}",
        out.stdout
    );
    assert!(
        out.stdout.contains("s left · 2 of 2 targets healthy"),
        "{:?}",
        out.stdout
    );
    // A line logged while the live line was drawn is whole, on a line of its own.
    let logged = out
        .stdout
        .split(['\r', '\n'])
        .find(|l| l.contains("waiting for CloudWatch to publish"))
        .unwrap_or_default();
    assert!(
        logged.contains("INFO") && !logged.contains("watching green: "),
        "{logged:?} in {:?}",
        out.stdout
    );
    // Cleared at the end: the last thing drawn is not the live line.
    let tail = &out.stdout[out.stdout.rfind("watching green: ").unwrap()..];
    assert!(
        tail.contains("\x1b[2K") || tail.contains("\x1b[K"),
        "{tail:?}"
    );
}
