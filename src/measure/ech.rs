//! The ECH comparison (see [`EchFacts`]): after a handshake with a target's name went
//! through on TLS 1.3, handshakes with the same name to the same address with and
//! without a GREASE ECH extension.
//!
//! The order, and why: first one with ECH alone. Where it goes through, ECH passes and
//! nothing is left to compare: an uncensored address and name cost one handshake more,
//! once per run (a domain and its URL share it). Where it fails, rounds follow: one
//! without ECH and one with, in random order, and a second round only when the first
//! round's handshake with ECH failed and the one without went through. A censor that
//! keys on ECH and the name fails every handshake with ECH and none without; loss fails
//! one now and then, whichever it is; a block of the address that lingers (another
//! name's residual block ending, or one the ECH hello set off) fails those after it,
//! whichever they are. Random order within each round keeps the ones with ECH from
//! always meeting the end or the start of such a block, as OONI's echcheck (ts-039)
//! orders its three handshakes at random for the same reason. With the target's own
//! handshake, the evidence for `ech-blocked` is then three handshakes without ECH that
//! went through and three with it that failed, the first right after the target's own
//! and the others in random order between those without. A censored address and name
//! cost five handshakes more; on a network seen turning steps down at random, where a
//! flaky middlebox tears down a longer ClientHello now and then, up to nine.
//!
//! Only TLS 1.3 is compared: ECH needs it, and a server that speaks only TLS 1.2 would
//! refuse any ClientHello offering only 1.3, with ECH or without. Real ECH, with a
//! configuration from the name's DNS HTTPS record, is not made: the probe's resolvers
//! are asked for A and AAAA records only.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use rustls::ClientConfig;
use rustls::client::{EchGreaseConfig, EchMode, Resumption};
use rustls::crypto::aws_lc_rs::hpke;
use tokio::sync::OnceCell;

use super::limits::{Held, Limits};
use super::tls::{self, TlsContext};
use super::{Measurer, now};
use crate::facts::{
    EchFacts, EchHandshake, EchOffer, HttpFacts, Measurement, Step, TlsFacts, Trigger, Vantage,
};
use crate::input::targets::{Target, TargetKind};

/// Rounds after a first handshake with ECH that failed, at most: the second only after
/// the first's handshake with ECH failed too.
const ROUNDS: usize = 2;

/// When a measurer makes the comparison. A control's only tells a probe whose own
/// comparison failed whether the server takes ECH, so a probe asks for it then, not
/// with every target: one handshake fewer per target for the control and the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum EchPlan {
    /// After every handshake with a target's name that can tell (see [`informative`]).
    #[default]
    Always,
    /// Never: the probe asks for it later where it needs it.
    Later,
    /// Nothing but the comparison ([`Measurer::ech_only`], which the control calls in
    /// place of the target's measurement): what a probe asks for where its own failed.
    /// A measurement made with this plan makes none.
    Only,
}

impl EchPlan {
    pub const ALL: [EchPlan; 3] = [EchPlan::Always, EchPlan::Later, EchPlan::Only];

    /// As the control protocol names it (`?ech=`).
    pub fn name(self) -> &'static str {
        match self {
            EchPlan::Always => "always",
            EchPlan::Later => "later",
            EchPlan::Only => "only",
        }
    }

    /// Whether the comparison follows a handshake with a target's name (see
    /// [`informative`]).
    pub fn after_handshakes(self) -> bool {
        self == EchPlan::Always
    }

    pub fn parse(name: &str) -> Option<EchPlan> {
        EchPlan::ALL.into_iter().find(|plan| plan.name() == name)
    }
}

/// The configurations and the comparisons made in a run.
pub struct Ech {
    /// TLS 1.3 only, as the one with ECH is, so that the two ClientHellos differ in the
    /// ECH extension alone.
    plain: Arc<ClientConfig>,
    grease: Arc<ClientConfig>,
    made: Mutex<HashMap<(SocketAddr, String), Cell>>,
}

/// A comparison, made by the first target to need it.
type Cell = Arc<OnceCell<Arc<Made>>>;

/// A comparison, with when it began and how long it took.
struct Made {
    measured_at: DateTime<Utc>,
    runtime_ms: f64,
    facts: EchFacts,
}

