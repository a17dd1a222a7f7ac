//! Loopback lab shared by the integration tests: a test CA, DNS, TLS, HTTP and TCP
//! servers that play honest and censoring networks on 127.0.0.1, and a runner for the
//! real binary. Every server binds port 0 and runs as a tokio task, so it lives as long
//! as the test's runtime; nothing here ever talks to anything but loopback.
//!
//! Each test crate uses a different part of this module, so the crates declare it with
//! `#[allow(dead_code)]`.

#![allow(unused_imports)]

pub mod ca;
pub mod control;
pub mod dns;
pub mod http;
pub mod probe;
pub mod tcp;
pub mod tls;

pub use ca::TestCa;
pub use control::ControlServer;
pub use dns::{DnsBehaviour, DnsServer};
pub use http::{HttpServer, IRAN_BLOCKPAGE, test_page};
pub use tcp::{TcpBlackhole, accept_each, closed_port, listen};
pub use tls::{Healthy, TlsBehaviour, TlsServer};

use std::net::{IpAddr, Ipv4Addr};

/// The address every lab server listens on.
pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A bogon that Iran's DNS hijack answers with (its blockpage server); the probe must
/// never contact it, since it is not in `--treat-as-public 127.0.0.0/8`.
pub const IRAN_BLOCKPAGE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 10, 34, 34));
