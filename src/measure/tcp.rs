//! TCP connect with a deadline, from a chosen source address, tried again when nothing
//! answers.
//!
//! A SYN lost on a bad link and a SYN dropped by a censor look the same once: both time
//! out. They differ when tried again: loss spares some tries, a blackhole none. So a
//! connect that has had no answer after a third of the deadline is tried again from a
//! fresh source port (a new flow for every NAT and firewall on the way) while the first
//! try still waits, and again after two thirds; if the deadline passes with none
//! answered, the whole round is made once more after a short pause. A router's word
//! that the address is unreachable counts as no answer (routes flap; censors forge it);
//! a refusal or a reset is an answer, and is not tried again here (the measurer makes
//! the whole connect again; see `measure::Again`), but for one that came after a SYN to
//! the address went unanswered (the try's own first, or an earlier try's): a censor
//! refuses every SYN at once, so that refusal is a fault's (a flaky middlebox in front
//! of a blackhole), and the dial goes on, till a second one. A live server answers the
//! first try at once, so it never sees a second.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use super::meanwhile::Exchanges;
use crate::facts::Meanwhile;
use crate::facts::failure::{Failure, Operation, StepError};

/// Tries in one round: the first at once, the others a third and two thirds of the
/// deadline later.
const TRIES_PER_ROUND: u32 = 3;
/// Rounds: the second one only when every try of the first timed out.
const ROUNDS: u32 = 2;
const _: () = assert!(ROUNDS * TRIES_PER_ROUND == Meanwhile::CONNECT_TRIES);
/// The pause between rounds: long enough for a burst of loss or a full NAT table to pass.
/// A dial's own pause is drawn from half of this to this, so that dials begun together
/// do not try again together, and none waits longer than this.
pub const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// An attempt unanswered this long is almost surely lost (or blackholed): it gives back
/// its place among the fresh attempts (see [`Dialer`]) while it goes on waiting.
const PRESUMED_LOST: Duration = Duration::from_secs(1);

/// How connections are made: within a deadline, and from `source` when one is set
/// (a multi-homed host choosing its interface; a lab telling its vantage points apart).
///
/// `fresh`, when set, bounds the connection attempts that are young (sent less than
/// `PRESUMED_LOST` ago and unanswered) across the whole run: a home router's NAT table
/// sees at most that many new flows at once from the probe. An attempt that goes
/// unanswered longer stops counting, so blackholed addresses never make the others wait.
#[derive(Debug, Clone)]
pub struct Dialer {
    pub timeout: Duration,
    pub source: Option<IpAddr>,
    pub fresh: Option<Arc<Semaphore>>,
    /// Where connects answered are counted, for the network checks (see `meanwhile`).
    pub answered: Option<Arc<Exchanges>>,
}

/// A connection made with [`Dialer::dial`], or why none could be; and the tries made.
pub struct Dialed {
    pub result: Result<(TcpStream, SocketAddr), StepError>,
    /// The address of the last try (the one that connected, on success).
    pub address: SocketAddr,
    pub tries: u32,
}

impl Dialer {
    pub fn new(timeout: Duration, source: Option<IpAddr>) -> Dialer {
        Dialer {
            timeout,
            source,
            fresh: None,
            answered: None,
        }
    }

    /// The local address to bind a socket talking to `peer` to (port 0: any).
    pub fn local_for(&self, peer: SocketAddr) -> SocketAddr {
        let ip = match (self.source, peer) {
            (Some(source), _) if source.is_ipv4() == peer.is_ipv4() => source,
            (_, SocketAddr::V4(_)) => Ipv4Addr::UNSPECIFIED.into(),
            (_, SocketAddr::V6(_)) => Ipv6Addr::UNSPECIFIED.into(),
        };
        SocketAddr::new(ip, 0)
    }

    /// One connect, telling a refusal, a reset, an unreachable network and a silent drop
    /// (our own deadline) apart, as the kernel reported them.
    pub async fn connect(&self, addr: SocketAddr) -> Result<TcpStream, StepError> {
        self.attempt(addr, self.timeout, None).await
    }

