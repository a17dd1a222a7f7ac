//! One error taxonomy for every step, printed as OONI's strings (ooni/spec df-007)
//! so that our data can be compared with the largest public data set.
//!
//! Classification works from what the OS and rustls actually said (the error kind
//! and errno, the rustls error variant), never from message text, because telling
//! a reset from a timeout from an EOF is the evidence itself.

use std::fmt;
use std::io;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::facts::scrub::scrub_addresses;

/// Why a step failed, in OONI's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Failure {
    ConnectionRefused,
    ConnectionReset,
    ConnectionAborted,
    GenericTimeout,
    Eof,
    NetworkUnreachable,
    HostUnreachable,
    DnsNxdomain,
    DnsNoAnswer,
    DnsServfail,
    DnsRefused,
    DnsBogon,
    SslInvalidHostname,
    SslUnknownAuthority,
    SslInvalidCertificate,
    SslFailedHandshake,
    /// The errors below come from the probe's own machine, never from the network: a
    /// source address it does not have, a full socket buffer or file table, a local
    /// firewall. They say nothing about the target.
    AddressInUse,
    AddressNotAvailable,
    NoBufferSpace,
    NetworkDown,
    PermissionDenied,
    /// EMFILE or ENFILE. OONI has no name for it, so it prints as the unknown failure
    /// OONI would write, `unknown_failure: too many open files`, and reads back as itself.
    TooManyOpenFiles,
    /// Anything else, with the error text (printed as `unknown_failure: <text>`).
    Unknown(String),
}

