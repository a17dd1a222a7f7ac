//! The recent round trips of one kind, timed, so that a wait can follow them: as long
//! as the link and the servers have taken of late, not a fixed worst case (a DNS
//! query's listening window, `dns::pace`; how long a silent exchange keeps its work
//! place, `limits`).

use std::collections::VecDeque;
use std::time::Duration;

/// The round trips remembered.
pub const SAMPLES: usize = 64;
/// Round trips timed before a wait follows them.
pub const MIN_SAMPLES: usize = 8;

/// Pushes `value`, forgetting the oldest past [`SAMPLES`].
pub fn remember<T>(list: &mut VecDeque<T>, value: T) {
    if list.len() == SAMPLES {
        list.pop_front();
    }
    list.push_back(value);
}

#[derive(Default)]
pub struct RoundTrips(VecDeque<Duration>);

impl RoundTrips {
    /// Times one more round trip.
    pub fn took(&mut self, took: Duration) {
        remember(&mut self.0, took);
    }

    /// The slowest of the recent round trips, once [`MIN_SAMPLES`] have been timed.
    pub fn slowest(&self) -> Option<Duration> {
        self.known()?.iter().max().copied()
    }

    /// The median of the recent round trips, once [`MIN_SAMPLES`] have been timed.
    pub fn median(&self) -> Option<Duration> {
        self.quantile(2)
    }

    /// The round trip a quarter of the recent ones took as long as or longer, once
    /// [`MIN_SAMPLES`] have been timed: one slow outlier does not move it.
    pub fn upper_quartile(&self) -> Option<Duration> {
        self.quantile(4)
    }

    /// The round trip about `1 / of` of the recent ones took as long as or longer.
    fn quantile(&self, of: usize) -> Option<Duration> {
        let mut sorted: Vec<Duration> = self.known()?.iter().copied().collect();
        sorted.sort_unstable();
        sorted.get(sorted.len() * (of - 1) / of).copied()
    }

    fn known(&self) -> Option<&VecDeque<Duration>> {
        (self.0.len() >= MIN_SAMPLES).then_some(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_recent_round_trips_are_known_once_enough_are_timed() {
        let mut trips = RoundTrips::default();
        for _ in 0..MIN_SAMPLES - 1 {
            trips.took(2 * MS);
        }
        assert_eq!((trips.slowest(), trips.median()), (None, None));
        trips.took(900 * MS);
        assert_eq!(
            (trips.slowest(), trips.median(), trips.upper_quartile()),
            (Some(900 * MS), Some(2 * MS), Some(2 * MS))
        );
        trips.took(700 * MS);
        trips.took(800 * MS);
        assert_eq!(trips.upper_quartile(), Some(700 * MS), "a quarter as slow");
        for _ in 0..SAMPLES {
            trips.took(100 * MS);
        }
        assert_eq!(trips.slowest(), Some(100 * MS), "the old ones forgotten");
    }
}
