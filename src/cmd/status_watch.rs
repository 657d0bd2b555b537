//! `bgcloud status --watch`: polls `status` until Ctrl-C and shows each change: redrawn in place
//! on a terminal, else one compact line (or, with `--output json`, one object) per change.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, SystemTime};

use crossterm::cursor::MoveTo;
use crossterm::queue;
use crossterm::terminal::{self, Clear, ClearType};

use crate::aws::targets::TargetState;
use crate::backend::rollout::Rollout;
use crate::cli::parse_duration;
use crate::cmd::status::{self, Status};
use crate::context::{interrupted, Context};
use crate::error::{Error, Result};
use crate::model::color::Color;
use crate::model::weights::Weights;
use crate::output::Format;

/// `--every` when not given: each poll costs ELB Describe* calls, which share one throttling
/// budget per account and region with a deploy that may be running.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(5);
/// Faster polling only costs AWS calls (five a poll) without showing anything sooner that matters.
pub const MIN_EVERY: Duration = Duration::from_secs(1);

/// Watches until Ctrl-C or SIGTERM, which end it with exit 0: stopping a watch is how it ends,
/// not an interrupted operation. A failed poll is shown and tried again; a refusal (no backend,
/// a target group that does not exist) ends it, as polling again would not change it.
pub async fn run(ctx: &Context, every: Option<&str>) -> Result<()> {
    let every = parse_every(every)?;
    ctx.config.backend()?;
    let mut view = View::new(ctx.format, every, io::stdout().is_terminal());
    tokio::select! {
        r = poll(ctx, every, &mut view) => r,
        _ = interrupted() => Ok(()),
    }
}

/// `--every`: a duration of at least [`MIN_EVERY`].
pub fn parse_every(text: Option<&str>) -> Result<Duration> {
    let Some(text) = text else {
        return Ok(DEFAULT_EVERY);
    };
    let every = parse_duration("--every", text)?;
    if every < MIN_EVERY {
        return Err(Error::refused(format!(
            "--every {text:?} is too short: status polls at most once a second (e.g. --every 1s; \
             the default is 5s)"
        )));
    }
    Ok(every)
}

async fn poll(ctx: &Context, every: Duration, view: &mut View) -> Result<()> {
    let mut cache = status::Cache::default();
    let mut ticks = tokio::time::interval(every);
    // A slow poll (AWS retrying) pushes the next one back rather than firing a burst after it.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let at = SystemTime::now();
        let shown = match status::run_cached(ctx, &mut cache).await {
            Ok(s) => view.status(&s, at),
            Err(e @ Error::Refused(_)) => return Err(e),
            Err(e) => view.failed(&e, at),
        };
        match shown {
            Ok(()) => {}
            // The reader went away (`| head -1`): nobody is watching any more.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Error::failed(format!("writing to stdout: {e}"))),
        }
    }
}

/// Where and how the polls are shown.
struct View {
    format: Format,
    every: Duration,
    /// Stdout is a terminal (and the format is text): redraw in place.
    screen: bool,
    changes: Changes,
    /// The last status drawn on the screen, kept on view while polls fail.
    last: Option<(String, SystemTime)>,
    drawn: bool,
}

impl View {
    fn new(format: Format, every: Duration, tty: bool) -> View {
        View {
            format,
            every,
            // JSON is for programs: one object per change even on a terminal.
            screen: tty && format == Format::Text,
            changes: Changes::default(),
            last: None,
            drawn: false,
        }
    }

