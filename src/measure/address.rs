//! What a run learns about each server address, shared by the targets on it.
//!
//! Many names live on one address (a CDN edge, shared hosting), and some censors punish
//! a forbidden name by blocking the whole address for a minute or three afterwards
//! (residual blocking: the GFW, Iran). Two consequences for measuring:
//!
//! - The control-SNI handshake to an address and port (over TCP, and over QUIC), which
//!   shows that the address itself answers, is made once per run and before any target's own name is sent
//!   there: made after a forbidden name, it would fail and hide the SNI filter.
//! - A connect that went unanswered, every try, speaks for the address and port for a
//!   minute: the targets waiting to connect there take it as theirs instead of each
//!   waiting out the same timeout in turn (a SYN names no target, so a censor treats
//!   them all alike). Until an address and port has answered, connects to it are made
//!   one at a time, so that the second waits for the first's outcome; once one connects,
//!   the rest go together again (within the per-host limit). Only a silence the probe's
//!   own network was checked clear of is shared (see [`Silence::from_connect`]).
//! - A handshake or request that failed after its connection was made may be such a
//!   trigger. Each is logged, so that a later failure of a neighbour on the same address
//!   can be told as explained by it ([`Trigger`]); a neighbour waits for the outcome of
//!   handshakes there that began before its own failure ended. Names are sent to one
//!   address in turn, so that a trigger is known to have gone before its echo.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OnceCell, OwnedMutexGuard, watch};

use crate::facts::{Step, TcpFacts, Trigger};

/// Triggers are kept this long: longer than any residual blocking reported (the GFW's
/// 180 s, Russia's 10 minutes for UDP to some hosting networks).
const KEEP: chrono::TimeDelta = chrono::TimeDelta::seconds(600);
/// A neighbour waits at most this long for handshakes still in progress.
const MAX_WAIT: Duration = Duration::from_secs(120);
/// How long an unanswered connect speaks for its address and port: a block lifted, or a
/// server back, is found by the first target after this.
const SILENCE_KEPT: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// A connect that went unanswered, every try, with a check of the probe's own network
/// that passed: shared by the targets that would connect to the same address and port.
pub struct Silence {
    pub measured_at: DateTime<Utc>,
    pub runtime_ms: f64,
    pub facts: TcpFacts,
}

impl Silence {
    /// The silence a connect shows, if it is one worth sharing: no answer to any try
    /// (a refusal or a reset is an answer, and cheap to get again), not the probe's own
    /// failure, and the link up through its end (`Check::link_up`: where the canary
    /// failed too, or answered only late, the probe's network may be back for the next
    /// target).
    pub fn from_connect(
        measured_at: DateTime<Utc>,
        runtime_ms: f64,
        facts: &TcpFacts,
    ) -> Option<Silence> {
        let error = facts.error.as_ref()?;
        let network_fine = facts
            .check
            .as_ref()
            .is_some_and(crate::facts::Check::link_up);
        (error.unanswered() && network_fine).then(|| Silence {
            measured_at,
            runtime_ms,
            facts: facts.clone(),
        })
    }
}

/// The turn to connect to an address and port, or what the last connect there learnt.
pub enum Dial {
    /// This target connects, and says what came of it with [`DialTurn::learnt`].
    Mine(DialTurn),
    /// Another target's connect there went unanswered a moment ago.
    Silent(Arc<Silence>),
}

/// The turn to connect to an address and port: held until dropped while the address
/// has not answered yet, and shared once it has.
pub struct DialTurn {
    held: Option<OwnedMutexGuard<Last>>,
}

impl DialTurn {
    /// Ends the turn with the silence its connect found, if any, or with an answer.
    /// Once an address has answered, a silence there speaks only for its own target: it
    /// may be a passing loss, or a block the run should see begin target by target.
    pub fn learnt(self, silence: Option<Silence>) {
        if let Some(mut held) = self.held {
            *held = match silence {
                Some(silence) => Last::Silent(Arc::new(silence)),
                None => Last::Answered,
            };
        }
    }
}

/// What the last connect to an address and port came to.
#[derive(Default)]
enum Last {
    #[default]
    Unknown,
    Answered,
    Silent(Arc<Silence>),
}

/// The last outcome on an address and port, behind its turn to connect.
type DialCell = Arc<tokio::sync::Mutex<Last>>;

/// A handshake made once for every target on an address, with when it was made.
pub struct SharedHandshake {
    pub measured_at: DateTime<Utc>,
    pub runtime_ms: f64,
    pub step: Step,
}

