//! Bounds on the work in flight: a global cap (`--concurrency`) so the probe's own link
//! is not swamped, and a cap per server address (`--per-host`) so that no server sees
//! a burst from one probe, which would be impolite and could itself trip a censor's
//! rate rules.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Limits {
    global: Arc<Semaphore>,
    per_host: usize,
    hosts: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

/// Held while one network operation runs.
pub struct Permit {
    _host: Option<OwnedSemaphorePermit>,
    _global: OwnedSemaphorePermit,
}

impl Limits {
    pub fn new(concurrency: usize, per_host: usize) -> Limits {
        Limits {
            global: Arc::new(Semaphore::new(concurrency.max(1))),
            per_host: per_host.max(1),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a place for an operation against `host` (the host's place first, so
    /// that waiting on a busy server does not hold a global place).
    pub async fn acquire(&self, host: IpAddr) -> Permit {
        let semaphore = {
            let mut hosts = self.hosts.lock().expect("limits lock poisoned");
            hosts
                .entry(host)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
                .clone()
        };
        let host = semaphore
            .acquire_owned()
            .await
            .expect("host semaphore is never closed");
        Permit {
            _host: Some(host),
            _global: self.acquire_global_permit().await,
        }
    }

    /// A place for an operation that is not against one host's server (DNS queries go
    /// to resolvers, which are built for bursts).
    pub async fn acquire_global(&self) -> Permit {
        Permit {
            _host: None,
            _global: self.acquire_global_permit().await,
        }
    }

    async fn acquire_global_permit(&self) -> OwnedSemaphorePermit {
        self.global
            .clone()
            .acquire_owned()
            .await
            .expect("global semaphore is never closed")
    }
}
