//! When blocking of a service started or stopped on a network: a two-sided CUSUM over
//! the daily share of its targets found blocked there (Page's cumulative sum, as
//! Basseville and Nikiforov set it out, and as OONI's pipeline runs it per network).
//!
//! Why a cumulative sum and not a threshold on each day: a volunteer's day is a handful
//! of runs on a bad link, and one day's share jumps with loss, an outage, a resolver
//! down. The sum moves only with evidence that keeps coming: each day adds how far its
//! share lies past the midpoint between the two levels, a day at the midpoint adds
//! nothing, and a lone bad day decays again on the next good ones. A change is declared
//! once the sum passes what `delay` days of a full switch add: `delay × (1 − m)` towards
//! blocked, `delay × m` towards open, m the midpoint. So a full switch (share 0 to 1, or
//! back) is seen after `delay` days of data either way, a weaker one later, and fewer
//! days of it never.
//!
//! The two levels are fixed beforehand, not learnt: μ₀ = 0 (open: nothing blocked) and
//! μ₁ = 0.7 (blocked: most targets, allowing for a service's domains that a censor
//! leaves alone). The state a series starts in is found the same way, silently: a
//! network blocked since its first day has no change, it is blocked from the start.
//! Days without a decided target are no data, not days without blocking; after a gap
//! the sums decay (they halve every two days of silence) so that what was gathered
//! before a long gap does not alone decide what comes after it.

use chrono::NaiveDate;

/// The share of blocked targets expected while a service is open.
const OPEN_LEVEL: f64 = 0.0;
/// The share expected while it is blocked.
const BLOCKED_LEVEL: f64 = 0.7;
/// Days of silence that halve the sums.
const GAP_HALFLIFE_DAYS: f64 = 2.0;

/// One day of a series: the share of its decided targets found blocked, over how many.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Day {
    pub day: NaiveDate,
    pub share: f64,
    pub targets: u64,
}

/// Whether a service is reachable on a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    Blocked,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Blocked => "blocked",
        }
    }
}

/// A change of state: blocking started (to `Blocked`) or stopped (to `Open`).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub to: State,
    /// The first day of the evidence that decided it: when it most likely happened.
    pub since: NaiveDate,
    /// The day the evidence became enough.
    pub detected: NaiveDate,
    /// The mean share before `since` (since the last change or the start of the data).
    pub before: f64,
    /// The mean share from `since` to `detected`.
    pub after: f64,
}

impl Change {
    pub fn what(&self) -> &'static str {
        match self.to {
            State::Blocked => "started",
            State::Open => "stopped",
        }
    }
}

/// What a series says: the state it was first found in (and from when), its changes
/// in order, and its state at the end (None: never decided either way).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    pub first: Option<(State, NaiveDate)>,
    pub changes: Vec<Change>,
    pub now: Option<State>,
}

/// The detector's settings.
#[derive(Debug, Clone, Copy)]
pub struct Detector {
    /// Days of data in which a full switch (share 0 to 1 or back) is detected; more
    /// days ask for more evidence and catch fewer short blips.
    pub delay_days: f64,
}

impl Default for Detector {
    fn default() -> Detector {
        Detector { delay_days: 3.0 }
    }
}

/// A cumulative sum, and the day it last rose from zero.
#[derive(Debug, Default)]
struct Sum {
    value: f64,
    since: Option<NaiveDate>,
}

impl Sum {
    fn add(&mut self, step: f64, day: NaiveDate) {
        self.value = (self.value + step).max(0.0);
        match self.value > 0.0 {
            true => {
                self.since.get_or_insert(day);
            }
            false => self.since = None,
        }
    }

    /// Shrinks the sum by `factor`; what little is left of it after a long silence
    /// (under `floor`) is forgotten, with the day it began.
    fn decay(&mut self, factor: f64, floor: f64) {
        self.value *= factor;
        if self.value < floor {
            *self = Sum::default();
        }
    }
}

/// Midway between the two levels: a day's share above it is evidence of blocking, below
/// it of none.
const MIDPOINT: f64 = (OPEN_LEVEL + BLOCKED_LEVEL) / 2.0;