/// Where a shared handshake is, once made: the targets after the first wait on it.
type SharedCell = Arc<OnceCell<Arc<SharedHandshake>>>;

/// When an address and port first answered, once it has.
type FirstAnswer = Arc<OnceLock<DateTime<Utc>>>;

/// What a shared handshake is carried over: the same port number is two endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Quic,
}

#[derive(Default)]
struct Log {
    next_id: u64,
    /// Handshakes and requests in progress, by address: their id and when they began.
    open: HashMap<IpAddr, Vec<(u64, DateTime<Utc>)>>,
    triggers: HashMap<IpAddr, Vec<Trigger>>,
}

pub struct Addresses {
    control_sni: Mutex<HashMap<(Transport, SocketAddr), SharedCell>>,
    dials: Mutex<HashMap<SocketAddr, DialCell>>,
    /// Whose turn it is to send a name to each address (see [`Addresses::turn`]).
    turns: Mutex<HashMap<IpAddr, Arc<tokio::sync::Mutex<()>>>>,
    log: Mutex<Log>,
    /// When each address and port first answered a target's connect (see
    /// [`Addresses::answered`]).
    first_answers: Mutex<HashMap<SocketAddr, FirstAnswer>>,
    /// Bumped whenever a handshake in progress ends.
    ended: watch::Sender<u64>,
}

/// How long a handshake or request keeps its address's turn, at most: a censor reacts
/// to a forbidden name as it passes, so the next name sent after this cannot have set
/// off a block this one meets; and a name silenced for the whole step timeout does not
/// make the others on its address wait that long.
const TURN_HOLD: Duration = Duration::from_secs(1);

/// The turn of one handshake or request to an address, held until dropped (or none:
/// see [`Turn::none`]).
pub struct Turn {
    _held: Option<OwnedMutexGuard<()>>,
}

impl Turn {
    /// No turn: that of an exchange that sends no name (the control SNI's, which no
    /// censor blocks for a name, go when they will).
    pub fn none() -> Turn {
        Turn { _held: None }
    }

    /// Runs `step`, keeping the turn until it ends or `TURN_HOLD` has passed.
    pub async fn during<F: Future>(self, step: F) -> F::Output {
        tokio::pin!(step);
        tokio::select! {
            output = &mut step => output,
            () = tokio::time::sleep(TURN_HOLD) => {
                drop(self);
                step.await
            }
        }
    }
}

/// A handshake or request in progress on an address, logged until [`Ticket::end`] (or
/// drop, which ends it without a trigger).
pub struct Ticket<'a> {
    addresses: &'a Addresses,
    ip: IpAddr,
    id: u64,
}

impl Default for Addresses {
    fn default() -> Addresses {
        Addresses {
            control_sni: Mutex::default(),
            dials: Mutex::default(),
            turns: Mutex::default(),
            log: Mutex::default(),
            first_answers: Mutex::default(),
            ended: watch::Sender::new(0),
        }
    }
}

/// Entries a per-address map holds before it lets go of those no longer needed.
const MAX_KEPT: usize = 4096;

/// The entry of `key` in `map`, made if missing. A map that has reached [`MAX_KEPT`]
/// first lets go of the entries `keep` refuses, so that memory stays bounded over a
/// long run.
pub(super) fn kept_entry<K: Eq + Hash, V: Clone + Default>(
    map: &Mutex<HashMap<K, V>>,
    key: K,
    mut keep: impl FnMut(&V) -> bool,
) -> V {
    let mut map = map.lock().expect("per-address map lock poisoned");
    if map.len() >= MAX_KEPT {
        map.retain(|_, value| keep(value));
    }
    map.entry(key).or_default().clone()
}

impl Addresses {
    /// The control-SNI handshake to `address` over `transport`, made by `make` if no
    /// target has made it yet in this run; the others wait for it.
    pub async fn control_sni<F, Fut>(
        &self,
        transport: Transport,
        address: SocketAddr,
        make: F,
    ) -> Arc<SharedHandshake>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = SharedHandshake>,
    {
        // Handshakes made long ago are forgotten: an address seen again much later is
        // asked afresh.
        let old = Utc::now() - KEEP;
        let cell = kept_entry(&self.control_sni, (transport, address), |cell| {
            cell.get().is_none_or(|h| h.measured_at > old)
        });
        cell.get_or_init(|| async { Arc::new(make().await) })
            .await
            .clone()
    }

