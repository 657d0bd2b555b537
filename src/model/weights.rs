//! Traffic split between blue and green, as whole percentages that add up to 100.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::color::Color;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    pub blue: u8,
    pub green: u8,
}

impl Weights {
    /// All traffic to `color`.
    pub fn all(color: Color) -> Weights {
        Weights::split(color, 100)
    }

    /// `percent` to `color`, the rest to the other colour.
    pub fn split(color: Color, percent: u8) -> Weights {
        let percent = percent.min(100);
        match color {
            Color::Blue => Weights {
                blue: percent,
                green: 100 - percent,
            },
            Color::Green => Weights {
                blue: 100 - percent,
                green: percent,
            },
        }
    }

    /// Percentages from raw ALB weights (0-999 each), rounded so that they add up to 100. A
    /// colour with any raw weight gets at least 1 %: 999/1 is a canary, not 100/0.
    pub fn from_raw(blue: u32, green: u32) -> Option<Weights> {
        let total = blue + green;
        if total == 0 {
            return None;
        }
        let mut b = ((blue * 200 + total) / (total * 2)) as u8; // round half up
        if blue > 0 && b == 0 {
            b = 1;
        } else if green > 0 && b == 100 {
            b = 99;
        }
        Some(Weights {
            blue: b,
            green: 100 - b,
        })
    }

    pub fn get(&self, color: Color) -> u8 {
        match color {
            Color::Blue => self.blue,
            Color::Green => self.green,
        }
    }

    /// The colour with most of the traffic; `tie` decides a 50/50 split.
    pub fn stable(&self, tie: Color) -> Color {
        match self.blue.cmp(&self.green) {
            std::cmp::Ordering::Greater => Color::Blue,
            std::cmp::Ordering::Less => Color::Green,
            std::cmp::Ordering::Equal => tie,
        }
    }

    /// The colour that gets some but not all traffic, next to `stable`.
    pub fn canary(&self, stable: Color) -> Option<Color> {
        let other = stable.other();
        (self.get(other) > 0 && self.get(other) < 100).then_some(other)
    }
}

/// Canary steps: percentages for the new colour, each 1-99 and each above the one before.
pub fn steps(values: &[i64]) -> std::result::Result<Vec<u8>, String> {
    if values.is_empty() {
        return Err("is empty: give the percentages in order, e.g. [10, 25, 50]".into());
    }
    let mut out: Vec<u8> = Vec::new();
    for &v in values {
        if !(1..=99).contains(&v) {
            return Err(format!(
                "has {v}: each step is a share of traffic from 1 to 99 (100 is the promote after the last step)"
            ));
        }
        if out.last().is_some_and(|&last| i64::from(last) >= v) {
            return Err(format!(
                "has {v} after {}: steps must grow",
                out[out.len() - 1]
            ));
        }
        out.push(v as u8);
    }
    Ok(out)
}

/// `--steps 10,25,50`.
pub fn parse_steps(text: &str) -> std::result::Result<Vec<u8>, String> {
    let values = text
        .split(',')
        .map(|p| {
            p.trim()
                .trim_end_matches('%')
                .parse::<i64>()
                .map_err(|_| format!("{p:?} is not a percentage: write e.g. --steps 10,25,50"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    steps(&values)
}

impl fmt::Display for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blue {} % / green {} %", self.blue, self.green)
    }
}

/// One traffic change a run made, verified on the listener: what it was and the weights
/// before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Moved {
    /// `deploy`, `step`, `shift`, `promote`, `rollback` or `auto-rollback`.
    pub action: &'static str,
    pub from: Weights,
    pub to: Weights,
}

/// "A → B → C": the weights before the first move, then after each; None without a move.
pub fn path(moves: &[Moved]) -> Option<String> {
    let first = moves.first()?;
    let mut text = first.from.to_string();
    for m in moves {
        text.push_str(&format!(" → {} ({})", m.to, m.action));
    }
    Some(text)
}

/// Parses a `--weight` / `--canary` value: a whole percentage in `min..=max`.
pub fn parse_percent(text: &str, min: u8, max: u8) -> Result<u8> {
    let trimmed = text.trim().trim_end_matches('%').trim();
    match trimmed.parse::<u8>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::refused(format!(
            "{text:?} is not a percentage from {min} to {max}: give a whole number such as 10"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_weights_become_percentages_that_add_up() {
        assert_eq!(
            Weights::from_raw(1, 0),
            Some(Weights {
                blue: 100,
                green: 0
            })
        );
        assert_eq!(
            Weights::from_raw(90, 10),
            Some(Weights {
                blue: 90,
                green: 10
            })
        );
        assert_eq!(
            Weights::from_raw(1, 2),
            Some(Weights {
                blue: 33,
                green: 67
            })
        );
        // Any raw weight is at least 1 %: 999/1 still sends traffic to green.
        assert_eq!(
            Weights::from_raw(999, 1),
            Some(Weights { blue: 99, green: 1 })
        );
        assert_eq!(
            Weights::from_raw(1, 999),
            Some(Weights { blue: 1, green: 99 })
        );
        assert_eq!(
            Weights::from_raw(1, 1),
            Some(Weights {
                blue: 50,
                green: 50
            })
        );
        assert_eq!(Weights::from_raw(0, 0), None);
    }

    #[test]
    fn stable_and_canary() {
        let w = Weights::split(Color::Green, 10);
        assert_eq!(
            w,
            Weights {
                blue: 90,
                green: 10
            }
        );
        assert_eq!(w.stable(Color::Green), Color::Blue);
        assert_eq!(w.canary(Color::Blue), Some(Color::Green));
        assert_eq!(Weights::all(Color::Blue).canary(Color::Blue), None);
        let even = Weights::split(Color::Blue, 50);
        assert_eq!(even.stable(Color::Green), Color::Green);
        assert_eq!(even.canary(Color::Green), Some(Color::Blue));
    }

    #[test]
    fn percent_parsing() {
        assert_eq!(parse_percent("10", 1, 99).unwrap(), 10);
        assert_eq!(parse_percent("25%", 0, 100).unwrap(), 25);
        for bad in ["0", "100", "-5", "ten", "", "1.5", "300"] {
            let e = parse_percent(bad, 1, 99).unwrap_err();
            assert!(e.to_string().contains("1 to 99"), "{bad}: {e}");
            assert_eq!(e.exit_code(), 2);
        }
    }
}