impl Detector {
    /// What the sum towards `to` must reach: `delay_days` of a full switch there.
    fn threshold(&self, to: State) -> f64 {
        self.delay_days
            * match to {
                State::Blocked => 1.0 - MIDPOINT,
                State::Open => MIDPOINT,
            }
    }

    /// The history of a series of days, in order of day. Days without a decided
    /// target are left out.
    pub fn run(&self, days: &[Day]) -> History {
        let days: Vec<&Day> = days.iter().filter(|d| d.targets > 0).collect();
        let midpoint = MIDPOINT;
        let mut history = History::default();
        // Towards blocked (rises with shares above the midpoint), towards open.
        let (mut up, mut down) = (Sum::default(), Sum::default());
        // Where the current state's days begin, for the mean share before a change.
        let mut segment = 0;
        let mut last: Option<NaiveDate> = None;
        for (i, d) in days.iter().enumerate() {
            if let Some(previous) = last {
                let gap = (d.day - previous).num_days() as f64;
                if gap > 1.0 {
                    let factor = 0.5f64.powf((gap - 1.0) / GAP_HALFLIFE_DAYS);
                    let floor = self.threshold(State::Open) / 20.0;
                    up.decay(factor, floor);
                    down.decay(factor, floor);
                }
            }
            last = Some(d.day);
            if history.now != Some(State::Blocked) {
                up.add(d.share - midpoint, d.day);
            }
            if history.now != Some(State::Open) {
                down.add(midpoint - d.share, d.day);
            }
            // Within rounding: `delay` days of a full switch make exactly the threshold.
            let crossed = |sum: &Sum, to| sum.value >= self.threshold(to) - 1e-9;
            let to = match (crossed(&up, State::Blocked), crossed(&down, State::Open)) {
                (true, _) => State::Blocked,
                (_, true) => State::Open,
                _ => continue,
            };
            let (sum, from) = match to {
                State::Blocked => (&up, State::Open),
                State::Open => (&down, State::Blocked),
            };
            let since = sum.since.unwrap_or(d.day);
            let start = days.iter().position(|x| x.day >= since).unwrap_or(i);
            // The first state found is where the series began, unless the days before
            // its evidence leaned the other way, by half what a change takes at least:
            // then those days were the other state, and this is a change.
            let leaned: f64 = days[..start]
                .iter()
                .map(|x| match from {
                    State::Open => midpoint - x.share,
                    State::Blocked => x.share - midpoint,
                })
                .sum();
            let changed = match history.now {
                Some(_) => true,
                None if leaned >= self.threshold(from) / 2.0 => {
                    history.first = Some((from, days[0].day));
                    true
                }
                None => {
                    history.first = Some((to, since));
                    // The days before its evidence are no state's: a later change's
                    // share before it is of this state's days.
                    segment = start;
                    false
                }
            };
            if changed {
                history.changes.push(Change {
                    to,
                    since,
                    detected: d.day,
                    before: mean(&days[segment..start]),
                    after: mean(&days[start..=i]),
                });
                segment = start;
            }
            history.now = Some(to);
            (up, down) = (Sum::default(), Sum::default());
        }
        history
    }
}

