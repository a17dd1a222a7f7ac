//! Handshakes made again with other ClientHellos after one with the target's name failed
//! once connected: what they were and how each ended. A censor that matches the SNI in
//! one packet (stateless) misses a ClientHello split inside the name; one that
//! reassembles the stream (stateful) does not. A censor that matches the bytes of the
//! probe's own TLS library (its cipher suites, its extensions) fails every name, and
//! lets another library's ClientHello through.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::facts::failure::{Failure, StepError};

/// A variant of the ClientHello, written as its stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hello {
    /// The default ClientHello in two TCP segments, cut inside the server name, with a
    /// pause between them.
    Split,
    /// The default ClientHello made longer than a packet with junk ALPN entries, so
    /// that, where the extensions' order puts them first, the name comes past the first
    /// segment.
    Padded,
    /// Another fingerprint: cipher suites, key exchange groups and ALPN in a browser's
    /// order rather than the library's.
    Alternate,
}

impl Hello {
    pub const ALL: [Hello; 3] = [Hello::Split, Hello::Padded, Hello::Alternate];

    pub fn as_str(self) -> &'static str {
        match self {
            Hello::Split => "split",
            Hello::Padded => "padded",
            Hello::Alternate => "alternate",
        }
    }
}

impl fmt::Display for Hello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One handshake with a variant of the ClientHello, on a connection of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloTry {
    pub hello: Hello,
    pub server_name: String,
    /// Made with the control SNI (the canary's name) rather than the target's.
    pub control_sni: bool,
    pub measured_at: DateTime<Utc>,
    pub runtime_ms: f64,
    pub handshake_done: bool,
    /// Where the server name began in the ClientHello as written, in bytes from its
    /// first: past a segment (about 1460), one packet never holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_at: Option<u32>,
    #[serde(flatten)]
    pub error: Option<StepError>,
}

impl HelloTry {
    /// Nothing on the path stopped it: the handshake finished, or the server refused
    /// it with a TLS alert.
    pub fn passed(&self) -> bool {
        self.handshake_done
            || matches!(&self.error, Some(e) if e.failure == Failure::SslFailedHandshake)
    }

    /// Torn down once connected (reset, closed): an answer, where a timeout says nothing.
    pub fn torn_down(&self) -> bool {
        self.error.as_ref().is_some_and(StepError::torn_down)
    }
}