impl Failure {
    const NAMED: [(Failure, &'static str); 22] = [
        (Failure::ConnectionRefused, "connection_refused"),
        (Failure::ConnectionReset, "connection_reset"),
        (Failure::ConnectionAborted, "connection_aborted"),
        (Failure::GenericTimeout, "generic_timeout_error"),
        (Failure::Eof, "eof_error"),
        (Failure::NetworkUnreachable, "network_unreachable"),
        (Failure::HostUnreachable, "host_unreachable"),
        (Failure::DnsNxdomain, "dns_nxdomain_error"),
        (Failure::DnsNoAnswer, "dns_no_answer"),
        (Failure::DnsServfail, "dns_servfail_error"),
        (Failure::DnsRefused, "dns_refused_error"),
        (Failure::DnsBogon, "dns_bogon_error"),
        (Failure::SslInvalidHostname, "ssl_invalid_hostname"),
        (Failure::SslUnknownAuthority, "ssl_unknown_authority"),
        (Failure::SslInvalidCertificate, "ssl_invalid_certificate"),
        (Failure::SslFailedHandshake, "ssl_failed_handshake"),
        (Failure::AddressInUse, "address_in_use"),
        (Failure::AddressNotAvailable, "address_not_available"),
        (Failure::NoBufferSpace, "no_buffer_space"),
        (Failure::NetworkDown, "network_down"),
        (Failure::PermissionDenied, "permission_denied"),
        (
            Failure::TooManyOpenFiles,
            "unknown_failure: too many open files",
        ),
    ];

    /// Classifies an I/O error from a socket or from tokio-rustls.
    pub fn from_io(err: &io::Error) -> Failure {
        if let Some(tls) = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return Failure::from_tls(tls);
        }
        #[cfg(unix)]
        match err.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE) => return Failure::TooManyOpenFiles,
            Some(libc::ENOBUFS) => return Failure::NoBufferSpace,
            Some(libc::EPERM) => return Failure::PermissionDenied,
            _ => {}
        }
        use io::ErrorKind as K;
        match err.kind() {
            K::ConnectionRefused => Failure::ConnectionRefused,
            K::ConnectionReset | K::BrokenPipe => Failure::ConnectionReset,
            K::ConnectionAborted => Failure::ConnectionAborted,
            K::TimedOut => Failure::GenericTimeout,
            K::UnexpectedEof => Failure::Eof,
            K::NetworkUnreachable => Failure::NetworkUnreachable,
            K::HostUnreachable => Failure::HostUnreachable,
            K::AddrInUse => Failure::AddressInUse,
            K::AddrNotAvailable => Failure::AddressNotAvailable,
            K::NetworkDown => Failure::NetworkDown,
            K::PermissionDenied => Failure::PermissionDenied,
            _ => Failure::unknown(err),
        }
    }

    /// Classifies a rustls error: certificate problems get their own strings, an alert or
    /// a protocol error from the peer is a failed handshake.
    pub fn from_tls(err: &rustls::Error) -> Failure {
        use rustls::CertificateError as C;
        match err {
            rustls::Error::InvalidCertificate(cert) => match cert {
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    Failure::SslInvalidHostname
                }
                C::UnknownIssuer => Failure::SslUnknownAuthority,
                _ => Failure::SslInvalidCertificate,
            },
            _ => Failure::SslFailedHandshake,
        }
    }

    /// The failure a DNS reply's rcode (as recorded) stands for, if any.
    pub fn from_rcode(rcode: &str) -> Option<Failure> {
        match rcode {
            "NoError" => None,
            "NXDomain" => Some(Failure::DnsNxdomain),
            "ServFail" => Some(Failure::DnsServfail),
            "Refused" => Some(Failure::DnsRefused),
            other => Some(Failure::unknown(format!("dns rcode {other}"))),
        }
    }

    /// A failure string of an OONI measurement: ours (OONI's taxonomy), or the names
    /// OONI's test helper gives DNS and connect errors.
    pub fn from_ooni(s: &str) -> Failure {
        match s {
            "dns_name_error" => Failure::DnsNxdomain,
            "dns_server_failure" => Failure::DnsServfail,
            "dns_refused_error" => Failure::DnsRefused,
            "connection_refused_error" => Failure::ConnectionRefused,
            "connection_reset_error" => Failure::ConnectionReset,
            _ => s.parse().unwrap_or_else(|_| Failure::unknown(s)),
        }
    }

    /// An error we have no name for, its text scrubbed of addresses as OONI scrubs
    /// unknown failures: an OS or library message can name the probe's own address,
    /// and the text goes into files that are shared.
    pub fn unknown(err: impl fmt::Display) -> Failure {
        Failure::Unknown(scrub_addresses(&err.to_string()))
    }

    /// True when the peer (or a middlebox) tore the connection down: the signature of
    /// RST injection.
    pub fn is_reset_or_eof(&self) -> bool {
        matches!(
            self,
            Failure::ConnectionReset | Failure::ConnectionAborted | Failure::Eof
        )
    }

    /// True when the far side or the path turned an attempt down: refused, reset or
    /// closed it. A censor does so every time; a flaky middlebox or NAT, now and then.
    pub fn is_turned_down(&self) -> bool {
        self.is_reset_or_eof() || *self == Failure::ConnectionRefused
    }

    /// True for the errors of the probe's own machine (see the variants).
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            Failure::AddressInUse
                | Failure::AddressNotAvailable
                | Failure::NoBufferSpace
                | Failure::NetworkDown
                | Failure::PermissionDenied
                | Failure::TooManyOpenFiles
        )
    }

    /// True when the machine ran out of something it frees within moments, as its other
    /// exchanges end: file descriptors, buffers, local ports. Unlike its other local
    /// errors (no route, a firewall's refusal), it says nothing that lasts.
    pub fn is_exhaustion(&self) -> bool {
        matches!(
            self,
            Failure::TooManyOpenFiles
                | Failure::NoBufferSpace
                | Failure::AddressInUse
                | Failure::AddressNotAvailable
        )
    }

    /// True when nothing came back: the failure that packet loss, a full NAT table or a
    /// dead link produce as readily as a censor's drop.
    pub fn is_timeout(&self) -> bool {
        *self == Failure::GenericTimeout
    }

    /// True when the network, not the server, stopped an attempt: nothing came back, or
    /// a router said the address cannot be reached. A flapping route or loss produces
    /// these as readily as a censor, so they are tried again, and followed by a check
    /// of the probe's own network.
    pub fn is_unanswered(&self) -> bool {
        matches!(
            self,
            Failure::GenericTimeout | Failure::NetworkUnreachable | Failure::HostUnreachable
        )
    }

    pub fn is_certificate_error(&self) -> bool {
        matches!(
            self,
            Failure::SslInvalidHostname
                | Failure::SslUnknownAuthority
                | Failure::SslInvalidCertificate
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Failure::Unknown(text) = self {
            return write!(f, "unknown_failure: {text}");
        }
        let name = Failure::NAMED
            .iter()
            .find(|(failure, _)| failure == self)
            .map(|(_, name)| *name)
            .expect("every variant but Unknown is in NAMED");
        f.write_str(name)
    }
}

