//! What the probe's other connects, or lookups, met while a step failed unanswered.
//!
//! A network check reaches the canary once, after the failure; a network that drops
//! most new connections (a full NAT table, a firewall limiting new flows, a saturated
//! link) lets that one through now and then, and a target's every try goes unanswered
//! just as often. The connects the run made meanwhile, to every address that answered,
//! tell the two apart: on a sound network they are answered at their first try, on
//! such a one they need several. So do a resolver's lookups meanwhile, of names it
//! answered, for a resolver that drops most queries: a censor that drops the queries
//! naming a target leaves the others' answered at their first copy. Their count goes
//! into the check (`facts::Meanwhile`), for the analysis to judge.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::facts::Meanwhile;

/// How long an answered connect is remembered: longer than a step's failure lasts at
/// the usual deadlines (two rounds of connects or of handshakes, and their check); a
/// longer one is judged on its last two minutes.
const KEPT: Duration = Duration::from_secs(120);

/// The fewest tries a share is counted over: where those made meanwhile are fewer, the
/// latest before them count too. A short failure on a slow network sees a few dozen,
/// over which a link losing one round trip in four and one losing one in two look
/// alike (see `analyse::explain::failing`); what fails a network (loss, a full NAT
/// table, a limit on new flows) lasts longer than a step's failure.
const ENOUGH: u32 = 100;

/// Exchanges answered within this of the first of them are kept as one entry: one by
/// one, the two minutes of a run at a thousand connects a second took 3 MB a list.
const GRAIN: Duration = Duration::from_millis(10);

/// The run's answered exchanges of one kind (connects, or one resolver's lookups) of
/// the last `KEPT`, in the order they were answered, counted by `GRAIN`.
#[derive(Debug, Default)]
pub struct Exchanges {
    answered: Mutex<VecDeque<Answered>>,
    /// When an exchange last took more than one try.
    made_again: Mutex<Option<Instant>>,
}

/// The exchanges answered from `at` to `GRAIN` after it.
#[derive(Debug)]
struct Answered {
    at: Instant,
    counts: Meanwhile,
}

impl Exchanges {
    /// An exchange answered now, after `tries` tries.
    pub fn answered(&self, tries: u32) {
        self.answered_over(tries, 0);
    }

    /// An exchange answered now, after `tries` tries that met about `packets` packets
    /// in all (see `Meanwhile::packets`).
    pub fn answered_over(&self, tries: u32, packets: u32) {
        if tries > 1 {
            *self.made_again.lock().expect("exchanges lock poisoned") = Some(Instant::now());
        }
        let mut answered = self.answered.lock().expect("exchanges lock poisoned");
        // Taken under the lock, so that the list stays in the order of the times.
        let now = Instant::now();
        while answered
            .front()
            .is_some_and(|a| now.duration_since(a.at) > KEPT)
        {
            answered.pop_front();
        }
        let counts = Meanwhile {
            answered: 1,
            tries,
            packets,
        };
        match answered.back_mut() {
            Some(last) if now.duration_since(last.at) < GRAIN => {
                last.counts = last.counts.and(counts);
            }
            _ => answered.push_back(Answered { at: now, counts }),
        }
    }

    /// Whether an exchange was answered in the last `KEPT`.
    pub fn any_answered(&self) -> bool {
        let answered = self.answered.lock().expect("exchanges lock poisoned");
        answered
            .back()
            .is_some_and(|last| last.at.elapsed() <= KEPT)
    }

    /// Whether an exchange of the last `KEPT` took more than one try.
    pub fn any_made_again(&self) -> bool {
        let made_again = self.made_again.lock().expect("exchanges lock poisoned");
        made_again.is_some_and(|at| at.elapsed() <= KEPT)
    }