    /// Connects to the first of `addresses` that answers, trying again as the module
    /// says; the tries go round the addresses in turn.
    pub async fn dial(&self, addresses: &[SocketAddr]) -> Dialed {
        let Some(&first) = addresses.first() else {
            return Dialed {
                result: Err(StepError::new(Operation::Connect, Failure::DnsNoAnswer)),
                address: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                tries: 0,
            };
        };
        let mut tries = 0;
        let mut address = first;
        // A router's word that an address is unreachable, which says more than silence.
        let mut unreachable = None;
        // Whether a refusal or reset came amid silence (see `silent_before`) already.
        let mut refused_amid_silence = false;
        // The addresses a try of this dial went unanswered at.
        let mut went_silent: Vec<SocketAddr> = Vec::new();
        // Whether a try waited for a place among the fresh attempts: its wait is this
        // probe's own pace, not the network's answer (see `Exchanges`).
        let queued = AtomicBool::new(false);
        let queued = &queued;
        for round in 0..ROUNDS {
            if round > 0 {
                tokio::time::sleep(pause()).await;
            }
            let round_start = tokio::time::Instant::now();
            let deadline = round_start + self.timeout;
            let dues = schedule(self.timeout).map(|after| round_start + after);
            let mut pending = FuturesUnordered::new();
            // The tries of this round not yet answered, in the order they were made.
            let mut waiting: Vec<(u32, SocketAddr)> = Vec::new();
            let mut started = 0;
            loop {
                let due = dues.get(started as usize).copied().unwrap_or(deadline);
                if started < TRIES_PER_ROUND && tokio::time::Instant::now() >= due {
                    address = addresses[tries as usize % addresses.len()];
                    let (to, left, n) = (
                        address,
                        deadline - tokio::time::Instant::now().min(deadline),
                        tries,
                    );
                    tries += 1;
                    started += 1;
                    waiting.push((n, to));
                    pending.push(async move {
                        let sent = tokio::time::Instant::now();
                        let result = self.attempt(to, left, Some(queued)).await;
                        (n, to, sent.elapsed(), result)
                    });
                    continue;
                }
                tokio::select! {
                    Some((n, to, took, result)) = pending.next() => {
                        waiting.retain(|(i, _)| *i != n);
                        // Refused or reset after the try, or one before it to the same
                        // address, had gone unanswered: its first SYN, or theirs.
                        let silent_before = took >= PRESUMED_LOST
                            || went_silent.contains(&to)
                            || waiting.iter().any(|(i, there)| *i < n && *there == to);
                        match result {
                            Ok(stream) => {
                                if let Some(answered) = self.answered.as_ref().filter(|_| !queued.load(Ordering::Relaxed)) {
                                    // The tries to the address that answered: one elsewhere
                                    // may have met a block of that address.
                                    let there = (0..tries)
                                        .filter(|i| addresses[*i as usize % addresses.len()] == to)
                                        .count();
                                    answered.answered(u32::try_from(there).unwrap_or(u32::MAX));
                                }
                                return Dialed { result: Ok((stream, to)), address: to, tries };
                            }
                            Err(e) if e.unanswered() => {
                                went_silent.push(to);
                                if !e.failure.is_timeout() {
                                    unreachable = Some((to, e));
                                }
                            }
                            // A second refusal ends the dial, as a first with no silence
                            // before it does: a middlebox resetting a few packets in a
                            // hundred seldom meets two SYNs of one dial, and a censor that
                            // refuses every SYN must not wait out its silences under loss.
                            Err(e) if e.failure.is_turned_down()
                                && !queued.load(Ordering::Relaxed)
                                && silent_before
                                && !refused_amid_silence =>
                            {
                                refused_amid_silence = true;
                            }
                            Err(e) => return Dialed { result: Err(e), address: to, tries },
                        }
                        if pending.is_empty() && started == TRIES_PER_ROUND {
                            break;
                        }
                    },
                    () = tokio::time::sleep_until(due), if started < TRIES_PER_ROUND => {}
                    else => break,
                }
            }
        }
        // One refusal amid silence, and the others silent: a flaky middlebox in front of a
        // blackhole.
        let (address, error) =
            unreachable.unwrap_or((address, StepError::timeout(Operation::Connect)));
        Dialed {
            result: Err(error),
            address,
            tries,
        }
    }

    /// One try within `timeout`, holding a place among the fresh attempts until it is
    /// answered or presumed lost; `queued`, if given, is set if it had to wait for one.
    async fn attempt(
        &self,
        addr: SocketAddr,
        timeout: Duration,
        queued: Option<&AtomicBool>,
    ) -> Result<TcpStream, StepError> {
        let fail = |e: std::io::Error| StepError::io(Operation::Connect, &e);
        let place = match &self.fresh {
            Some(fresh) => Some(match fresh.clone().try_acquire_owned() {
                Ok(place) => place,
                Err(_) => {
                    if let Some(queued) = queued {
                        queued.store(true, Ordering::Relaxed);
                    }
                    fresh.clone().acquire_owned().await.expect("never closed")
                }
            }),
            None => None,
        };
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(fail)?;
        if self.source.is_some() {
            socket.bind(self.local_for(addr)).map_err(fail)?;
        }
        // Small request writes should leave at once, as a browser's do.
        socket.set_nodelay(true).map_err(fail)?;
        // Closed with a reset, not a FIN: the kernel would otherwise go on sending what
        // a silenced connection had not got through (a forbidden ClientHello) for
        // minutes after we gave up, each copy renewing a censor's residual block of the
        // address; and a reset frees a NAT's entry at once.
        socket.set_zero_linger().map_err(fail)?;
        let connect = tokio::time::timeout(timeout, socket.connect(addr));
        tokio::pin!(connect);
        let result = match place {
            None => connect.await,
            Some(place) => tokio::select! {
                result = &mut connect => result,
                () = tokio::time::sleep(PRESUMED_LOST.min(timeout)) => {
                    drop(place);
                    connect.await
                }
            },
        };
        match result {
            Err(_) => Err(StepError::timeout(Operation::Connect)),
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(self.own_or_not(addr, fail(e))),
        }
    }

