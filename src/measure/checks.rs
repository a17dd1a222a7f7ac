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
//!
//! Connects are checked and pulsed over their own address family: IPv6 fails apart from
//! IPv4 (a tunnel, a router's prefix lost mid-run), and a check over IPv4 would vouch
//! for a link an IPv6 connect never had.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OnceCell};
use tokio::time::Instant;

use crate::facts::{Burst, Check, QueryType};

type Slot = Option<(Instant, Arc<OnceCell<Check>>)>;
/// How one family's connects of a pulse fared, and when they were over.
type Fared = Option<(Burst, Instant)>;
/// Pulses of the link: when each began, and once done, how each family's connects fared
/// and when they ended.
type Pulses = Arc<Mutex<VecDeque<(Instant, [Fared; 2])>>>;

/// An address family, which the probe's link may carry or not apart from the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub const BOTH: [Family; 2] = [Family::Ipv4, Family::Ipv6];

    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Default)]
pub struct Checks {
    /// By the family of the failed step's address.
    network: [Mutex<Slot>; 2],
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
    /// How its connects over `family` fared.
    pub fn fared(&self, family: Family, burst: Burst) {
        let mut pulses = self.pulses.lock().expect("checks lock poisoned");
        if let Some(pulse) = pulses.iter_mut().find(|(began, _)| *began == self.began) {
            pulse.1[family.index()] = Some((burst, Instant::now()));
        }
        self.fared.notify_waiters();
    }
}

impl Checks {
    /// The network check over `family` to share with a failure: one begun at `after`
    /// or since, or a new one (empty: whoever gets it first makes it).
    pub fn network(&self, family: Family, after: Instant) -> Arc<OnceCell<Check>> {
        share(
            &mut self.network[family.index()]
                .lock()
                .expect("checks lock poisoned"),
            after,
        )
    }

    /// A pulse of the link to begin now, as a step is tried again after a silence: none
    /// where one's IPv4 connects are still going on, or one began within `shared` (it
    /// tells of the link then as well). Its IPv6 connects to a dead path wait out their
    /// deadline, and must not hold IPv4's next pulse back.
    pub fn pulse(&self, shared: Duration) -> Option<Pulse> {
        let now = Instant::now();
        let mut pulses = self.pulses.lock().expect("checks lock poisoned");
        while pulses
            .front()
            .is_some_and(|(began, _)| now.duration_since(*began) > PULSES_KEPT)
        {
            pulses.pop_front();
        }
        if pulses.back().is_some_and(|(began, fared)| {
            fared[Family::Ipv4.index()].is_none() || now.duration_since(*began) < shared
        }) {
            return None;
        }
        pulses.push_back((now, [None, None]));
        Some(Pulse {
            pulses: self.pulses.clone(),
            fared: self.fared.clone(),
            began: now,
        })
    }

    /// Returns once the pulses begun by `until` have fared over `family`: one still going on as a
    /// step failed was made during its last try, and tells of it as much as one over
    /// (a pulse begun as the link came back, a second before the failure, may still
    /// wait on a connect lost then). A pulse's connects have a deadline, so this
    /// ends; the caller bounds it all the same.
    pub async fn pulses_over(&self, family: Family, until: Instant) {
        loop {
            let notified = self.fared.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let going_on = self
                .pulses
                .lock()
                .expect("checks lock poisoned")
                .iter()
                .any(|(began, fared)| *began <= until && fared[family.index()].is_none());
            if !going_on {
                return;
            }
            notified.await;
        }
    }

    /// Of the pulses done over `family` that were made from `since` to `until`, begun in
    /// that span or still going on as it began, the one answered least. A pulse going on
    /// when a step is tried again is that try's too, however long before it began: no
    /// other is made meanwhile (see [`Checks::pulse`]).
    pub fn worst_pulse(&self, family: Family, since: Instant, until: Instant) -> Option<Burst> {
        let pulses = self.pulses.lock().expect("checks lock poisoned");
        pulses
            .iter()
            .filter(|(began, _)| *began <= until)
            .filter_map(|(began, fared)| {
                let (burst, ended) = fared[family.index()]?;
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
        let check = checks.network(Family::Ipv4, first_failure);
        assert!(Arc::ptr_eq(
            &check,
            &checks.network(Family::Ipv4, first_failure)
        ));
        // Each family has its own.
        let ipv6 = checks.network(Family::Ipv6, first_failure);
        assert!(!Arc::ptr_eq(&check, &ipv6));
        // A failure that began after the check did cannot be vouched for by it.
        std::thread::sleep(Duration::from_millis(5));
        let later = checks.network(Family::Ipv4, Instant::now());
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
        first.fared(Family::Ipv4, fared(6, 0));
        // One begun within `shared`: none to make.
        assert!(checks.pulse(Duration::from_secs(60)).is_none());
        std::thread::sleep(shared);
        // Its IPv6 connects still going on (a dead path) do not hold the next back.
        let second = checks.pulse(shared).unwrap();
        first.fared(Family::Ipv6, fared(6, 6));
        second.fared(Family::Ipv4, fared(6, 4));
        second.fared(Family::Ipv6, fared(6, 5));
        let now = Instant::now();
        let worst = |family, since| checks.worst_pulse(family, since, now);
        assert_eq!(worst(Family::Ipv4, step_began), Some(fared(6, 0)));
        // Each family is told of its own connects.
        assert_eq!(worst(Family::Ipv6, step_began), Some(fared(6, 5)));
        // A span after the link's bad moment is not told of it; nor one before a pulse.
        assert_eq!(worst(Family::Ipv4, now), None);
        let before = checks.worst_pulse(Family::Ipv4, step_began, step_began);
        assert_eq!(before, None);
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
            async move { checks.pulses_over(Family::Ipv6, failed).await }
        });
        let unanswered = Burst {
            made: 6,
            answered: 0,
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the pulse has not fared yet");
        pulse.fared(Family::Ipv4, unanswered);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "not over IPv6");
        // One begun after the failure is not waited for.
        std::thread::sleep(Duration::from_millis(5));
        checks
            .pulses
            .lock()
            .unwrap()
            .push_back((Instant::now(), [None, None]));
        pulse.fared(Family::Ipv6, unanswered);
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
        let unanswered = Burst {
            made: 6,
            answered: 0,
        };
        pulse.fared(Family::Ipv4, unanswered);
        let now = Instant::now();
        let worst = checks.worst_pulse(Family::Ipv4, try_began, now);
        assert_eq!(worst, Some(unanswered));
        // One over before the span began is not.
        std::thread::sleep(shared);
        let later = Instant::now();
        assert_eq!(checks.worst_pulse(Family::Ipv4, later, later), None);
    }
}