    /// The exchanges answered since `since`, and the tries they took; and, where those
    /// took fewer than a hundred tries (`ENOUGH`), the latest before, as many as make it up.
    /// Taken by when they were answered: of the exchanges begun before `since`, only the
    /// slow ones, which took more tries, fall after it, so the share of tries unanswered
    /// leans toward loss: the careful side (half, in a CI run over a link whose round
    /// trips fail 28 % of the time).
    pub fn since(&self, since: Instant) -> (Meanwhile, Option<Meanwhile>) {
        let answered = self.answered.lock().expect("exchanges lock poisoned");
        let none = Meanwhile::default();
        let (mut meanwhile, mut before) = (none, none);
        for a in answered.iter().rev() {
            if a.at >= since {
                meanwhile = meanwhile.and(a.counts);
                continue;
            }
            let wanted = ENOUGH.saturating_sub(meanwhile.and(before).tries);
            if wanted == 0 {
                break;
            }
            before = before.and(share(a.counts, wanted));
        }
        (meanwhile, (before.answered > 0).then_some(before))
    }
}

/// `counts` cut down to `tries` tries at most, its answers and packets in proportion: a
/// grain before a step may hold many more than make up the hundred, and a burst of them
/// must not outweigh what the others before it met.
fn share(counts: Meanwhile, tries: u32) -> Meanwhile {
    if counts.tries <= tries {
        return counts;
    }
    let part = |n: u32| {
        let n = (u64::from(n) * u64::from(tries) + u64::from(counts.tries) / 2)
            / u64::from(counts.tries);
        u32::try_from(n).expect("a part of a u32")
    };
    Meanwhile {
        answered: part(counts.answered),
        tries,
        packets: part(counts.packets),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(answered: u32, tries: u32) -> Meanwhile {
        Meanwhile {
            answered,
            tries,
            packets: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn counts_the_exchanges_answered_since_and_enough_before() {
        let exchanges = Exchanges::default();
        exchanges.answered(1);
        assert!(!exchanges.any_made_again(), "one try: none made again");
        for _ in 0..ENOUGH {
            tokio::time::advance(GRAIN).await;
            exchanges.answered(2);
        }
        assert!(exchanges.any_made_again());
        tokio::time::advance(GRAIN).await;
        let since = Instant::now();
        exchanges.answered(3);
        exchanges.answered(1);
        // Four tries meanwhile: the latest 48 before make the hundred.
        assert_eq!(exchanges.since(since), (counts(2, 4), Some(counts(48, 96))));
        for _ in 0..ENOUGH {
            exchanges.answered(1);
        }
        assert_eq!(
            exchanges.since(since),
            (counts(102, 104), None),
            "enough meanwhile: none before"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn exchanges_within_a_grain_are_kept_as_one_and_forgotten_after_kept() {
        let exchanges = Exchanges::default();
        let began = Instant::now();
        for _ in 0..10_000 {
            exchanges.answered(1);
        }
        tokio::time::advance(GRAIN / 2).await;
        exchanges.answered_over(2, 5);
        let entries = || exchanges.answered.lock().unwrap().len();
        assert_eq!(entries(), 1, "a grain's exchanges are one entry");
        let all = Meanwhile {
            answered: 10_001,
            tries: 10_002,
            packets: 5,
        };
        assert_eq!(exchanges.since(began), (all, None));
        // A grain counts from its first exchange, not its latest.
        tokio::time::advance(GRAIN / 2).await;
        let since = Instant::now();
        exchanges.answered(1);
        assert_eq!(entries(), 2, "the next grain is an entry of its own");
        assert_eq!(
            exchanges.since(since),
            (counts(1, 1), Some(counts(99, 99))),
            "of a grain before, no more than make up the hundred"
        );
        tokio::time::advance(GRAIN / 2).await;
        let within = Instant::now();
        exchanges.answered(1);
        assert_eq!(
            exchanges.since(within),
            (counts(0, 0), Some(counts(100, 100))),
            "a grain begun before a step is all before it"
        );
        tokio::time::advance(KEPT + GRAIN).await;
        exchanges.answered(1);
        assert_eq!(entries(), 1, "those older than KEPT are let go");
    }

    #[test]
    fn a_share_keeps_the_proportions() {
        let counts = Meanwhile {
            answered: 30,
            tries: 60,
            packets: 180,
        };
        let half = Meanwhile {
            answered: 15,
            tries: 30,
            packets: 90,
        };
        assert_eq!(share(counts, 30), half);
        assert_eq!(share(counts, 100), counts, "fewer than wanted: all of it");
    }
}
