//! The control's recent measurements, shared between requests.
//!
//! Many probes ask about the same targets (a country's probes measure the same test
//! list), often within seconds of each other. A target named the same way, with the same
//! addresses and control SNI, measured anew for each of them would cost the control the
//! same handshakes many times over, and the servers measured a burst of them, for facts
//! that cannot differ but by the seconds between them. So a measurement begun less than
//! [`FRESH`] ago answers every request for the same target, and one still in progress is
//! waited for rather than made again (single flight). Each measurement keeps the time it
//! was made (`measured_at`), so an answer shared this way still says when its facts were
//! true. A measurement cut off (by its request's deadline, or dropped with its request)
//! is not kept: a request waiting for it makes it itself, and a later one anew.
//!
//! A request may ask for younger facts than [`FRESH`] (`max_age`): a probe judges none
//! begun before it began the target itself, unless they read `ok` (the server's
//! `older=mark`). A site that went down since would otherwise be refused to the probe
//! and reached by the control's older facts: `blocked`, for an outage.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::facts::Measurement;
use crate::input::targets::Target;
use crate::measure::ech::EchPlan;

/// How long a measurement answers for its target: seconds, as long as a probe's request
/// may already wait at a busy control (a 503 and its retries), and short beside how long
/// a site stays down or blocked.
pub const FRESH: Duration = Duration::from_secs(10);

/// Targets remembered at once, evicting the oldest when full: a few seconds of
/// measurements at full load, in tens of MiB (a URL's facts are a few KiB).
pub const CAPACITY: usize = 4096;

/// What makes two requested targets the same measurement: all that the control measures
/// of it, as the measurer is given it (one made with the ECH comparison also answers a
/// request that leaves it for later: see [`Recent::get`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// Named in every measurement's facts.
    service: Arc<str>,
    /// The target as the measurer names it in its facts (a URL normalised).
    target: String,
    tls_ports: Arc<[u16]>,
    tcp_ports: Arc<[u16]>,
    quic_ports: Arc<[u16]>,
    /// The probe's addresses that are measured, in its order (the first that answers
    /// is fetched from).
    addresses: Vec<IpAddr>,
    control_sni: Option<String>,
    ech: EchPlan,
}

impl Key {
    pub fn new(
        target: &Target,
        addresses: &[IpAddr],
        control_sni: Option<&str>,
        ech: EchPlan,
    ) -> Key {
        Key {
            service: target.service.clone(),
            target: target.to_string(),
            tls_ports: target.tls_ports.clone(),
            tcp_ports: target.tcp_ports.clone(),
            quic_ports: target.quic_ports.clone(),
            addresses: addresses.to_vec(),
            control_sni: control_sni.map(str::to_string),
            ech,
        }
    }
}

/// A target's measurements (each standing on its own, its host's DNS included).
pub type Measurements = Arc<Vec<Measurement>>;

/// One measurement of a target, made once by whichever request gets to it first.
#[derive(Clone)]
pub struct Entry {
    key: Arc<Key>,
    cell: Arc<OnceCell<Measurements>>,
    begun: Instant,
}

impl Entry {
    fn is(&self, other: &Entry) -> bool {
        Arc::ptr_eq(&self.cell, &other.cell)
    }

    /// Whether the measurement was begun before `since`.
    pub fn begun_before(&self, since: Instant) -> bool {
        self.begun < since
    }
}

pub struct Recent {
    fresh: Duration,
    capacity: usize,
    state: Mutex<State>,
}

/// The entries, and the order they were begun in, which is the order they go stale in.
/// Every entry is in both; an entry forgotten early stays in `begun` until it would
/// have gone stale, and is only let go then.
#[derive(Default)]
struct State {
    entries: HashMap<Arc<Key>, Entry>,
    begun: VecDeque<Entry>,
}

impl Recent {
    pub fn new(fresh: Duration, capacity: usize) -> Recent {
        Recent {
            fresh,
            capacity,
            state: Mutex::default(),
        }
    }

    /// The entries answering `keys` (see [`Recent::get`]) if every one was begun less
    /// than `fresh` ago, and at `since` or after when given (done or in progress); else
    /// none, and nothing is begun: a request that would measure must first get a place.
    pub fn all_begun(&self, keys: &[Key], since: Option<Instant>) -> Option<Vec<Entry>> {
        let state = self.lock(Instant::now());
        keys.iter().map(|key| state.answering(key, since)).collect()
    }

    /// The entry that answers `key` (its own, or one made with the ECH comparison for
    /// a `later` key) begun less than `fresh` ago, and at `since` or after when given,
    /// or a new one, for the caller to make. A new one takes the key's place from an
    /// entry too old for this request, which goes on answering those that hold it
    /// already.
    pub fn get(&self, key: Key, since: Option<Instant>) -> Entry {
        self.get_at(key, since, Instant::now())
    }