impl FromStr for Failure {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((failure, _)) = Failure::NAMED.iter().find(|(_, name)| *name == s) {
            return Ok(failure.clone());
        }
        // Scrubbed as read too: a run written before failures were scrubbed, or
        // measurements from elsewhere, may name an address, and what is read goes on
        // into exports.
        s.strip_prefix("unknown_failure: ")
            .map(Failure::unknown)
            .ok_or_else(|| format!("unknown failure string {s:?}"))
    }
}

impl From<Failure> for String {
    fn from(f: Failure) -> String {
        f.to_string()
    }
}

impl TryFrom<String> for Failure {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The operation that failed, as OONI's `failed_operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Resolve,
    Connect,
    TlsHandshake,
    QuicHandshake,
    HttpRoundTrip,
    Read,
}

impl Operation {
    /// How far into a flow over TCP the operation is (a flow torn down at one stage is
    /// torn down at any later one too); none for a lookup or a QUIC handshake.
    pub fn stage(self) -> Option<u8> {
        match self {
            Operation::Connect => Some(0),
            Operation::TlsHandshake => Some(1),
            Operation::HttpRoundTrip => Some(2),
            Operation::Read => Some(3),
            Operation::Resolve | Operation::QuicHandshake => None,
        }
    }

    /// About how many packets, both ways, a try has met by the end of this operation,
    /// from its connect on: a SYN and its answer and an acknowledgement; a ClientHello,
    /// the server's flight and a Finished; a request, its response and an
    /// acknowledgement. A path that resets one packet in so many at random meets a
    /// fetch's try more often than a connect's. A body's read is counted by its bytes
    /// ([`body_packets`]); a lookup is no flow.
    pub fn packets(self) -> u32 {
        match self {
            Operation::Resolve => 0,
            Operation::Connect => 3,
            Operation::TlsHandshake | Operation::QuicHandshake => 7,
            Operation::HttpRoundTrip | Operation::Read => 10,
        }
    }
}

/// About how many packets, both ways, `bytes` of a body met: full-size segments (1,460
/// bytes at Ethernet's MSS) and an acknowledgement for every other one.
pub fn body_packets(bytes: u64) -> f64 {
    bytes as f64 / 1460.0 * 1.5
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Resolve => "resolve",
            Operation::Connect => "connect",
            Operation::TlsHandshake => "tls_handshake",
            Operation::QuicHandshake => "quic_handshake",
            Operation::HttpRoundTrip => "http_round_trip",
            Operation::Read => "read",
        })
    }
}

