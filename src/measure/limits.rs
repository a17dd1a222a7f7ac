//! Bounds on the work in flight.
//!
//! Four kinds: a cap per server address (`--per-host`), held for a whole exchange with
//! that server, so that no server sees a burst from one probe (impolite, and a burst
//! can itself trip a censor's rate rules); a global cap on work (`--concurrency`):
//! TLS handshakes and HTTP transfers, which cost CPU and bandwidth; a global cap on
//! fresh connection attempts (four per unit of `--concurrency`), so that a home
//! router's NAT table never sees thousands of new flows at once; and one on DNS queries
//! awaiting their first answer (`--concurrency`), so that a resolver's queue, which
//! every listening window follows, stays short. Waiting costs
//! nothing: a connect whose SYN went unanswered holds no work place, and gives its
//! fresh-attempt place back after a second (see `tcp::Dialer`), so that blackholed
//! targets cost their timeout in parallel instead of queueing behind each other.
//!
//! Work that carries on a target already begun (its ECH comparison, its twins, a
//! redirect's next hop, a retry) goes ahead of work that begins another: in a plain
//! queue, a target's last handshake waits behind the first handshakes of every target
//! started meanwhile, so that all of them finish together at the end of the run, each
//! holding its memory and its verdict until then. The same work is done in another
//! order, and the verdicts come as the run goes.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

tokio::task_local! {
    /// Whether the target being measured has held a work place (see [`Limits::measuring`]).
    static BEGUN: Cell<bool>;
}