    fn get_at(&self, key: Key, since: Option<Instant>, now: Instant) -> Entry {
        let mut state = self.lock(now);
        if let Some(entry) = state.answering(&key, since) {
            return entry;
        }
        let entry = Entry {
            key: Arc::new(key),
            cell: Arc::default(),
            begun: now,
        };
        if self.capacity == 0 {
            return entry;
        }
        // An entry too old for this request gives its key up (it stays in `begun`).
        state.entries.remove(&entry.key);
        while state.entries.len() >= self.capacity {
            state.pop_oldest();
        }
        state.begun.push_back(entry.clone());
        state.entries.insert(entry.key.clone(), entry.clone());
        entry
    }

    /// The measurements of `entry`: made by `make` unless another request made them or
    /// is making them, in which case they are waited for. If `make` is cut off, the
    /// entry is forgotten, so that the next request for the target makes it anew (one
    /// waiting for it already makes it itself). So is one in which the control ran out
    /// of file descriptors, buffers or ports: it answers the requests that wait for
    /// it, but says nothing of the target that a request after them should be given.
    pub async fn measure(
        &self,
        entry: &Entry,
        make: impl Future<Output = Vec<Measurement>>,
    ) -> Measurements {
        entry
            .cell
            .get_or_init(|| async {
                let cut_off = Forget {
                    recent: self,
                    entry,
                };
                let measurements = Arc::new(make.await);
                if !crate::facts::ran_out(&measurements) {
                    std::mem::forget(cut_off);
                }
                measurements
            })
            .await
            .clone()
    }

    /// The state, its stale entries let go as of `now`.
    fn lock(&self, now: Instant) -> std::sync::MutexGuard<'_, State> {
        let mut state = self
            .state
            .lock()
            .expect("recent measurements lock poisoned");
        while let Some(oldest) = state.begun.front()
            && now.saturating_duration_since(oldest.begun) >= self.fresh
        {
            state.pop_oldest();
        }
        state
    }
}

/// Forgets its entry when dropped: armed while a measurement is made, and dropped only
/// if it is cut off or the control ran out of something.
struct Forget<'a> {
    recent: &'a Recent,
    entry: &'a Entry,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut state = self.recent.lock(Instant::now());
        state.remove(self.entry);
    }
}

impl State {
    /// The entry that answers `key`: its own, or for a request that leaves the ECH
    /// comparison for later, a measurement made with it (a probe that predates
    /// [`EchPlan::Later`] asks for it always): such a probe takes the comparison from
    /// the answer as from a control that predates the parameter, and during a rollout
    /// the two kinds of probes share the control's measurements. Only one made: a
    /// request waiting for one in progress would make it itself, without the
    /// comparison, were its maker cut off, and answer the others that wait without it.
    /// Only one begun at `since` or after, when given.
    fn answering(&self, key: &Key, since: Option<Instant>) -> Option<Entry> {
        let young = |entry: &&Entry| since.is_none_or(|since| entry.begun >= since);
        let own = self.entries.get(key).filter(young);
        let made_with_ech = || match key.ech {
            EchPlan::Later => self
                .entries
                .get(&Key {
                    ech: EchPlan::Always,
                    ..key.clone()
                })
                .filter(|entry| entry.cell.initialized())
                .filter(young),
            EchPlan::Always | EchPlan::Only => None,
        };
        own.or_else(made_with_ech).cloned()
    }

    fn pop_oldest(&mut self) {
        if let Some(entry) = self.begun.pop_front() {
            self.remove(&entry);
        }
    }