    /// An unreachable network is the probe's own when its machine has no route there
    /// (no IPv6, a link down), and the network's when a router said so (possibly a
    /// censor's ICMP). A UDP socket's connect looks the route up and sends nothing.
    fn own_or_not(&self, addr: SocketAddr, e: StepError) -> StepError {
        if !matches!(
            e.failure,
            Failure::NetworkUnreachable | Failure::HostUnreachable
        ) {
            return e;
        }
        let routed = std::net::UdpSocket::bind(self.local_for(addr))
            .and_then(|socket| socket.connect(addr))
            .is_ok();
        match routed {
            true => e,
            false => e.from_probe(),
        }
    }
}

/// When a round's tries are made, after its start: the first at once, each later one
/// a third of the deadline after the round began times its place, and up to a sixth
/// later (see [`spread`]): never sooner, so that the first try is alone for a third of
/// the deadline, as the network checks take it to be (`facts::Check::first_tries`).
fn schedule(timeout: Duration) -> [Duration; TRIES_PER_ROUND as usize] {
    let third = timeout / TRIES_PER_ROUND;
    std::array::from_fn(|k| match u32::try_from(k).expect("a try of a round") {
        0 => Duration::ZERO,
        k => spread(third * k, third / 2),
    })
}

/// A dial's pause between rounds (see [`RETRY_PAUSE`]).
fn pause() -> Duration {
    spread(RETRY_PAUSE / 2, RETRY_PAUSE / 2)
}

/// `at`, moved later by up to `by` at random.
///
/// Dials begun together (a run's opening burst, the targets on a list's first addresses)
/// would otherwise make their later tries, and the kernel its SYNs' copies, at the same
/// instants. A firewall or NAT that lets so many new flows through a second (a token
/// bucket) serves tries that come one by one as its tokens come back, and drops most of
/// a burst: the dials made together then lose every try, as if blackholed, while the
/// run's other connects, and the canary's, went through. Spread out, each try meets the
/// network's limit as the others do, and the share of tries the run's connects lost
/// (see `analyse::explain::failing`) tells what one dial's tries all lost is worth.
fn spread(at: Duration, by: Duration) -> Duration {
    at + by.mul_f64(rand::random::<f64>())
}

/// Whether this machine can send from `source`: an address it does not have fails
/// every measurement, so it is refused before any is made.
pub fn check_source(source: IpAddr) -> Result<(), StepError> {
    std::net::UdpSocket::bind(SocketAddr::new(source, 0))
        .map(drop)
        .map_err(|e| StepError::io(Operation::Connect, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rounds_later_tries_and_its_pause_are_drawn_apart_within_their_bounds() {
        let timeout = Duration::from_secs(3);
        let third = timeout / TRIES_PER_ROUND;
        let schedules: Vec<_> = (0..200).map(|_| schedule(timeout)).collect();
        for (k, nominal) in [(1, third), (2, third * 2)] {
            let at: Vec<Duration> = schedules.iter().map(|s| s[k]).collect();
            let (first, last) = (at.iter().min().unwrap(), at.iter().max().unwrap());
            assert!(
                *first >= nominal && *last <= nominal + third / 2,
                "try {k} at its time or up to a sixth of the deadline later: {first:?} to {last:?}"
            );
            assert!(
                *last - *first >= third * 2 / 5,
                "try {k} of 200 dials spread over most of a sixth of the deadline: {first:?} to {last:?}"
            );
        }
        assert!(
            schedules.iter().all(|s| s[0].is_zero() && s[1] < s[2]),
            "the first try at once, the others in order"
        );
        let pauses: Vec<_> = (0..200).map(|_| pause()).collect();
        let (shortest, longest) = (pauses.iter().min().unwrap(), pauses.iter().max().unwrap());
        assert!(
            *shortest >= RETRY_PAUSE / 2 && *longest <= RETRY_PAUSE,
            "pauses of half to all of RETRY_PAUSE: {shortest:?} to {longest:?}"
        );
        assert!(
            *longest - *shortest >= RETRY_PAUSE * 2 / 5,
            "pauses of 200 dials spread: {shortest:?} to {longest:?}"
        );
    }
}
