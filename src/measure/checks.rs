//! Checks of the probe's own network, made right after a step fails.
//!
//! A lookup that times out may be a censor's silence or a resolver that is down; a
//! connect that times out may be a blackhole, or a link that dropped everything for a
//! moment, or a NAT table that is full. Censored Planet tells them apart by sandwiching
//! every test between control tests; we check after a failure: a name under the
//! canary's looked up through the same resolver, with the same record type, or the
//! canary connected to. If the check fails too, the failure was
//! the probe's own. Failures that end at about the same time share one check, so that a
//! dead link costs one more timeout, not one per target.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::facts::{Check, QueryType};

type Slot = Option<(Instant, Arc<OnceCell<Check>>)>;

#[derive(Default)]
pub struct Checks {
    network: Mutex<Slot>,
    /// By resolver, as configured, and record type.
    resolvers: Mutex<HashMap<(String, QueryType), Slot>>,
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
}