impl Made {
    fn measurement(&self, vantage: Vantage, target: &Target) -> Measurement {
        Measurement {
            vantage,
            service: target.service.clone(),
            target: target.to_string(),
            measured_at: self.measured_at,
            runtime_ms: self.runtime_ms,
            step: Step::Ech(self.facts.clone()),
        }
    }
}

impl Ech {
    pub fn new(tls: &TlsContext) -> anyhow::Result<Ech> {
        // What Chrome and Firefox GREASE with: X25519, HKDF-SHA256, AES-128-GCM.
        let suite = hpke::DH_KEM_X25519_HKDF_SHA256_AES_128;
        let (placeholder, _) = rustls::crypto::hpke::Hpke::generate_key_pair(suite)
            .context("cannot make a GREASE ECH key")?;
        let builder = || ClientConfig::builder_with_provider(tls::provider());
        let plain = builder()
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("cannot configure TLS 1.3")?;
        let grease = builder()
            .with_ech(EchMode::Grease(EchGreaseConfig::new(suite, placeholder)))
            .context("cannot configure GREASE ECH")?;
        // Full handshakes every time: a resumed one carries a ticket, and the
        // ClientHellos compared would differ in more than the ECH extension.
        let fresh = |builder| {
            let mut config = tls.recording(builder);
            config.resumption = Resumption::disabled();
            Arc::new(config)
        };
        Ok(Ech {
            plain: fresh(plain),
            grease: fresh(grease),
            made: Mutex::default(),
        })
    }

    fn config(&self, offer: EchOffer) -> Arc<ClientConfig> {
        match offer {
            EchOffer::None => self.plain.clone(),
            EchOffer::Grease => self.grease.clone(),
        }
    }

    fn cell(&self, address: SocketAddr, name: &str) -> Cell {
        let key = (address, name.to_ascii_lowercase());
        super::address::kept_entry(&self.made, key, |cell| cell.get().is_none())
    }
}

/// Whether the comparison can tell anything after a handshake with the target's name:
/// it went through on TLS 1.3, with a certificate that vouches for the name (valid, or
/// valid but for its dates: a probe's clock far off leaves the site's own).
pub fn informative(facts: &TlsFacts) -> bool {
    facts.vouches_for_name() && facts.tls_version.as_deref() == Some("TLSv1.3")
}

impl Measurer {
    /// The ECH comparison for `name` at `address`, made once per run for every target
    /// that reached it with that name (the others wait for it), recorded as one of
    /// `target`'s measurements. The caller holds a place on the address.
    pub(super) async fn ech(
        &self,
        target: &Target,
        name: &str,
        address: SocketAddr,
    ) -> Measurement {
        let made = self
            .ech
            .cell(address, name)
            .get_or_init(|| async { Arc::new(self.compare(target, name, address).await) })
            .await
            .clone();
        made.measurement(self.options.vantage, target)
    }

    /// The ECH comparison after a fetch whose first hop's handshake is informative
    /// (see [`informative`]), with that hop's name and address, in a place there (the
    /// fetch's, if `held` has it).
    pub(super) async fn ech_after(
        &self,
        target: &Target,
        fetch: &HttpFacts,
        held: &mut Held,
    ) -> Option<Measurement> {
        if !self.options.ech.after_handshakes() {
            return None;
        }
        let tls = fetch
            .hops
            .first()?
            .tls
            .as_ref()
            .filter(|t| informative(t))?;
        held.on(&self.limits, tls.address.ip()).await;
        Some(self.ech(target, &tls.server_name, tls.address).await)
    }

    /// The comparisons alone, with the target's name at each of `addresses` (see
    /// [`EchPlan::Only`]), each in a place on its address.
    pub async fn ech_only(&self, target: &Target, addresses: &[IpAddr]) -> Vec<Measurement> {
        let (name, ports) = match &target.kind {
            TargetKind::Domain(domain) => (domain.as_str(), target.tls_ports.to_vec()),
            // A name's only: an address has no name to offer ECH with.
            TargetKind::Url(url) => match (url.host(), url.port_or_known_default()) {
                (Some(url::Host::Domain(host)), Some(port)) if url.scheme() == "https" => {
                    (host, vec![port])
                }
                _ => return Vec::new(),
            },
            TargetKind::Endpoint(_) => return Vec::new(),
        };
        let comparisons = addresses.iter().flat_map(|ip| {
            ports.iter().map(move |port| async move {
                let _host = self.limits.host(*ip).await;
                self.ech(target, name, SocketAddr::new(*ip, *port)).await
            })
        });
        Limits::measuring(join_all(comparisons)).await
    }

