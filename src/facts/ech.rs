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

    /// The handshakes offering ECH that reached a server: one whose connect failed
    /// never sent its ECH, and says nothing of it.
    pub fn with_ech_sent(&self) -> impl Iterator<Item = &EchHandshake> {
        self.with(EchOffer::Grease).filter(|h| h.reached())
    }

    /// Whether handshakes offered ECH to a server and every one of them was torn down
    /// (see [`EchHandshake::torn_down`]): what a block of ECH shows, and all a
    /// comparison needs the control's for.
    pub fn ech_torn_down(&self) -> bool {
        let mut with = self.with_ech_sent().peekable();
        with.peek().is_some() && with.all(EchHandshake::torn_down)
    }

    /// Whether any of its handshakes connected: one that reached nothing says nothing
    /// of ECH.
    pub fn reached(&self) -> bool {
        self.handshakes.iter().any(EchHandshake::reached)
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
        super::after_ms(self.measured_at, self.runtime_ms)
    }

    /// Whether it connected (and so sent its ClientHello).
    pub fn reached(&self) -> bool {
        self.error
            .as_ref()
            .is_none_or(|e| e.failed_operation != Operation::Connect)
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