/// A failure together with the operation it happened in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    pub failure: Failure,
    pub failed_operation: Operation,
    /// The error came from the probe's own machine, not from the network: one of the
    /// local failures, or an unreachable network for which the machine has no route.
    #[serde(default, rename = "local_failure", skip_serializing_if = "is_false")]
    pub local: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl StepError {
    /// Whether the network stopped the step: it went unanswered, or was refused or torn
    /// down, and not by the probe's own machine. Such a failure is followed by a network
    /// check, and the canary's counts against the run's like failures.
    pub fn by_network(&self) -> bool {
        !self.local && (self.failure.is_unanswered() || self.failure.is_turned_down())
    }

    /// Nothing came back but, at most, a router's word that the address is
    /// unreachable, and not for the probe's own machine.
    pub fn unanswered(&self) -> bool {
        !self.local && self.failure.is_unanswered()
    }

    /// Nothing came back, and not for the probe's own machine: what loss, a dead link
    /// or a censor's drop leave.
    pub fn silent(&self) -> bool {
        !self.local && self.failure.is_timeout()
    }

    /// Torn down by the far side or the path (reset, closed): an answer, where a
    /// timeout says nothing.
    pub fn torn_down(&self) -> bool {
        !self.local && self.failure.is_reset_or_eof()
    }

    pub fn new(failed_operation: Operation, failure: Failure) -> StepError {
        StepError {
            local: failure.is_local(),
            failure,
            failed_operation,
        }
    }

    /// The same error, known to be the probe's own (e.g. no route to the address).
    pub fn from_probe(self) -> StepError {
        StepError {
            local: true,
            ..self
        }
    }

    pub fn io(failed_operation: Operation, err: &io::Error) -> StepError {
        StepError::new(failed_operation, Failure::from_io(err))
    }

    pub fn timeout(failed_operation: Operation) -> StepError {
        StepError::new(failed_operation, Failure::GenericTimeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        for (failure, name) in Failure::NAMED.iter() {
            assert_eq!(failure.to_string(), *name);
            assert_eq!(name.parse::<Failure>().unwrap(), *failure);
        }
        let odd = Failure::Unknown("weird thing".into());
        assert_eq!(odd.to_string(), "unknown_failure: weird thing");
        assert_eq!(odd.to_string().parse::<Failure>().unwrap(), odd);
        // An address in one read back (an older run's, another tool's) is scrubbed.
        let leaky = "unknown_failure: bind 203.0.113.77:40000 failed";
        let read: Failure = serde_json::from_value(serde_json::json!(leaky)).unwrap();
        assert_eq!(read.to_string(), "unknown_failure: bind [scrubbed] failed");
        assert_eq!(
            Failure::from_ooni("bind 203.0.113.77:40000 failed").to_string(),
            "unknown_failure: bind [scrubbed] failed"
        );
    }

    #[test]
    fn io_kinds_map_to_ooni_strings() {
        let cases = [
            (io::ErrorKind::ConnectionRefused, "connection_refused"),
            (io::ErrorKind::ConnectionReset, "connection_reset"),
            (io::ErrorKind::UnexpectedEof, "eof_error"),
            (io::ErrorKind::NetworkUnreachable, "network_unreachable"),
            (io::ErrorKind::HostUnreachable, "host_unreachable"),
        ];
        for (kind, name) in cases {
            assert_eq!(Failure::from_io(&io::Error::from(kind)).to_string(), name);
        }
        // errno values as the kernel reports them on Linux
        assert_eq!(
            Failure::from_io(&io::Error::from_raw_os_error(104)),
            Failure::ConnectionReset
        );
        assert_eq!(
            Failure::from_io(&io::Error::from_raw_os_error(111)),
            Failure::ConnectionRefused
        );
    }

    #[test]
    fn the_probes_own_errors_are_local_and_read_back() {
        for (errno, name) in [
            (libc::EMFILE, "unknown_failure: too many open files"),
            (libc::ENFILE, "unknown_failure: too many open files"),
            (libc::ENOBUFS, "no_buffer_space"),
            (libc::EADDRNOTAVAIL, "address_not_available"),
            (libc::EADDRINUSE, "address_in_use"),
            (libc::ENETDOWN, "network_down"),
            (libc::EPERM, "permission_denied"),
        ] {
            let error = StepError::io(Operation::Connect, &io::Error::from_raw_os_error(errno));
            assert_eq!(error.failure.to_string(), name);
            assert!(error.local, "{name} is the probe's own");
            assert_eq!(name.parse::<Failure>().unwrap(), error.failure);
        }
        for remote in [libc::ECONNRESET, libc::ETIMEDOUT, libc::ENETUNREACH] {
            let error = StepError::io(Operation::Connect, &io::Error::from_raw_os_error(remote));
            assert!(!error.local, "{}", error.failure);
        }
        let json = serde_json::to_string(&StepError::new(
            Operation::Connect,
            Failure::TooManyOpenFiles,
        ))
        .unwrap();
        assert!(json.contains(r#""local_failure":true"#), "{json}");
        let remote = serde_json::to_string(&StepError::timeout(Operation::Connect)).unwrap();
        assert!(!remote.contains("local_failure"), "{remote}");
    }

    #[test]
    fn unknown_failure_texts_lose_their_addresses() {
        let err = io::Error::other("bind 192.0.2.1:0 to [2001:db8::1]:443 failed");
        assert_eq!(
            Failure::from_io(&err).to_string(),
            "unknown_failure: bind [scrubbed] to [scrubbed] failed"
        );
    }

    #[test]
    fn rustls_errors_inside_io_errors_are_found() {
        let err = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(Failure::from_io(&err), Failure::SslUnknownAuthority);
    }
}