    fn status(&mut self, s: &Status, at: SystemTime) -> io::Result<()> {
        if self.screen {
            self.last = Some((s.to_string(), at));
            return self.draw(at, None);
        }
        let key = match self.format {
            Format::Text => compact(s),
            Format::Json => serde_json::to_string(s).map_err(io::Error::other)?,
        };
        if !self.changes.is_new(&key) {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        match self.format {
            Format::Text => writeln!(out, "{} {key}", time(at))?,
            Format::Json => writeln!(out, "{key}")?,
        }
        out.flush()
    }

    fn failed(&mut self, e: &Error, at: SystemTime) -> io::Result<()> {
        if self.screen {
            return self.draw(at, Some(e));
        }
        // On stderr, so stdout stays statuses only; said once until something changes.
        if self.changes.is_new(&format!("error: {e}")) {
            eprintln!(
                "{} poll failed, trying again every {}: {e}",
                time(at),
                humantime::format_duration(self.every)
            );
        }
        Ok(())
    }

    fn draw(&mut self, at: SystemTime, error: Option<&Error>) -> io::Result<()> {
        let size = terminal::size()
            .ok()
            .filter(|&(cols, rows)| cols > 0 && rows > 1);
        let text = screen(self.every, at, self.last.as_ref(), error, size);
        let mut out = io::stdout().lock();
        if !self.drawn {
            // Once: the screen's earlier content goes; afterwards each line is overwritten, so
            // nothing flickers and the last view stays in place after Ctrl-C.
            queue!(out, Clear(ClearType::All))?;
            self.drawn = true;
        }
        queue!(out, MoveTo(0, 0))?;
        for line in text.lines() {
            write!(out, "{line}")?;
            queue!(out, Clear(ClearType::UntilNewLine))?;
            writeln!(out)?;
        }
        queue!(out, Clear(ClearType::FromCursorDown))?;
        out.flush()
    }
}

/// Remembers what the previous poll showed, so that a poll showing the same prints nothing.
#[derive(Debug, Default)]
struct Changes {
    last: Option<String>,
}

impl Changes {
    /// Whether `key` (a poll's line or object, without the poll's time) differs from the last.
    fn is_new(&mut self, key: &str) -> bool {
        if self.last.as_deref() == Some(key) {
            return false;
        }
        self.last = Some(key.to_string());
        true
    }
}

/// One line for a status, without the time: weights, each colour's healthy/total targets and
/// the ones that are not healthy (with the ALB's reason), the rollout's step if any.
fn compact(s: &Status) -> String {
    line(
        s.weights,
        [
            (Color::Blue, &s.colors.blue.targets),
            (Color::Green, &s.colors.green.targets),
        ],
        s.rollout.as_ref().map(|r| &r.state),
    )
}

fn line(
    weights: Weights,
    colors: [(Color, &[TargetState]); 2],
    rollout: Option<&Rollout>,
) -> String {
    let mut text = weights.to_string();
    for (color, targets) in colors {
        if targets.is_empty() {
            let _ = write!(text, " · {color} no targets");
            continue;
        }
        let healthy = targets.iter().filter(|t| t.is_healthy()).count();
        let _ = write!(text, " · {color} {healthy}/{} healthy", targets.len());
        for t in targets.iter().filter(|t| !t.is_healthy()) {
            let _ = write!(text, ", {}", t.id);
            if let Some(port) = t.port {
                let _ = write!(text, ":{port}");
            }
            let _ = write!(text, " {}", t.state);
            if let Some(reason) = &t.reason {
                let _ = write!(text, " ({reason})");
            }
        }
    }
    if let Some(r) = rollout {
        // Its first line: the gates' readings below it change every poll of a running rollout.
        let r = r.to_string();
        let _ = write!(text, " · rollout {}", r.lines().next().unwrap_or_default());
    }
    text
}

/// The screen: a header with the interval, how to stop and the poll's time, the poll's error if
/// it failed, then the last status; cut to the terminal's `(columns, rows)` when known, so that
/// nothing wraps or scrolls and each redraw starts at the top.
fn screen(
    every: Duration,
    at: SystemTime,
    last: Option<&(String, SystemTime)>,
    error: Option<&Error>,
    size: Option<(u16, u16)>,
) -> String {
    let mut lines = vec![format!(
        "every {} · Ctrl-C to stop · polled {}",
        humantime::format_duration(every),
        time(at)
    )];
    if let Some(e) = error {
        lines.push(String::new());
        lines.extend(format!("poll failed: {e}").lines().map(str::to_string));
        if let Some((_, was)) = last {
            lines.push(format!(
                "(below: the last poll that worked, at {})",
                time(*was)
            ));
        }
    }
    if let Some((text, _)) = last {
        lines.push(String::new());
        lines.extend(text.lines().map(str::to_string));
    }
    if let Some((cols, rows)) = size {
        // One row stays free: the newline after the last line must not scroll the screen.
        let room = usize::from(rows) - 1;
        if lines.len() > room {
            let cut = lines.len() - (room - 1);
            lines.truncate(room - 1);
            lines.push(format!("… {cut} more lines: a taller terminal shows them"));
        }
        for l in &mut lines {
            if let Some((i, _)) = l.char_indices().nth(usize::from(cols)) {
                l.truncate(i);
            }
        }
    }
    lines.join("\n")
}

fn time(at: SystemTime) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: &str, state: &str, reason: Option<&str>) -> TargetState {
        TargetState {
            id: id.into(),
            port: Some(8082),
            state: state.into(),
            reason: reason.map(str::to_string),
            description: Some("long words from the ALB".into()),
        }
    }

    #[test]
    fn a_line_has_weights_health_per_colour_and_the_step() {
        let blue = [
            target("i-1", "healthy", None),
            target("i-2", "healthy", None),
        ];
        let green = [
            target("i-1", "healthy", None),
            target("i-2", "unhealthy", Some("Target.Timeout")),
        ];
        let rollout = Rollout {
            color: Some(Color::Green),
            steps: vec![10, 50],
            step: 1,
            weight: 10,
            gates: vec![],
            ..Default::default()
        };
        let text = line(
            Weights {
                blue: 90,
                green: 10,
            },
            [(Color::Blue, &blue), (Color::Green, &green)],
            Some(&rollout),
        );
        assert_eq!(
            text,
            "blue 90 % / green 10 % · blue 2/2 healthy · green 1/2 healthy, i-2:8082 unhealthy \
             (Target.Timeout) · rollout green at 10 %, step 1 of 2 (10 % → 50 %)"
        );
        let none = line(
            Weights {
                blue: 100,
                green: 0,
            },
            [(Color::Blue, &[]), (Color::Green, &[])],
            None,
        );
        assert_eq!(
            none,
            "blue 100 % / green 0 % · blue no targets · green no targets"
        );
    }

    #[test]
    fn only_a_different_key_is_a_change() {
        let mut changes = Changes::default();
        assert!(
            changes.is_new("blue 100 % / green 0 %"),
            "the first poll is shown"
        );
        assert!(!changes.is_new("blue 100 % / green 0 %"));
        assert!(changes.is_new("blue 90 % / green 10 %"));
        assert!(changes.is_new("error: timed out"));
        assert!(
            !changes.is_new("error: timed out"),
            "a failure is said once"
        );
        assert!(
            changes.is_new("blue 90 % / green 10 %"),
            "and the recovery is shown"
        );
    }

    #[test]
    fn the_poll_time_is_not_part_of_the_line() {
        let blue = [target(
            "i-1",
            "draining",
            Some("Target.DeregistrationInProgress"),
        )];
        let colors = [(Color::Blue, &blue[..]), (Color::Green, &[][..])];
        let w = Weights {
            blue: 0,
            green: 100,
        };
        let mut changes = Changes::default();
        assert!(changes.is_new(&line(w, colors, None)));
        assert!(!changes.is_new(&line(w, colors, None)));
    }

    #[test]
    fn every_is_a_duration_of_a_second_or_more() {
        assert_eq!(parse_every(None).unwrap(), DEFAULT_EVERY);
        assert_eq!(parse_every(Some("1s")).unwrap(), Duration::from_secs(1));
        assert_eq!(parse_every(Some("1m")).unwrap(), Duration::from_secs(60));
        for bad in ["0s", "500ms", "soon", "-1s"] {
            let e = parse_every(Some(bad)).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.to_string().contains("--every"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_screen_has_the_hint_and_fits_the_terminal() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(60);
        let body =
            "shop: blue is live\n  blue   100 %  stable  a very long line indeed".to_string();
        let last = (body, at);
        let full = screen(Duration::from_secs(2), at, Some(&last), None, None);
        assert_eq!(
            full,
            "every 2s · Ctrl-C to stop · polled 1970-01-01T00:01:00Z\n\nshop: blue is live\n  \
             blue   100 %  stable  a very long line indeed"
        );
        let small = screen(Duration::from_secs(2), at, Some(&last), None, Some((20, 4)));
        assert_eq!(small, "every 2s · Ctrl-C to\n\n… 2 more lines: a ta");
        let failed = screen(
            DEFAULT_EVERY,
            at,
            Some(&last),
            Some(&Error::failed("reading target health: timed out")),
            None,
        );
        assert!(
            failed.contains("poll failed: reading target health: timed out"),
            "{failed}"
        );
        assert!(
            failed.contains("last poll that worked, at 1970-01-01T00:01:00Z"),
            "{failed}"
        );
        assert!(failed.ends_with("a very long line indeed"), "{failed}");
    }
}