pub struct Limits {
    work: Arc<Semaphore>,
    /// The one place in the queue for `work` that work beginning a target may wait in:
    /// work carrying a target on waits behind one such at most.
    beginning: Semaphore,
    queries: Arc<Semaphore>,
    connects: Arc<Semaphore>,
    per_host: usize,
    hosts: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

/// A place, held until dropped.
pub struct Permit {
    _held: OwnedSemaphorePermit,
}

/// The places a target holds on the addresses of the server it exchanges with, kept
/// from one of its steps to the next there (a fetch, then its twin and its ECH
/// comparison): let go between them, a place on a busy address goes to a target
/// beginning there, which holds it while it waits its turn for work, and the target
/// carrying on waits behind it after all (see the module's comment).
#[derive(Default)]
pub struct Held(Vec<(IpAddr, Permit)>);

impl Held {
    /// Holds a place on `ip`, the one already held there if any, and on no other
    /// address: waiting for one while holding another could stall a target
    /// redirected the other way round, each holding what the other awaits.
    pub async fn on(&mut self, limits: &Limits, ip: IpAddr) {
        self.0.retain(|(held, _)| *held == ip);
        if self.0.is_empty() {
            self.0.push((ip, limits.host(ip).await));
        }
    }
}

impl Limits {
    pub fn new(concurrency: usize, per_host: usize) -> Limits {
        Limits {
            work: Arc::new(Semaphore::new(concurrency.max(1))),
            beginning: Semaphore::new(1),
            // A query holds its place until answered, or for one resend interval
            // (`dns::udp`): more at once only queue at the resolver, and every query's
            // listening window, a multiple of the slowest answer of late, grows with
            // that queue. At a silent resolver, as many times this many are out as a
            // query has sends within its deadline (`dns::udp`'s `RESENDS`).
            queries: Arc::new(Semaphore::new(concurrency.max(1))),
            connects: Arc::new(Semaphore::new(concurrency.max(1) * 4)),
            per_host: per_host.max(1),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// A place for an exchange with the server at `host`.
    pub async fn host(&self, host: IpAddr) -> Permit {
        let semaphore = {
            let mut hosts = self.hosts.lock().expect("limits lock poisoned");
            hosts
                .entry(host)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
                .clone()
        };
        Permit {
            _held: semaphore.acquire_owned().await.expect("never closed"),
        }
    }

    /// Places on every one of `ips`, taken in address order, so that two targets over
    /// the same addresses never each hold what the other waits for.
    pub async fn hosts(&self, ips: impl IntoIterator<Item = IpAddr>) -> Held {
        let mut ips: Vec<IpAddr> = ips.into_iter().collect();
        ips.sort();
        ips.dedup();
        let mut held = Held::default();
        for ip in ips {
            held.0.push((ip, self.host(ip).await));
        }
        held
    }

    /// The places for fresh connection attempts, for `tcp::Dialer::fresh`.
    pub fn connects(&self) -> Arc<Semaphore> {
        self.connects.clone()
    }

    /// A place for work if one is free now: a connection already open may then be
    /// used at once, instead of waiting idle (a NAT or server drops idle connections,
    /// which would read as a reset).
    pub fn try_work(&self) -> Option<Permit> {
        let held = self.work.clone().try_acquire_owned().ok()?;
        let _ = BEGUN.try_with(|begun| begun.set(true));
        Some(Permit { _held: held })
    }

    /// A place for work: a handshake, a transfer. Connect after taking it, not before.
    /// Within [`Limits::measuring`], the places a target asks for before it holds one
    /// wait their turn among other targets' first, and those it asks for after go
    /// ahead of them.
    pub async fn work(&self) -> Permit {
        let begun = BEGUN.try_with(Cell::get).unwrap_or(false);
        let _line = match begun {
            true => None,
            false => Some(self.beginning.acquire().await.expect("never closed")),
        };
        let held = self
            .work
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let _ = BEGUN.try_with(|begun| begun.set(true));
        Permit { _held: held }
    }

    /// Runs `measure`, the measurement of one target, so that its work places after
    /// the first go ahead of other targets' first (see the module's comment).
    pub async fn measuring<F: Future>(measure: F) -> F::Output {
        BEGUN.scope(Cell::new(false), measure).await
    }

    /// A place for a DNS query until its first answer, or its first copy sent again.
    pub async fn query(&self) -> Permit {
        Permit {
            _held: self
                .queries
                .clone()
                .acquire_owned()
                .await
                .expect("never closed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three targets queue for their first place while another holds the only one; when
    /// that one lets it go and asks again, one of the three at most is served before it.
    #[tokio::test]
    async fn work_carrying_a_target_on_goes_ahead_of_work_beginning_others() {
        let limits = Arc::new(Limits::new(1, 1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let (begun, has_begun) = tokio::sync::oneshot::channel();
        let (go_on, may_go_on) = tokio::sync::oneshot::channel::<()>();
        let carried = {
            let (limits, order) = (limits.clone(), order.clone());
            tokio::spawn(Limits::measuring(async move {
                let first = limits.work().await;
                begun.send(()).unwrap();
                may_go_on.await.unwrap();
                drop(first);
                let _second = limits.work().await;
                order.lock().unwrap().push("carried on");
            }))
        };
        has_begun.await.unwrap();
        let beginners: Vec<_> = ["first", "second", "third"]
            .into_iter()
            .map(|name| {
                let (limits, order) = (limits.clone(), order.clone());
                tokio::spawn(Limits::measuring(async move {
                    let _place = limits.work().await;
                    order.lock().unwrap().push(name);
                }))
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        go_on.send(()).unwrap();
        carried.await.unwrap();
        for beginner in beginners {
            beginner.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let at = order.iter().position(|o| *o == "carried on").unwrap();
        assert!(at <= 1, "served in the order {order:?}");
        assert_eq!(order.len(), 4);
    }

    /// The places a target asks for at once before it holds any (a domain's addresses)
    /// all wait their turn behind other targets' first places asked for before.
    #[tokio::test]
    async fn a_target_asking_for_places_at_once_begins_in_line() {
        let limits = Arc::new(Limits::new(1, 1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = limits.work().await;
        let target = |name: &'static str, places: usize| {
            let (limits, order) = (limits.clone(), order.clone());
            tokio::spawn(Limits::measuring(async move {
                let place = || async {
                    let _place = limits.work().await;
                    order.lock().unwrap().push(name);
                    tokio::task::yield_now().await;
                };
                futures_util::future::join_all((0..places).map(|_| place())).await;
            }))
        };
        let mut targets = Vec::new();
        for (name, places) in [("first", 1), ("second", 1), ("both at once", 2)] {
            targets.push(target(name, places));
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for target in targets {
            target.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order, ["first", "second", "both at once", "both at once"]);
    }

    /// A target carrying on at an address it holds a place on waits for nothing; one
    /// going on to another address lets go of the first before it waits there.
    #[tokio::test]
    async fn held_places_are_kept_on_their_address_and_let_go_for_another() {
        use futures_util::FutureExt;
        let limits = Limits::new(8, 1);
        let (here, there): (IpAddr, IpAddr) =
            ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
        let mut held = limits.hosts([here]).await;
        let mut waiting_here = Box::pin(limits.host(here));
        assert!((&mut waiting_here).now_or_never().is_none());
        assert!(held.on(&limits, here).now_or_never().is_some());
        let _other = limits.host(there).await;
        let mut going_there = Box::pin(held.on(&limits, there));
        assert!((&mut going_there).now_or_never().is_none());
        assert!(waiting_here.now_or_never().is_some());
    }
}