    /// The rounds (see the module's comment), logged as a step that may set off a
    /// residual block on the address.
    async fn compare(&self, target: &Target, name: &str, address: SocketAddr) -> Made {
        let started = now();
        let ticket = self.addresses.open(address.ip(), started.0);
        let mut handshakes = vec![self.ech_handshake(address, name, EchOffer::Grease).await];
        let mut rounds = 0;
        while !handshakes[0].handshake_done && rounds < self.ech_rounds() {
            rounds += 1;
            let mut round = [EchOffer::None, EchOffer::Grease];
            if rand::random() {
                round.reverse();
            }
            for offer in round {
                handshakes.push(self.ech_handshake(address, name, offer).await);
            }
            let singled_out = handshakes[handshakes.len() - 2..]
                .iter()
                .all(|h| match h.ech {
                    EchOffer::None => h.handshake_done,
                    EchOffer::Grease => h.torn_down(),
                });
            if !singled_out {
                break;
            }
        }
        let made = Made {
            measured_at: started.0,
            runtime_ms: started.1.elapsed().as_secs_f64() * 1000.0,
            facts: EchFacts {
                address,
                server_name: name.to_string(),
                handshakes,
            },
        };
        ticket.end(Trigger::of(&made.measurement(self.options.vantage, target)));
        made
    }

    /// The rounds after a first handshake with ECH that failed, at most: two more on a
    /// network seen turning steps down at a try and letting them through at a later one
    /// (see `Again::on`), where a handshake with ECH, longer than one without, is torn
    /// down at random now and then.
    fn ech_rounds(&self) -> usize {
        match self.turned_down.any_made_again() {
            true => ROUNDS + 2,
            false => ROUNDS,
        }
    }

    /// One handshake, on a new connection, sent in its address's turn.
    async fn ech_handshake(
        &self,
        address: SocketAddr,
        name: &str,
        offer: EchOffer,
    ) -> EchHandshake {
        let set_out = now();
        let work = self.limits.work().await;
        // A connect turned down at random sends no ECH, and would leave the round without
        // its handshake: made again, as any connect is.
        let stream = self.dial_again(&[address]).await.kept.result;
        let (facts, (measured_at, began)) = match stream.map(|(stream, _)| stream) {
            Err(error) => {
                let failed = TlsFacts {
                    error: Some(error),
                    ..TlsFacts::new(address, name, false)
                };
                (failed, set_out)
            }
            Ok(stream) => {
                let config = self.ech.config(offer);
                let timeout = self.options.timeout;
                let handshake = |stream| {
                    self.tls
                        .handshake_with(config, stream, address, name, false, timeout)
                };
                let ((facts, _), sent) = self
                    .in_turn_at_work(work, stream, address, true, handshake)
                    .await;
                (facts, sent)
            }
        };
        EchHandshake {
            ech: offer,
            measured_at,
            runtime_ms: began.elapsed().as_secs_f64() * 1000.0,
            handshake_done: facts.handshake_done,
            error: facts.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(ech: &Ech, offer: EchOffer, name: &str) -> Vec<u8> {
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(ech.config(offer), name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    /// The bytes the testbed's censor (scenarios/ech-block.sh) looks for: the ECH
    /// extension's type and length, then the outer form with HKDF-SHA256 and AES-128-GCM.
    fn censors_pattern() -> Vec<u8> {
        let script = include_str!("../../scripts/testbed/scenarios/ech-block.sh");
        let hex = script
            .split("--hex-string '|")
            .nth(1)
            .and_then(|rest| rest.split('|').next())
            .expect("a --hex-string in ech-block.sh");
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn only_the_grease_hello_carries_the_ech_extension_the_testbed_looks_for() {
        let tls = TlsContext::new(tls::root_store(None).unwrap()).unwrap();
        let ech = Ech::new(&tls).unwrap();
        let pattern = censors_pattern();
        let carries = |bytes: &[u8]| bytes.windows(pattern.len()).any(|w| w == pattern);
        for name in ["cloudflare-ech.test", "canary.test", "www.example.com"] {
            // The GREASE payload is random: more than one hello each.
            for _ in 0..20 {
                assert!(carries(&hello(&ech, EchOffer::Grease, name)), "{name}");
                assert!(!carries(&hello(&ech, EchOffer::None, name)), "{name}");
            }
        }
    }
}
