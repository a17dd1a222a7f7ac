//! How long a UDP query keeps listening after its first reply, from how long its
//! resolver takes to answer.
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

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// Answers timed before the window follows them.
const MIN_SAMPLES: usize = 8;
/// The answers remembered: the slowest of them sets the window.
const SAMPLES: usize = 64;
/// The window is this many times the slowest recent answer: room for a recursion the
/// resolver had cached for the others.
const MARGIN: u32 = 3;
/// The shortest window: a resolver on another continent answers well within it.
pub const FLOOR: Duration = Duration::from_millis(250);

/// How long one resolver has taken to answer its recent queries.
#[derive(Default)]
pub struct Pace {
    recent: Mutex<VecDeque<Duration>>,
}

impl Pace {
    /// Times an answer to the first copy of a query, `took` after it was sent.
    pub fn answered(&self, took: Duration) {
        let mut recent = self.recent.lock().expect("pace lock poisoned");
        if recent.len() == SAMPLES {
            recent.pop_front();
        }
        recent.push_back(took);
    }

    /// How long to listen after a first reply, at most `configured`.
    pub fn window(&self, configured: Duration) -> Duration {
        let recent = self.recent.lock().expect("pace lock poisoned");
        if recent.len() < MIN_SAMPLES {
            return configured;
        }
        let slowest = recent.iter().max().copied().unwrap_or(configured);
        (slowest * MARGIN).max(FLOOR).min(configured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
