//! Everything measured for one target: what `measure` hands to `analyse` and to the run
//! directory, and what `analyse` reads back from a recorded run.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Measurement, Step, TlsFacts, Trigger, Vantage};
use crate::input::targets::Target;

/// Everything measured for one target.
#[derive(Debug, Clone)]
pub struct TargetFacts {
    pub target: Target,
    /// The measurements made for this target, to be written to disk.
    pub measurements: Vec<Measurement>,
    /// The DNS measurements of the target's host, which a URL shares with the domain
    /// target of the same host (measured once, written once, read by both verdicts).
    pub dns: Arc<Vec<Measurement>>,
    /// Other targets' failed handshakes on the addresses this target failed to reach,
    /// from before its failures: what may explain them (see `address`). Not in the
    /// run's rows: `analyse` finds them again among the run's measurements; an export
    /// carries them, and an import keeps them in contexts.jsonl.
    pub triggers: Vec<Trigger>,
}

impl TargetFacts {
    pub fn new(
        target: &Target,
        measurements: Vec<Measurement>,
        dns: Vec<Measurement>,
    ) -> TargetFacts {
        TargetFacts {
            target: target.clone(),
            measurements,
            dns: Arc::new(dns),
            triggers: Vec::new(),
        }
    }

    /// The same facts as the control's (a control site's own probe run, compared
    /// offline; a test's fixture).
    pub fn into_control(mut self) -> TargetFacts {
        for m in &mut self.measurements {
            m.vantage = Vantage::Control;
        }
        let mut dns = self.dns.as_ref().clone();
        for m in &mut dns {
            m.vantage = Vantage::Control;
        }
        self.dns = Arc::new(dns);
        self
    }

    /// When the target was measured, as its verdict row says: when its first own
    /// measurement began, else its first DNS lookup; None when nothing was measured.
    pub fn measured_at(&self) -> Option<DateTime<Utc>> {
        let first = |ms: &[Measurement]| ms.iter().map(|m| m.measured_at).min();
        first(&self.measurements).or_else(|| first(&self.dns))
    }

    /// Every TCP+TLS handshake among the measurements: a domain's own, and each hop's of
    /// a fetch (a URL target's measurements hold no handshake step of their own).
    pub fn tcp_tls(&self) -> impl Iterator<Item = &TlsFacts> {
        self.measurements.iter().flat_map(|m| {
            let (own, hops) = match &m.step {
                Step::TlsHandshake(t) => (Some(t), None),
                Step::Http(h) => (None, Some(h.hops.iter().filter_map(|hop| hop.tls.as_ref()))),
                _ => (None, None),
            };
            own.into_iter().chain(hops.into_iter().flatten())
        })
    }
}
