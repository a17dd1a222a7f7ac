//! Checks of the probe's own network, made right after a step fails.
//!
//! A lookup that times out may be a censor's silence or a resolver that is down; a
//! connect that times out may be a blackhole, or a link that dropped everything for a
//! moment, or a NAT table that is full. Censored Planet tells them apart by sandwiching
//! every test between control tests; we check after a failure: a name under the
//! canary's looked up through the same resolver, with the same record type, or the
//! canary connected to. If the check fails too, the failure was
//! the probe's own. Failures that end at about the same time share one check, so that a
//! dead link costs one more timeout, not one per target. And as steps are tried again
//! after a silence, the link is pulsed (connects to the canary made at once): a link
//! that was down during a step's last try and came back before its check shows there.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OnceCell};
use tokio::time::Instant;

use crate::facts::{Burst, Check, QueryType};

type Slot = Option<(Instant, Arc<OnceCell<Check>>)>;
/// Pulses of the link: when each began, and once done, how it fared and when it ended.
type Pulses = Arc<Mutex<VecDeque<(Instant, Option<(Burst, Instant)>)>>>;

#[derive(Default)]
pub struct Checks {
    network: Mutex<Slot>,
    /// By resolver, as configured, and record type.
    resolvers: Mutex<HashMap<(String, QueryType), Slot>>,
    /// The pulses of the link (see [`Checks::pulse`]), shared with the tasks that make
    /// them.
    pulses: Pulses,
    /// Told each time a pulse has fared.
    fared: Arc<Notify>,
}

/// How long the pulses are kept: longer than any step's last try.
const PULSES_KEPT: Duration = Duration::from_secs(60);

/// A pulse begun, to be told how it fared.
pub struct Pulse {
    pulses: Pulses,
    fared: Arc<Notify>,
    began: Instant,
}

impl Pulse {
    pub fn fared(self, burst: Burst) {
        let mut pulses = self.pulses.lock().expect("checks lock poisoned");
        if let Some(pulse) = pulses.iter_mut().find(|(began, _)| *began == self.began) {
            pulse.1 = Some((burst, Instant::now()));
        }
        self.fared.notify_waiters();
    }
}

impl Checks {
    /// The network check to share with a failure: one begun at `after` or since, or a
    /// new one (empty: whoever gets it first makes it).
    pub fn network(&self, after: Instant) -> Arc<OnceCell<Check>> {
        share(
            &mut self.network.lock().expect("checks lock poisoned"),
            after,
        )
    }

    /// A pulse of the link to begin now, as a step is tried again after a silence: none
    /// where one is still going on, or began within `shared` (it tells of the link
    /// then as well).
    pub fn pulse(&self, shared: Duration) -> Option<Pulse> {
        let now = Instant::now();
        let mut pulses = self.pulses.lock().expect("checks lock poisoned");
        while pulses
            .front()
            .is_some_and(|(began, _)| now.duration_since(*began) > PULSES_KEPT)
        {
            pulses.pop_front();
        }
        if pulses
            .back()
            .is_some_and(|(began, fared)| fared.is_none() || now.duration_since(*began) < shared)
        {
            return None;
        }
        pulses.push_back((now, None));
        Some(Pulse {
            pulses: self.pulses.clone(),
            fared: self.fared.clone(),
            began: now,
        })
    }

    /// Returns once the pulses begun by `until` have fared: one still going on as a
    /// step failed was made during its last try, and tells of it as much as one over
    /// (a pulse begun as the link came back, a second before the failure, may still
    /// wait on a connect lost then). A pulse's connects have a deadline, so this
    /// ends; the caller bounds it all the same.
    pub async fn pulses_over(&self, until: Instant) {
        loop {
            let notified = self.fared.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let going_on = self
                .pulses
                .lock()
                .expect("checks lock poisoned")
                .iter()
                .any(|(began, fared)| *began <= until && fared.is_none());
            if !going_on {
                return;
            }
            notified.await;
        }
    }

    /// Of the pulses done that were made from `since` to `until`, begun in that span or
    /// still going on as it began, the one answered least. A pulse going on when a step
    /// is tried again is that try's too, however long before it began: no other is made
    /// meanwhile (see [`Checks::pulse`]).
    pub fn worst_pulse(&self, since: Instant, until: Instant) -> Option<Burst> {
        let pulses = self.pulses.lock().expect("checks lock poisoned");
        pulses
            .iter()
            .filter(|(began, _)| *began <= until)
            .filter_map(|(began, fared)| {
                let (burst, ended) = (*fared)?;
                (*began >= since || ended >= since).then_some(burst)
            })
            .min_by_key(|fared| fared.answered)
    }