    /// The turn to connect to `address`, once the connect before it there has ended;
    /// or, when that one went unanswered a moment ago, its silence.
    pub async fn dial(&self, address: SocketAddr) -> Dial {
        let old = Utc::now() - SILENCE_KEPT;
        let cell = kept_entry(&self.dials, address, |cell| {
            Arc::strong_count(cell) > 1
                || cell
                    .try_lock()
                    .is_ok_and(|last| matches!(&*last, Last::Silent(s) if s.measured_at > old))
        });
        let last = cell.lock_owned().await;
        match &*last {
            Last::Silent(silence) if silence.measured_at > Utc::now() - SILENCE_KEPT => {
                Dial::Silent(silence.clone())
            }
            Last::Answered => Dial::Mine(DialTurn { held: None }),
            _ => Dial::Mine(DialTurn { held: Some(last) }),
        }
    }

    /// Notes that `address` answered a target's connect just now. An address and port
    /// that answered the probe, and later went silent or refused it, was not blocked
    /// from the start: a server turning away a client that made many connections (a
    /// rate limit, a ban) does that, and so does one that goes down. The first answer
    /// is what tells; addresses first answered longer ago than triggers are kept are
    /// let go of in a long run. Another port's answer would not tell: a middlebox may
    /// take the connects to one port (to serve a blockpage over HTTP) where those to
    /// another are dropped.
    pub fn answered(&self, address: SocketAddr) {
        let old = Utc::now() - KEEP;
        let first = kept_entry(&self.first_answers, address, |first| {
            first.get().is_some_and(|answered| *answered > old)
        });
        first.get_or_init(Utc::now);
    }

    /// When `address` first answered a target's connect, if it has.
    pub fn first_answer(&self, address: SocketAddr) -> Option<DateTime<Utc>> {
        let first = self
            .first_answers
            .lock()
            .expect("per-address map lock poisoned");
        first
            .get(&address)
            .and_then(|answered| answered.get().copied())
    }

    /// The turn to send a name (a ClientHello, a request) to `ip`, taken once the
    /// connection is made (a connect sends no name): names go to an address one at a
    /// time, so that the order in which they were sent is known, and with it which may
    /// have set off a residual block and which met it. See [`Turn::during`].
    pub async fn turn(&self, ip: IpAddr) -> Turn {
        Turn {
            _held: Some(self.turn_lock(ip).lock_owned().await),
        }
    }

    /// The turn on `ip` if it is free now.
    pub fn try_turn(&self, ip: IpAddr) -> Option<Turn> {
        let held = self.turn_lock(ip).try_lock_owned().ok()?;
        Some(Turn { _held: Some(held) })
    }

    fn turn_lock(&self, ip: IpAddr) -> Arc<tokio::sync::Mutex<()>> {
        kept_entry(&self.turns, ip, |lock| Arc::strong_count(lock) > 1)
    }

    /// Logs a handshake or request to `ip`, part of a step that began at `began` (the
    /// time its measurement is recorded with, and its triggers carry).
    pub fn open(&self, ip: IpAddr, began: DateTime<Utc>) -> Ticket<'_> {
        let mut log = self.log.lock().expect("address lock poisoned");
        let id = log.next_id;
        log.next_id += 1;
        log.open.entry(ip).or_default().push((id, began));
        let old = Utc::now() - KEEP;
        for list in log.triggers.values_mut() {
            list.retain(|t| t.at > old);
        }
        log.triggers.retain(|_, list| !list.is_empty());
        Ticket {
            addresses: self,
            ip,
            id,
        }
    }

    fn close(&self, ip: IpAddr, id: u64, triggers: Vec<Trigger>) {
        let mut log = self.log.lock().expect("address lock poisoned");
        if let Some(open) = log.open.get_mut(&ip) {
            open.retain(|(i, _)| *i != id);
            if open.is_empty() {
                log.open.remove(&ip);
            }
        }
        for trigger in triggers {
            log.triggers
                .entry(trigger.address.ip())
                .or_default()
                .push(trigger);
        }
        drop(log);
        self.ended.send_modify(|n| *n += 1);
    }

    /// The triggers logged on `ip` before `before`, once every handshake there that
    /// began before it has ended (or `MAX_WAIT` has passed).
    pub async fn triggers_before(&self, ip: IpAddr, before: DateTime<Utc>) -> Vec<Trigger> {
        let mut ended = self.ended.subscribe();
        let give_up = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            {
                let log = self.log.lock().expect("address lock poisoned");
                let waiting = log
                    .open
                    .get(&ip)
                    .is_some_and(|open| open.iter().any(|(_, began)| *began < before));
                if !waiting {
                    return log.triggers.get(&ip).map_or(Vec::new(), |list| {
                        list.iter().filter(|t| t.at < before).cloned().collect()
                    });
                }
            }
            if tokio::time::timeout_at(give_up, ended.changed())
                .await
                .is_err()
            {
                let log = self.log.lock().expect("address lock poisoned");
                return log.triggers.get(&ip).map_or(Vec::new(), |list| {
                    list.iter().filter(|t| t.at < before).cloned().collect()
                });
            }
        }
    }
}

