//! Bounds on the work in flight.
//!
//! Three kinds: a cap per server address (`--per-host`), held for a whole exchange with
//! that server, so that no server sees a burst from one probe (impolite, and a burst
//! can itself trip a censor's rate rules); a global cap on work (`--concurrency`):
//! TLS handshakes and HTTP transfers, which cost CPU and bandwidth; and a global cap on
//! fresh connection attempts (four per unit of `--concurrency`), so that a home
//! router's NAT table never sees thousands of new flows at once. Waiting costs
//! nothing: a connect whose SYN went unanswered holds no work place, and gives its
//! fresh-attempt place back after a second (see `tcp::Dialer`), so that blackholed
//! targets cost their timeout in parallel instead of queueing behind each other.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Limits {
    work: Arc<Semaphore>,
    queries: Arc<Semaphore>,
    connects: Arc<Semaphore>,
    per_host: usize,
    hosts: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

/// A place, held until dropped.
pub struct Permit {
    _held: OwnedSemaphorePermit,
}

impl Limits {
    pub fn new(concurrency: usize, per_host: usize) -> Limits {
        Limits {
            work: Arc::new(Semaphore::new(concurrency.max(1))),
            // Resolvers are built for bursts, but not unbounded ones.
            queries: Arc::new(Semaphore::new(concurrency.max(1) * 4)),
            connects: Arc::new(Semaphore::new(concurrency.max(1) * 4)),
            per_host: per_host.max(1),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// A place for an exchange with the server at `host`.
    pub async fn host(&self, host: IpAddr) -> Permit {
        let semaphore = {
            let mut hosts = self.hosts.lock().expect("limits lock poisoned");
            hosts
                .entry(host)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
                .clone()
        };
        Permit {
            _held: semaphore.acquire_owned().await.expect("never closed"),
        }
    }

    /// The places for fresh connection attempts, for `tcp::Dialer::fresh`.
    pub fn connects(&self) -> Arc<Semaphore> {
        self.connects.clone()
    }

    /// A place for work if one is free now: a connection already open may then be
    /// used at once, instead of waiting idle (a NAT or server drops idle connections,
    /// which would read as a reset).
    pub fn try_work(&self) -> Option<Permit> {
        self.work
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|held| Permit { _held: held })
    }

    /// A place for work: a handshake, a transfer. Connect after taking it, not before.
    pub async fn work(&self) -> Permit {
        Permit {
            _held: self
                .work
                .clone()
                .acquire_owned()
                .await
                .expect("never closed"),
        }
    }

    /// A place for a DNS query until its first answer.
    pub async fn query(&self) -> Permit {
        Permit {
            _held: self
                .queries
                .clone()
                .acquire_owned()
                .await
                .expect("never closed"),
        }
    }
}