/// The mean share of `days`, each day weighed alike; 0 for none.
fn mean(days: &[&Day]) -> f64 {
    match days.len() {
        0 => 0.0,
        n => days.iter().map(|d| d.share).sum::<f64>() / n as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series from day 1 of November, a share a day (None: no data that day).
    fn series(shares: &[Option<f64>]) -> Vec<Day> {
        shares
            .iter()
            .enumerate()
            .filter_map(|(i, share)| {
                Some(Day {
                    day: day(i as u32 + 1),
                    share: (*share)?,
                    targets: 10,
                })
            })
            .collect()
    }

    /// Day `n` of the series, the first of November being 1.
    fn day(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 1).expect("a day") + chrono::Days::new(u64::from(n) - 1)
    }

    fn run(shares: &[Option<f64>]) -> History {
        Detector::default().run(&series(shares))
    }

    const O: Option<f64> = Some(0.0);
    const B: Option<f64> = Some(1.0);

    #[test]
    fn a_switch_is_found_with_the_day_it_began() {
        let h = run(&[O, O, O, O, B, B, B, B]);
        assert_eq!(h.first, Some((State::Open, day(1))));
        assert_eq!(h.now, Some(State::Blocked));
        let [change] = &h.changes[..] else {
            panic!("{h:?}")
        };
        assert_eq!(
            (change.to, change.since, change.detected),
            (State::Blocked, day(5), day(7))
        );
        assert_eq!((change.before, change.after), (0.0, 1.0));
    }

    #[test]
    fn blocking_that_stops_is_found_too() {
        let h = run(&[O, O, O, B, B, B, B, O, O, O]);
        let what: Vec<_> = h.changes.iter().map(|c| (c.what(), c.since)).collect();
        assert_eq!(what, [("started", day(4)), ("stopped", day(8))]);
        assert_eq!(h.now, Some(State::Open));
    }

    #[test]
    fn a_series_blocked_from_the_start_has_no_change() {
        let h = run(&[B, B, B, B, B]);
        assert_eq!(h.first, Some((State::Blocked, day(1))));
        assert!(h.changes.is_empty(), "{h:?}");
        // One open day before is too little to say it was open.
        let h = run(&[O, B, B, B]);
        assert_eq!(h.first, Some((State::Blocked, day(2))));
        assert!(h.changes.is_empty(), "{h:?}");
    }

    #[test]
    fn fewer_days_than_the_delay_are_no_change() {
        // Two blocked days (an outage a probe-only run calls anomaly), either way round.
        let h = run(&[O, O, O, B, B, O, O, O]);
        assert!(h.changes.is_empty(), "{h:?}");
        let h = run(&[B, B, B, B, O, O, B, B, B]);
        assert!(h.changes.is_empty(), "{h:?}");
    }

    #[test]
    fn the_share_before_a_change_is_of_its_state_alone() {
        // One open day, then blocked (no change: one day is no state), then open again.
        let h = run(&[O, B, B, B, B, O, O, O]);
        assert_eq!(h.first, Some((State::Blocked, day(2))));
        let [change] = &h.changes[..] else {
            panic!("{h:?}")
        };
        assert_eq!((change.what(), change.since), ("stopped", day(6)));
        assert_eq!((change.before, change.after), (1.0, 0.0));
    }

    #[test]
    fn lone_bad_days_and_noise_are_no_change() {
        // An outage day now and then, and a steady low share (a flaky target).
        let h = run(&[
            O,
            O,
            B,
            O,
            O,
            O,
            B,
            O,
            Some(0.3),
            Some(0.2),
            Some(0.3),
            O,
            B,
            O,
        ]);
        assert_eq!(h.now, Some(State::Open));
        assert!(h.changes.is_empty(), "{h:?}");
    }

    #[test]
    fn a_partial_block_that_lasts_is_found_later() {
        let mut shares = vec![O; 4];
        shares.extend([Some(0.6); 8]);
        let h = run(&shares);
        let [change] = &h.changes[..] else {
            panic!("{h:?}")
        };
        assert_eq!(change.since, day(5));
        assert!(change.detected > day(6), "{change:?}");
    }

    #[test]
    fn days_without_data_are_no_data_and_a_long_gap_forgets() {
        // One blocked day, a month of silence, blocked days again: blocking began after
        // the silence, not with that old day; no day of the gap counts either way.
        let mut shares = vec![O, O, O, O, B];
        shares.extend([None; 30]);
        shares.extend([B, B, B]);
        let h = run(&shares);
        let [change] = &h.changes[..] else {
            panic!("{h:?}")
        };
        assert_eq!((change.since, change.detected), (day(36), day(38)));
        // A gap inside a block is no reason to end it.
        let h = run(&[O, O, O, B, B, B, None, None, B, B]);
        assert_eq!(h.changes.len(), 1, "{h:?}");
        assert_eq!(h.now, Some(State::Blocked));
    }

    #[test]
    fn too_little_data_decides_nothing() {
        assert_eq!(run(&[B]), History::default());
        assert_eq!(run(&[]), History::default());
    }
}