impl Ticket<'_> {
    /// Ends the logged handshake with the triggers its measurement holds.
    pub fn end(self, triggers: Vec<Trigger>) {
        let triggers = triggers
            .into_iter()
            .filter(|t| t.address.ip() == self.ip)
            .collect();
        self.addresses.close(self.ip, self.id, triggers);
        std::mem::forget(self);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.addresses.close(self.ip, self.id, Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::TlsFacts;
    use crate::facts::failure::Failure;

    /// The first answer is what is kept; another port of the address has none.
    #[test]
    fn an_address_keeps_its_first_answer() {
        let addresses = Addresses::default();
        let ip = SocketAddr::from(([192, 0, 2, 1], 443));
        let other = SocketAddr::from(([192, 0, 2, 1], 80));
        let before = Utc::now();
        addresses.answered(ip);
        let first = addresses.first_answer(ip).expect("an answer noted");
        assert!(first >= before && first <= Utc::now());
        std::thread::sleep(Duration::from_millis(5));
        addresses.answered(ip);
        assert_eq!(addresses.first_answer(ip), Some(first));
        assert_eq!(addresses.first_answer(other), None);
    }

    fn trigger(ip: IpAddr, at: DateTime<Utc>) -> Trigger {
        Trigger {
            address: SocketAddr::new(ip, 443),
            sent: crate::facts::Sent::Name("forbidden.test".into()),
            target: "forbidden.test".into(),
            at,
            failure: Failure::GenericTimeout,
        }
    }

    #[tokio::test]
    async fn a_neighbour_waits_for_handshakes_that_began_before_its_failure() {
        let addresses = Arc::new(Addresses::default());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let began = Utc::now() - chrono::TimeDelta::milliseconds(5);
        let ticket = addresses.open(ip, began);
        let later = Utc::now() + chrono::TimeDelta::seconds(1);
        let waiter = {
            let addresses = addresses.clone();
            tokio::spawn(async move { addresses.triggers_before(ip, later).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "the handshake in progress is waited for"
        );
        ticket.end(vec![trigger(ip, began)]);
        let found = waiter.await.unwrap();
        assert_eq!(found.len(), 1);
        // Triggers after the failure, or on another address, explain nothing.
        assert!(addresses.triggers_before(ip, began).await.is_empty());
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(addresses.triggers_before(other, later).await.is_empty());
    }

    #[tokio::test]
    async fn a_dropped_ticket_ends_without_a_trigger() {
        let addresses = Addresses::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        drop(addresses.open(ip, Utc::now()));
        let found = addresses
            .triggers_before(ip, Utc::now() + chrono::TimeDelta::seconds(1))
            .await;
        assert!(found.is_empty());
    }

    fn silence(at: DateTime<Utc>, checked: Option<Failure>) -> Option<Silence> {
        silence_pulsed(at, checked, None)
    }

    /// As [`silence`], with a pulse of the link during the connect's last try.
    fn silence_pulsed(
        at: DateTime<Utc>,
        checked: Option<Failure>,
        during: Option<crate::facts::Burst>,
    ) -> Option<Silence> {
        let address: SocketAddr = "192.0.2.7:443".parse().unwrap();
        let timeout =
            crate::facts::failure::StepError::timeout(crate::facts::failure::Operation::Connect);
        let facts = TcpFacts {
            check: Some(crate::facts::Check {
                checked: crate::facts::CheckTarget::Connect(address),
                measured_at: at,
                error: checked.map(|f| {
                    crate::facts::failure::StepError::new(
                        crate::facts::failure::Operation::Connect,
                        f,
                    )
                }),
                meanwhile: None,
                before: None,
                first_tries: None,
                during,
                slow_quarter_ms: None,
                answered_at: None,
                quic: None,
            }),
            ..TcpFacts::new(address, Some(timeout))
        };
        Silence::from_connect(at, 6500.0, &facts)
    }

    #[tokio::test]
    async fn a_silence_is_shared_with_the_connects_waiting_behind_it() {
        let addresses = Arc::new(Addresses::default());
        let address: SocketAddr = "192.0.2.7:443".parse().unwrap();
        let Dial::Mine(turn) = addresses.dial(address).await else {
            panic!("the first connect is made")
        };
        let waiter = {
            let addresses = addresses.clone();
            tokio::spawn(async move { matches!(addresses.dial(address).await, Dial::Silent(_)) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the second waits for the first");
        turn.learnt(silence(Utc::now(), None));
        assert!(waiter.await.unwrap(), "and takes its silence");
        // Another port of the address is its own endpoint.
        let other: SocketAddr = "192.0.2.7:80".parse().unwrap();
        assert!(matches!(addresses.dial(other).await, Dial::Mine(_)));
        // An answer shares nothing; a silence a minute old is forgotten.
        for (port, learnt, shared) in [
            (8443, silence(Utc::now(), None), true),
            (8444, None, false),
            (
                8445,
                silence(Utc::now() - chrono::TimeDelta::seconds(61), None),
                false,
            ),
        ] {
            let address = SocketAddr::new(address.ip(), port);
            let Dial::Mine(turn) = addresses.dial(address).await else {
                panic!("a connect is made")
            };
            turn.learnt(learnt);
            let again = addresses.dial(address).await;
            assert_eq!(matches!(again, Dial::Silent(_)), shared);
        }
    }

    #[tokio::test]
    async fn once_an_address_answered_its_connects_go_together_and_keep_their_silences() {
        let addresses = Addresses::default();
        let address: SocketAddr = "192.0.2.8:443".parse().unwrap();
        let Dial::Mine(first) = addresses.dial(address).await else {
            panic!("the first connect is made")
        };
        first.learnt(None);
        // Were they still one at a time, the second would wait for the first's outcome.
        let at_once = Duration::from_secs(1);
        let (Ok(Dial::Mine(a)), Ok(Dial::Mine(b))) = (
            tokio::time::timeout(at_once, addresses.dial(address)).await,
            tokio::time::timeout(at_once, addresses.dial(address)).await,
        ) else {
            panic!("each connects, at once")
        };
        a.learnt(silence(Utc::now(), None));
        b.learnt(None);
        assert!(
            matches!(addresses.dial(address).await, Dial::Mine(_)),
            "a silence after an answer is its own target's"
        );
    }

    #[test]
    fn only_a_silence_the_network_was_checked_clear_of_is_shared() {
        assert!(silence(Utc::now(), None).is_some());
        assert!(silence(Utc::now(), Some(Failure::GenericTimeout)).is_none());
        // The canary answered right after, but a pulse of the link as the connect was
        // tried again got no answer: the link was down, and may be back for the next.
        let pulse = |answered| Some(crate::facts::Burst { made: 6, answered });
        assert!(silence_pulsed(Utc::now(), None, pulse(0)).is_none());
        assert!(silence_pulsed(Utc::now(), None, pulse(1)).is_some());
        let address: SocketAddr = "192.0.2.7:443".parse().unwrap();
        let unchecked = TcpFacts::new(
            address,
            Some(crate::facts::failure::StepError::timeout(
                crate::facts::failure::Operation::Connect,
            )),
        );
        assert!(Silence::from_connect(Utc::now(), 1.0, &unchecked).is_none());
        let refused = TcpFacts::new(
            address,
            Some(crate::facts::failure::StepError::new(
                crate::facts::failure::Operation::Connect,
                Failure::ConnectionRefused,
            )),
        );
        assert!(Silence::from_connect(Utc::now(), 1.0, &refused).is_none());
    }

    #[tokio::test]
    async fn the_control_sni_handshake_is_made_once_per_address() {
        let addresses = Addresses::default();
        let address: SocketAddr = "192.0.2.7:443".parse().unwrap();
        let made = std::sync::atomic::AtomicUsize::new(0);
        let make = || async {
            made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            SharedHandshake {
                measured_at: Utc::now(),
                runtime_ms: 1.0,
                step: Step::TlsHandshake(TlsFacts::new(address, "canary.test", true)),
            }
        };
        let (a, b) = tokio::join!(
            addresses.control_sni(Transport::Tcp, address, make),
            addresses.control_sni(Transport::Tcp, address, make)
        );
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(a.measured_at, b.measured_at);
        addresses.control_sni(Transport::Quic, address, make).await;
        assert_eq!(
            made.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "QUIC to the same port is another endpoint"
        );
    }
}