    /// Removes `entry`, unless its key is another entry's by now.
    fn remove(&mut self, entry: &Entry) {
        if self.entries.get(&entry.key).is_some_and(|e| e.is(entry)) {
            self.entries.remove(&entry.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::input::targets::TargetKind;

    /// Any measurement still fresh answers.
    const ANY: Option<Instant> = None;

    fn key(name: &str, addresses: &[&str], sni: Option<&str>) -> Key {
        let target = Target {
            service: "s".into(),
            kind: TargetKind::parse(name).unwrap(),
            tls_ports: vec![443].into(),
            tcp_ports: vec![80].into(),
            quic_ports: Vec::new().into(),
            asns: Vec::new().into(),
        };
        let addresses: Vec<IpAddr> = addresses.iter().map(|a| a.parse().unwrap()).collect();
        Key::new(&target, &addresses, sni, EchPlan::Always)
    }

    impl Recent {
        fn len(&self) -> usize {
            self.lock(Instant::now()).entries.len()
        }
    }

    #[test]
    fn shares_a_measurement_while_fresh_then_makes_it_anew() {
        let recent = Recent::new(Duration::from_secs(10), 16);
        let start = Instant::now();
        let a = || key("https://a.test/", &[], Some("canary.test"));
        let first = recent.get_at(a(), ANY, start);
        assert!(first.is(&recent.get_at(a(), ANY, start)));
        assert!(first.is(&recent.get_at(a(), ANY, start + Duration::from_secs(9))));
        let stale = start + Duration::from_secs(10);
        assert!(!first.is(&recent.get_at(a(), ANY, stale)));
        assert_eq!(recent.len(), 1, "the stale entry is gone");
    }

    /// A request asking for facts younger than a measurement gets one of its own, which
    /// then answers the requests after it; the older one still answers those holding it.
    #[test]
    fn a_measurement_older_than_a_request_allows_is_made_anew_for_it() {
        let recent = Recent::new(Duration::from_secs(10), 16);
        let start = Instant::now();
        let a = || key("https://a.test/", &[], Some("canary.test"));
        let old = recent.get_at(a(), ANY, start);
        let later = start + Duration::from_secs(3);
        let since = |seconds| later.checked_sub(Duration::from_secs(seconds));
        assert!(old.is(&recent.get_at(a(), since(4), later)));
        let own = recent.get_at(a(), since(2), later);
        assert!(!own.is(&old));
        assert!(own.is(&recent.get_at(a(), ANY, later)));
        assert!(own.is(&recent.get_at(a(), since(2), later + Duration::from_secs(1))));
        assert!(
            recent
                .lock(later)
                .answering(&a(), since(2))
                .is_some_and(|entry| entry.is(&own))
        );
        assert_eq!(recent.len(), 1);
    }

    #[test]
    fn what_is_measured_differently_is_not_shared() {
        let recent = Recent::new(Duration::from_secs(10), 16);
        let base = recent.get(
            key("https://a.test/", &["192.0.2.1"], Some("canary.test")),
            ANY,
        );
        for other in [
            key("https://b.test/", &["192.0.2.1"], Some("canary.test")),
            key("https://a.test/", &["192.0.2.2"], Some("canary.test")),
            key("https://a.test/", &[], Some("canary.test")),
            key("https://a.test/", &["192.0.2.1"], None),
            key("https://a.test/", &["192.0.2.1"], Some("other.test")),
            key("a.test", &["192.0.2.1"], Some("canary.test")),
        ] {
            assert!(!base.is(&recent.get(other.clone(), ANY)), "{other:?}");
        }
    }

    #[test]
    fn holds_at_most_its_capacity_evicting_the_oldest() {
        let recent = Recent::new(Duration::from_secs(10), 3);
        let names = ["a.test", "b.test", "c.test", "d.test"];
        let entries: Vec<Entry> = names
            .iter()
            .map(|name| recent.get(key(name, &[], None), ANY))
            .collect();
        assert_eq!(recent.len(), 3);
        assert!(!entries[0].is(&recent.get(key("a.test", &[], None), ANY)));
        assert!(entries[3].is(&recent.get(key("d.test", &[], None), ANY)));
        assert_eq!(recent.len(), 3);

        let none = Recent::new(Duration::from_secs(10), 0);
        let once = none.get(key("a.test", &[], None), ANY);
        assert!(!once.is(&none.get(key("a.test", &[], None), ANY)));
        assert_eq!(none.len(), 0);
    }

    /// A measurement made with the ECH comparison answers a request that leaves it for
    /// later (an older probe's and a newer one's), once made; nothing else is shared
    /// between plans.
    #[tokio::test]
    async fn a_measurement_made_with_the_ech_comparison_answers_one_without() {
        let recent = Recent::new(Duration::from_secs(10), 16);
        let planned = |name: &str, ech| Key {
            ech,
            ..key(name, &["192.0.2.1"], Some("canary.test"))
        };
        let in_progress = recent.get(planned("https://a.test/", EchPlan::Always), ANY);
        let later = recent.get(planned("https://a.test/", EchPlan::Later), ANY);
        assert!(!later.is(&in_progress));

        let made = recent.get(planned("https://b.test/", EchPlan::Always), ANY);
        recent.measure(&made, async { Vec::new() }).await;
        assert!(
            recent
                .get(planned("https://b.test/", EchPlan::Later), ANY)
                .is(&made)
        );
        let begun = recent.all_begun(&[planned("https://b.test/", EchPlan::Later)], ANY);
        assert!(begun.unwrap()[0].is(&made));
        assert!(
            !recent
                .get(planned("https://b.test/", EchPlan::Only), ANY)
                .is(&made)
        );

        let without = recent.get(planned("https://c.test/", EchPlan::Later), ANY);
        recent.measure(&without, async { Vec::new() }).await;
        assert!(
            !recent
                .get(planned("https://c.test/", EchPlan::Always), ANY)
                .is(&without)
        );
    }

    /// A measurement made with the ECH comparison answers a request that leaves it for
    /// later only while young enough for that request, as its own would.
    #[tokio::test]
    async fn a_measurement_made_with_the_ech_comparison_answers_within_the_age_asked() {
        let recent = Recent::new(Duration::from_secs(10), 16);
        let planned = |ech| Key {
            ech,
            ..key("https://a.test/", &["192.0.2.1"], Some("canary.test"))
        };
        let start = Instant::now();
        let made = recent.get_at(planned(EchPlan::Always), ANY, start);
        recent.measure(&made, async { Vec::new() }).await;
        let later = start + Duration::from_secs(3);
        let young = |seconds| {
            let since = later.checked_sub(Duration::from_secs(seconds));
            recent.get_at(planned(EchPlan::Later), since, later)
        };
        assert!(made.is(&young(4)));
        assert!(!made.is(&young(2)));
    }

    /// A request that would begin nothing is told so, and one that would is told
    /// nothing, with nothing begun for it before it has a place.
    #[test]
    fn tells_whether_all_of_a_request_is_begun_without_beginning_any() {
        let recent = Recent::new(Duration::from_secs(10), 16);
        let (a, b) = (key("a.test", &[], None), key("b.test", &[], None));
        let first = recent.get(a.clone(), ANY);
        assert!(recent.all_begun(&[a.clone(), b.clone()], ANY).is_none());
        assert_eq!(recent.len(), 1);
        let [shared] = <[Entry; 1]>::try_from(recent.all_begun(&[a], ANY).unwrap())
            .ok()
            .unwrap();
        assert!(shared.is(&first));
        assert!(recent.all_begun(&[], ANY).is_some());
    }

    /// Requests at once for one target get one measurement, the same facts and times.
    #[tokio::test]
    async fn measures_a_target_once_for_requests_at_once() {
        let recent = Recent::new(Duration::from_secs(10), 16);
        let made = AtomicUsize::new(0);
        let make = || async {
            made.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Vec::new()
        };
        let entries = [
            recent.get(key("a.test", &[], None), ANY),
            recent.get(key("a.test", &[], None), ANY),
        ];
        let (first, second) = tokio::join!(
            recent.measure(&entries[0], make()),
            recent.measure(&entries[1], make())
        );
        assert!(Arc::ptr_eq(&first, &second));
        let later = recent
            .measure(&recent.get(key("a.test", &[], None), ANY), make())
            .await;
        assert!(Arc::ptr_eq(&first, &later));
        assert_eq!(made.load(Ordering::SeqCst), 1);
    }

    /// A measurement cut off is not kept: the request waiting for it makes it, and the
    /// next request for the target begins anew.
    #[tokio::test]
    async fn a_measurement_cut_off_is_made_again() {
        let recent = Recent::new(Duration::from_secs(10), 16);
        let entry = recent.get(key("a.test", &[], None), ANY);
        let begun = tokio::sync::Notify::new();
        let stalled = recent.measure(&entry, async {
            begun.notify_one();
            std::future::pending().await
        });
        let cut_off = tokio::time::timeout(Duration::from_millis(10), stalled);
        let (cut_off, waited) = tokio::join!(cut_off, async {
            begun.notified().await;
            recent.measure(&entry, async { Vec::new() }).await
        });
        assert!(cut_off.is_err());
        assert!(waited.is_empty());
        assert!(!entry.is(&recent.get(key("a.test", &[], None), ANY)));
        assert_eq!(recent.len(), 1);
    }

    /// A measurement in which the control ran out of file descriptors answers the
    /// requests waiting for it, but not the next: that one measures anew. One that
    /// failed for the target's reasons (refused), or the control's lasting ones (no
    /// route), is shared as any other.
    #[tokio::test]
    async fn a_measurement_the_control_ran_out_in_is_not_shared() {
        use crate::analyse::fixtures::tcp;
        use crate::facts::failure::Failure;
        let recent = Recent::new(Duration::from_secs(10), 16);
        for (name, failure, shared) in [
            ("a.test", Failure::TooManyOpenFiles, false),
            ("b.test", Failure::ConnectionRefused, true),
            ("c.test", Failure::NetworkUnreachable, true),
        ] {
            let a = || key(name, &["192.0.2.1"], None);
            let entry = recent.get(a(), ANY);
            let waiting = recent.get(a(), ANY);
            let made = recent
                .measure(&entry, async {
                    vec![tcp("192.0.2.1:443", Some(failure.clone()))]
                })
                .await;
            let waited = recent.measure(&waiting, async { Vec::new() }).await;
            assert!(Arc::ptr_eq(&made, &waited), "{failure}");
            assert_eq!(entry.is(&recent.get(a(), ANY)), shared, "{failure}");
        }
    }
}
