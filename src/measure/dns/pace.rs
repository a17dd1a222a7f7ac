//! How long a UDP query keeps listening after its first reply, and how many copies of
//! it go out meanwhile, from how its resolver has answered.
//!
//! The window is there to see a forged answer and the real one to the same query: an
//! injector on the path answers first, and the resolver's own answer follows as soon
//! as the resolver answers anything. So the window needs to last as long as this
//! resolver takes to answer, not a fixed second: a resolver in the next room answers in
//! milliseconds, one abroad in a few hundred. Each resolver's answers to the first copy
//! of its recent queries, forged and real, are timed, and the window is a multiple of
//! the slowest of them, never under a floor that covers a resolver across a continent,
//! and never over the configured window. Until a resolver has answered a few queries,
//! the configured window holds; a window already listening is stretched at once when a
//! slower answer arrives (an uncached name's, a real answer behind a forged one).
//!
//! On a lossy link the real answer may be lost while the forged one arrives, so the
//! query is sent again during the window: as many times as the link needs for one of
//! the copies' round trips to come through but once in 100,000 queries ([`MISSED`]),
//! judged by how often a first copy went unanswered of late (lost, or slower than the
//! resend). A first copy is judged answered when its answer comes, unanswered when the
//! second is sent: until the first query is a resend's interval old, no first copy
//! can have been judged unanswered, and a new resolver (or one judged on fewer than
//! eight) gets the most, six. A clean link needs two copies more, a link that loses
//! one round trip in four, six.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::measure::round_trips::{MIN_SAMPLES, RoundTrips, remember};
/// The window is this many times the slowest recent answer: room for a recursion the
/// resolver had cached for the others.
const MARGIN: u32 = 3;
/// The shortest window: a resolver on another continent answers well within it.
pub const FLOOR: Duration = Duration::from_millis(250);
/// Copies sent during the window at most, and while the resolver is new.
pub const MAX_COPIES: u32 = 6;
/// How rarely the real answer may be lost in every copy's round trip.
const MISSED: f64 = 1e-5;

/// How one resolver has answered its recent queries.
#[derive(Default)]
pub struct Pace {
    recent: Mutex<Recent>,
    /// When the first query judged began.
    began: OnceLock<Instant>,
}

#[derive(Default)]
struct Recent {
    /// How long the first copy's answer took.
    took: RoundTrips,
    /// Whether the first copy went unanswered until another was sent.
    unanswered: VecDeque<bool>,
}

impl Pace {
    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().expect("pace lock poisoned")
    }

    /// Times an answer to the first copy of a query, `took` after it was sent.
    pub fn answered(&self, took: Duration) {
        self.recent().took.took(took);
    }

    /// The first copy of a query that began at `began` was answered, or went
    /// unanswered until the second was sent.
    pub fn first_copy(&self, began: Instant, answered: bool) {
        self.began.get_or_init(|| began);
        remember(&mut self.recent().unanswered, !answered);
    }

    /// How long a quarter of the recent answers to a first copy took or longer, once a
    /// few were timed.
    pub fn slow_quarter(&self) -> Option<Duration> {
        self.recent().took.upper_quartile()
    }

    /// How long to listen after a first reply, at most `configured`.
    pub fn window(&self, configured: Duration) -> Duration {
        self.recent().took.slowest().map_or(configured, |slowest| {
            (slowest * MARGIN).max(FLOOR).min(configured)
        })
    }

    /// How many more copies to send during the window, where a query's second copy
    /// goes `resend` after its first: with the first, enough that all their round trips
    /// fail once in [`MISSED`] queries at most, the chance of one failing estimated from
    /// the recent first copies (one unanswered more than seen, of two more: no link is
    /// taken for lossless).
    pub fn copies(&self, resend: Duration) -> u32 {
        let old_enough = self.began.get().is_some_and(|b| b.elapsed() >= resend);
        let recent = self.recent();
        let seen = recent.unanswered.len();
        if !old_enough || seen < MIN_SAMPLES {
            return MAX_COPIES;
        }
        let unanswered = recent.unanswered.iter().filter(|u| **u).count();
        let fails = (unanswered + 1) as f64 / (seen + 2) as f64;
        let sends = (MISSED.ln() / fails.ln()).ceil();
        (sends as u32).saturating_sub(1).clamp(1, MAX_COPIES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::round_trips::SAMPLES;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_configured_window_holds_until_the_resolver_is_known() {
        let pace = Pace::default();
        for _ in 0..MIN_SAMPLES - 1 {
            pace.answered(Duration::from_millis(2));
        }
        assert_eq!(pace.window(SECOND), SECOND);
        pace.answered(Duration::from_millis(2));
        assert_eq!(pace.window(SECOND), FLOOR);
    }

    #[test]
    fn the_slowest_recent_answer_sets_the_window_within_its_bounds() {
        let pace = Pace::default();
        for _ in 0..SAMPLES {
            pace.answered(Duration::from_millis(10));
        }
        pace.answered(Duration::from_millis(120));
        assert_eq!(pace.window(SECOND), Duration::from_millis(360));
        pace.answered(Duration::from_millis(900));
        assert_eq!(pace.window(SECOND), SECOND, "never over the configured");
        assert_eq!(pace.window(Duration::ZERO), Duration::ZERO);
        // A slow answer is forgotten once enough others have come.
        for _ in 0..SAMPLES {
            pace.answered(Duration::from_millis(10));
        }
        assert_eq!(pace.window(SECOND), FLOOR);
    }

    #[test]
    fn the_copies_follow_how_often_a_first_copy_went_unanswered() {
        let resend = Duration::from_millis(500);
        let pace = Pace::default();
        let began = Instant::now() - resend;
        for _ in 0..MIN_SAMPLES - 1 {
            pace.first_copy(began, true);
        }
        assert_eq!(pace.copies(resend), MAX_COPIES, "a new resolver");
        for _ in 0..SAMPLES {
            pace.first_copy(began, true);
        }
        assert_eq!(pace.copies(resend), 2, "a clean link");
        // One round trip in four lost (a packet in seven each way).
        for i in 0..SAMPLES {
            pace.first_copy(began, i % 4 != 0);
        }
        assert_eq!(pace.copies(resend), MAX_COPIES, "a lossy link");
        for i in 0..SAMPLES {
            pace.first_copy(began, i % 16 != 0);
        }
        assert_eq!(pace.copies(resend), 4, "one in sixteen");
    }

    /// Early in a run only answers have come: a lost first copy is judged when the
    /// second goes, a resend's interval after the first.
    #[test]
    fn no_link_is_judged_before_a_first_copy_could_go_unanswered() {
        let resend = Duration::from_millis(500);
        let pace = Pace::default();
        for _ in 0..SAMPLES {
            pace.first_copy(Instant::now(), true);
        }
        assert_eq!(pace.copies(resend), MAX_COPIES);
        assert_eq!(pace.copies(Duration::ZERO), 2);
    }
}
