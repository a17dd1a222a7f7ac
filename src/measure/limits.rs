//! Bounds on the work in flight.
//!
//! Two kinds: a cap per server address (`--per-host`), held for a whole exchange with
//! that server, so that no server sees a burst from one probe (impolite, and a burst
//! can itself trip a censor's rate rules); and a global cap on work (`--concurrency`):
//! TLS handshakes and HTTP transfers, which cost CPU and bandwidth. Waiting costs
//! neither: a connect whose SYN went unanswered holds no global place, so that
//! blackholed targets cost their timeout once, in parallel, instead of queueing behind
//! each other.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Limits {
    work: Arc<Semaphore>,
    queries: Arc<Semaphore>,
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

    /// A place for work on a connection that is open: a handshake, a transfer.
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
