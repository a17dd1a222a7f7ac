//! What a run learns about each server address, shared by the targets on it.
//!
//! Many names live on one address (a CDN edge, shared hosting), and some censors punish
//! a forbidden name by blocking the whole address for a minute or three afterwards
//! (residual blocking: the GFW, Iran). Two consequences for measuring:
//!
//! - The control-SNI handshake to an address and port (over TCP, and over QUIC), which
//!   shows that the address itself answers, is made once per run and before any target's own name is sent
//!   there: made after a forbidden name, it would fail and hide the SNI filter.
//! - A handshake or request that failed after its connection was made may be such a
//!   trigger. Each is logged, so that a later failure of a neighbour on the same address
//!   can be told as explained by it ([`Trigger`]); a neighbour waits for the outcome of
//!   handshakes there that began before its own failure ended. Names are sent to one
//!   address in turn, so that a trigger is known to have gone before its echo.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OnceCell, watch};

use crate::facts::{Step, Trigger};

/// Triggers are kept this long: longer than any residual blocking reported (the GFW's
/// 180 s, Russia's 10 minutes for UDP to some hosting networks).
const KEEP: chrono::TimeDelta = chrono::TimeDelta::seconds(600);
/// A neighbour waits at most this long for handshakes still in progress.
const MAX_WAIT: Duration = Duration::from_secs(120);

/// A handshake made once for every target on an address, with when it was made.
pub struct SharedHandshake {
    pub measured_at: DateTime<Utc>,
    pub runtime_ms: f64,
    pub step: Step,
}

/// Where a shared handshake is, once made: the targets after the first wait on it.
type SharedCell = Arc<OnceCell<Arc<SharedHandshake>>>;

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
    /// Whose turn it is to send a name to each address (see [`Addresses::turn`]).
    turns: Mutex<HashMap<IpAddr, Arc<tokio::sync::Mutex<()>>>>,
    log: Mutex<Log>,
    /// Bumped whenever a handshake in progress ends.
    ended: watch::Sender<u64>,
}

/// How long a handshake or request keeps its address's turn, at most: a censor reacts
/// to a forbidden name as it passes, so the next name sent after this cannot have set
/// off a block this one meets; and a name silenced for the whole step timeout does not
/// make the others on its address wait that long.
const TURN_HOLD: Duration = Duration::from_secs(1);

/// The turn of one handshake or request to an address, held until dropped.
pub struct Turn {
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl Turn {
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
            turns: Mutex::default(),
            log: Mutex::default(),
            ended: watch::Sender::new(0),
        }
    }
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
        let cell = {
            let mut cells = self.control_sni.lock().expect("address lock poisoned");
            // Forget handshakes made long ago: memory stays bounded over a long run, and
            // an address seen again much later is asked afresh.
            if cells.len() >= 4096 {
                let old = Utc::now() - KEEP;
                cells.retain(|_, cell| cell.get().is_none_or(|h| h.measured_at > old));
            }
            cells.entry((transport, address)).or_default().clone()
        };
        cell.get_or_init(|| async { Arc::new(make().await) })
            .await
            .clone()
    }

    /// The turn to send a name (a ClientHello, a request) to `ip`, taken once the
    /// connection is made (a connect sends no name): names go to an address one at a
    /// time, so that the order in which they were sent is known, and with it which may
    /// have set off a residual block and which met it. See [`Turn::during`].
    pub async fn turn(&self, ip: IpAddr) -> Turn {
        let lock = {
            let mut turns = self.turns.lock().expect("address lock poisoned");
            if turns.len() >= 4096 {
                turns.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            turns.entry(ip).or_default().clone()
        };
        Turn {
            _held: lock.lock_owned().await,
        }
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
