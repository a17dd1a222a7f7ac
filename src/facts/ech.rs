//! The ECH comparison's facts: handshakes with one name to one address, with and
//! without an Encrypted Client Hello extension offered, in random order.
//!
//! Russia has, since November 2024, frozen handshakes that carry both the ECH
//! extension and a given SNI, while either alone passes (net4people/bbs#417). Only the
//! pairing of the two on the same address and name shows that: the target's own
//! handshake, which worked, then one with ECH and one without in random order, and the
//! same again when the one with ECH failed (see `measure::ech`).

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::failure::{Operation, StepError};

/// A comparison of handshakes with and without ECH, with one name to one address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EchFacts {
    pub address: SocketAddr,
    pub server_name: String,
    /// The handshakes, in the order they were made, each on a new connection.
    pub handshakes: Vec<EchHandshake>,
}

impl EchFacts {
    /// The handshakes made with `offer`.
    pub fn with(&self, offer: EchOffer) -> impl Iterator<Item = &EchHandshake> {
        self.handshakes.iter().filter(move |h| h.ech == offer)
    }

    /// Whether handshakes offered ECH and every one of them was torn down (see
    /// [`EchHandshake::torn_down`]): what a block of ECH shows, and all a comparison
    /// needs the control's for.
    pub fn ech_torn_down(&self) -> bool {
        let mut with = self.with(EchOffer::Grease).peekable();
        with.peek().is_some() && with.all(EchHandshake::torn_down)
    }

    /// Whether any of its handshakes connected: one that reached nothing says nothing
    /// of ECH.
    pub fn reached(&self) -> bool {
        self.handshakes.iter().any(|h| {
            h.error
                .as_ref()
                .is_none_or(|e| e.failed_operation != Operation::Connect)
        })
    }

    /// Whether, as the control's comparison, it tells how a handshake offering ECH
    /// fares from there: it reached the server, and one such went through or failed
    /// for a reason not the machine's own.
    pub fn tells(&self) -> bool {
        self.reached()
            && (self.with(EchOffer::Grease).any(|h| h.handshake_done)
                || self
                    .with(EchOffer::Grease)
                    .find_map(|h| h.error.as_ref())
                    .is_some_and(|e| !e.local))
    }
}

/// What a handshake offered of ECH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EchOffer {
    /// No ECH extension: the same ClientHello otherwise (TLS 1.3 only, as ECH needs).
    None,
    /// A GREASE ECH extension (RFC 9849, 6.2: a random payload under a random config
    /// id), offered where the name publishes no ECH configuration. On the
    /// wire it is an ECH extension like any other; a server without ECH ignores it.
    Grease,
}

impl EchOffer {
    pub fn as_str(self) -> &'static str {
        match self {
            EchOffer::None => "none",
            EchOffer::Grease => "grease",
        }
    }
}

/// One handshake of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EchHandshake {
    pub ech: EchOffer,
    /// When the ClientHello was sent (its address's turn taken); where no connection
    /// was made, when the handshake set out to make one.
    pub measured_at: DateTime<Utc>,
    pub runtime_ms: f64,
    /// The handshake finished (the certificate is not judged here: the target's own
    /// handshake was).
    pub handshake_done: bool,
    #[serde(flatten)]
    pub error: Option<StepError>,
}

impl EchHandshake {
    /// When the handshake ended.
    pub fn ended_at(&self) -> DateTime<Utc> {
        super::ended(self.measured_at, self.runtime_ms)
    }

    /// Failed the way a censor fails a handshake: reset, closed or silent after the
    /// connection was made, and not for the probe's own machine. A TLS alert is the
    /// server's answer, and does not count.
    pub fn torn_down(&self) -> bool {
        self.error.as_ref().is_some_and(|e| {
            !e.local
                && e.failed_operation == Operation::TlsHandshake
                && (e.failure.is_reset_or_eof() || e.failure.is_timeout())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::failure::Failure;

    fn comparison(handshakes: &[(EchOffer, Option<StepError>)]) -> EchFacts {
        EchFacts {
            address: "192.0.2.1:443".parse().unwrap(),
            server_name: "a.test".to_string(),
            handshakes: handshakes
                .iter()
                .map(|(ech, error)| EchHandshake {
                    ech: *ech,
                    measured_at: Utc::now(),
                    runtime_ms: 1.0,
                    handshake_done: error.is_none(),
                    error: error.clone(),
                })
                .collect(),
        }
    }

    /// A control's comparison tells something where its handshake offering ECH went
    /// through, or was failed by the network; not where it reached nothing, nor where
    /// its own machine failed it.
    #[test]
    fn a_comparison_tells_only_what_the_network_did() {
        let reset = StepError::new(Operation::TlsHandshake, Failure::ConnectionReset);
        let unreached = StepError::new(Operation::Connect, Failure::GenericTimeout);
        let local = StepError {
            local: true,
            ..StepError::new(Operation::TlsHandshake, Failure::GenericTimeout)
        };
        let grease = EchOffer::Grease;
        assert!(comparison(&[(grease, None)]).tells());
        assert!(comparison(&[(grease, Some(reset.clone()))]).tells());
        assert!(!comparison(&[(grease, Some(unreached))]).tells());
        assert!(!comparison(&[(grease, Some(local.clone()))]).tells());
        // As the analysis reads it: by the first failure.
        assert!(!comparison(&[(grease, Some(local)), (grease, Some(reset))]).tells());
        assert!(!comparison(&[(EchOffer::None, None)]).tells());
    }
}