    /// The same for a resolver's check with one record type.
    pub fn resolver(
        &self,
        resolver: &str,
        qtype: QueryType,
        after: Instant,
    ) -> Arc<OnceCell<Check>> {
        let mut resolvers = self.resolvers.lock().expect("checks lock poisoned");
        let slot = resolvers.entry((resolver.to_string(), qtype)).or_default();
        share(slot, after)
    }
}

fn share(slot: &mut Slot, after: Instant) -> Arc<OnceCell<Check>> {
    match slot {
        Some((began, cell)) if *began >= after => cell.clone(),
        _ => {
            let cell = Arc::new(OnceCell::new());
            *slot = Some((Instant::now(), cell.clone()));
            cell
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn failures_share_a_check_begun_after_them() {
        let checks = Checks::default();
        let first_failure = Instant::now();
        let check = checks.network(first_failure);
        assert!(Arc::ptr_eq(&check, &checks.network(first_failure)));
        // A failure that began after the check did cannot be vouched for by it.
        std::thread::sleep(Duration::from_millis(5));
        let later = checks.network(Instant::now());
        assert!(!Arc::ptr_eq(&check, &later));
        // Each resolver has its own.
        let a = checks.resolver("udp://192.0.2.1:53", QueryType::A, first_failure);
        let b = checks.resolver("udp://192.0.2.2:53", QueryType::A, first_failure);
        assert!(!Arc::ptr_eq(&a, &b));
        let aaaa = checks.resolver("udp://192.0.2.1:53", QueryType::Aaaa, first_failure);
        assert!(!Arc::ptr_eq(&a, &aaaa));
    }

    #[test]
    fn a_pulse_is_shared_for_a_while_and_the_worst_of_a_span_is_told() {
        let checks = Checks::default();
        let step_began = Instant::now();
        let shared = Duration::from_millis(50);
        let fared = |made, answered| Burst { made, answered };
        let first = checks.pulse(shared).unwrap();
        // One still going on: none to make.
        std::thread::sleep(shared);
        assert!(checks.pulse(shared).is_none());
        first.fared(fared(6, 0));
        // One begun within `shared`: none to make.
        assert!(checks.pulse(Duration::from_secs(60)).is_none());
        std::thread::sleep(shared);
        checks.pulse(shared).unwrap().fared(fared(6, 4));
        let now = Instant::now();
        assert_eq!(checks.worst_pulse(step_began, now), Some(fared(6, 0)));
        // A span after the link's bad moment is not told of it; nor one before a pulse.
        assert_eq!(checks.worst_pulse(now, now), None);
        assert_eq!(checks.worst_pulse(step_began, step_began), None);
    }

    /// A step that fails while a pulse is still going on waits for it (a pulse begun as
    /// the link came back may still wait on a connect lost then), and only for those
    /// begun by then.
    #[tokio::test]
    async fn a_pulse_going_on_as_a_step_failed_is_waited_for() {
        let checks = Arc::new(Checks::default());
        let pulse = checks.pulse(Duration::ZERO).unwrap();
        let failed = Instant::now();
        let waiting = tokio::spawn({
            let checks = checks.clone();
            async move { checks.pulses_over(failed).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the pulse has not fared yet");
        // One begun after the failure is not waited for.
        std::thread::sleep(Duration::from_millis(5));
        checks
            .pulses
            .lock()
            .unwrap()
            .push_back((Instant::now(), None));
        pulse.fared(Burst {
            made: 6,
            answered: 0,
        });
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("over once the pulse fared")
            .unwrap();
    }

    /// A pulse still going on as a step is tried again stands for the try, however long
    /// before it began: no other pulse is made meanwhile.
    #[test]
    fn a_pulse_going_on_as_a_try_began_is_told_of_it() {
        let checks = Checks::default();
        let shared = Duration::from_millis(10);
        let pulse = checks.pulse(shared).unwrap();
        std::thread::sleep(shared * 3);
        let try_began = Instant::now();
        assert!(checks.pulse(shared).is_none(), "one is still going on");
        std::thread::sleep(shared);
        pulse.fared(Burst {
            made: 6,
            answered: 0,
        });
        let now = Instant::now();
        assert_eq!(
            checks.worst_pulse(try_began, now),
            Some(Burst {
                made: 6,
                answered: 0
            })
        );
        // One over before the span began is not.
        std::thread::sleep(shared);
        assert_eq!(checks.worst_pulse(Instant::now(), Instant::now()), None);
    }
}
