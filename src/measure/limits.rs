//! Bounds on the work in flight.
//!
//! Four kinds: a cap per server address (`--per-host`), held for a whole exchange with
//! that server, so that no server sees a burst from one probe (impolite, and a burst
//! can itself trip a censor's rate rules); a global cap on work (`--concurrency`):
//! TLS handshakes and HTTP transfers, which cost CPU and bandwidth (one whose server
//! has neither answered nor acknowledged it for longer than servers take costs
//! neither, and gives its place back: see [`Limits::during`]); a global cap on fresh
//! connection attempts (four per unit of `--concurrency`), so that a home router's NAT
//! table never sees thousands of new flows at once; and one on DNS queries
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
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::received::Watched;
use super::round_trips::RoundTrips;

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
    /// How long after they began the recent exchanges heard their server's first bytes.
    first_bytes: Mutex<RoundTrips>,
}

/// A place, held until dropped.
pub struct Permit {
    _held: OwnedSemaphorePermit,
}

/// How long a handshake or request keeps its work place while its server has sent
/// nothing back, at most. One answered by nothing for longer than its server's first
/// bytes take waits on the network, using neither the CPU nor the link, as a connect
/// whose SYN went unanswered does (see `tcp::Dialer`): a censor dropping the packets
/// that carry a forbidden name would otherwise hold a place for a timeout per name and
/// try, and every target behind them would wait. The hold follows how long the first
/// bytes of the run's recent exchanges took ([`RoundTrips`]), thrice their median, so
/// that a slow link's exchanges keep their places until their servers' bytes come
/// (the median, not the slowest: a place is the probe's bound on its own work, and
/// the slowest exchanges of a busy run wait on its CPU), and none is let go sooner
/// than [`SILENT_FLOOR`].
const SILENT_HOLD: Duration = Duration::from_secs(1);
const SILENT_FLOOR: Duration = Duration::from_millis(250);
const SILENT_MARGIN: u32 = 3;

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
            first_bytes: Mutex::default(),
        }
    }

    /// Runs `exchange` in the work place `place`: kept until it ends, or let go once
    /// the hold has passed with nothing received on its connection (`watched`) and what
    /// it sent unacknowledged (see [`Watched::unheard`]); the hold is three times the
    /// median time the run's recent exchanges took to hear their servers, 250 ms to
    /// 1 s. When its first bytes came, early or late, is timed for the holds after it.
    pub async fn during<F: Future>(
        &self,
        place: Permit,
        watched: &Watched,
        exchange: F,
    ) -> F::Output {
        let began = tokio::time::Instant::now();
        let hold = self.first_bytes().median().map_or(SILENT_HOLD, |median| {
            (median * SILENT_MARGIN).clamp(SILENT_FLOOR, SILENT_HOLD)
        });
        tokio::pin!(exchange);
        // The exchange first: what had come by the end of the hold is read, and counted,
        // before the hold is judged.
        let output = tokio::select! {
            biased;
            output = &mut exchange => output,
            () = tokio::time::sleep(hold) => match watched.unheard() {
                false => {
                    let _kept = place;
                    exchange.await
                }
                true => {
                    drop(place);
                    self.again_once_heard(watched, exchange).await
                }
            }
        };
        if let Some(first) = watched.tally.first() {
            self.first_bytes()
                .took(first.saturating_duration_since(began));
        }
        output
    }

    /// The rest of an exchange that gave its place back: a place is taken again once
    /// its server is heard after all (a lost ClientHello sent again, a late answer), so
    /// that what it then costs counts, while the exchange goes on meanwhile.
    async fn again_once_heard<F: Future>(&self, watched: &Watched, exchange: F) -> F::Output {
        tokio::pin!(exchange);
        tokio::select! {
            biased;
            output = &mut exchange => return output,
            () = watched.tally.heard() => {}
        }
        let _place = tokio::select! {
            biased;
            output = &mut exchange => return output,
            place = self.work() => place,
        };
        exchange.await
    }

    fn first_bytes(&self) -> std::sync::MutexGuard<'_, RoundTrips> {
        self.first_bytes.lock().expect("limits lock poisoned")
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
    use crate::measure::received::Watched;
    use crate::measure::round_trips::MIN_SAMPLES;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// How a loopback server takes what an exchange sends it.
    #[derive(Clone, Copy)]
    enum Server {
        /// It answers at once.
        Answers,
        /// Its kernel acknowledges, and it says nothing.
        Mute,
        /// Nothing reaches it: a censor dropping the exchange's packets.
        Dropped,
    }

    /// An exchange in one of `limits`' work places that sends a hello to a loopback
    /// server, taking it as `server` does, and reads until the server closes: the
    /// server's end, and the exchange's task.
    async fn exchange_with(
        limits: &Arc<Limits>,
        server: Server,
    ) -> (TcpStream, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut ours = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (theirs, _) = listener.accept().await.unwrap();
        if let Server::Dropped = server {
            let socket = socket2::SockRef::from(&theirs);
            crate::lab::blackhole::drop_packets(
                &socket,
                crate::lab::blackhole::Blackholed::Everyone,
            )
            .unwrap();
        }
        let watched = Watched::new(&ours);
        let place = limits.work().await;
        let limits = limits.clone();
        let exchange = tokio::spawn(async move {
            let mut stream = watched.counted(&mut ours);
            let waiting = async {
                stream.write_all(b"hello").await.unwrap();
                let mut buf = [0u8; 64];
                while stream.read(&mut buf).await.unwrap_or(0) > 0 {}
            };
            limits.during(place, &watched, waiting).await;
        });
        (theirs, exchange)
    }

    /// An exchange (see [`exchange_with`]): how long it kept its place, if it let it go
    /// `within` that long.
    async fn kept_place(
        limits: &Arc<Limits>,
        server: Server,
        within: Duration,
    ) -> Option<Duration> {
        let (mut theirs, exchange) = exchange_with(limits, server).await;
        let began = Instant::now();
        if let Server::Answers = server {
            let mut hello = [0u8; 5];
            theirs.read_exact(&mut hello).await.unwrap();
            theirs.write_all(b"\x16").await.unwrap();
        }
        let mut freed = None;
        while freed.is_none() && began.elapsed() < within {
            tokio::time::sleep(Duration::from_millis(10)).await;
            freed = limits.try_work().map(|_| began.elapsed());
        }
        // Closed, the server ends the exchange, which then times its first bytes.
        drop(theirs);
        tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .expect("the exchange ends with its connection")
            .unwrap();
        freed
    }

    /// An exchange whose packets go unacknowledged gives its place back after the hold;
    /// one its server answered, or only acknowledged (alive, if slow), keeps it.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn an_exchange_the_network_leaves_unanswered_gives_its_work_place_back() {
        let limits = Arc::new(Limits::new(1, 1));
        let within = SILENT_HOLD * 2;
        let dropped = kept_place(&limits, Server::Dropped, within).await;
        assert!(
            dropped.is_some_and(|kept| kept >= SILENT_HOLD),
            "kept {dropped:?}"
        );
        for server in [Server::Answers, Server::Mute] {
            assert_eq!(kept_place(&limits, server, within).await, None);
        }
    }

    /// Once the run's servers have answered at once, an exchange whose packets go
    /// unacknowledged holds its place for less than the most.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_hold_follows_how_soon_servers_answer() {
        let limits = Arc::new(Limits::new(1, 1));
        for _ in 0..MIN_SAMPLES {
            limits.first_bytes().took(Duration::from_millis(1));
        }
        let dropped = kept_place(&limits, Server::Dropped, SILENT_HOLD * 2).await;
        assert!(
            dropped.is_some_and(|kept| kept >= SILENT_FLOOR && kept < SILENT_HOLD),
            "kept {dropped:?}"
        );
    }

    /// A place given back is taken again once the server is heard after all: the path
    /// that dropped the exchange's packets lets them through again.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_place_given_back_is_taken_again_once_the_server_is_heard() {
        let limits = Arc::new(Limits::new(1, 1));
        let (mut theirs, exchange) = exchange_with(&limits, Server::Dropped).await;
        tokio::time::sleep(SILENT_HOLD + SILENT_HOLD / 2).await;
        assert!(limits.try_work().is_some(), "given back while unheard");
        socket2::SockRef::from(&theirs).detach_filter().unwrap();
        let mut hello = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(10), theirs.read_exact(&mut hello))
            .await
            .expect("the kernel sends the hello again")
            .unwrap();
        theirs.write_all(b"\x16").await.unwrap();
        let again = Instant::now();
        while limits.try_work().is_some() {
            assert!(
                again.elapsed() < Duration::from_secs(2),
                "taken again once heard"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(theirs);
        exchange.await.unwrap();
    }

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
