//! DNS over UDP: resends on a lossy link, and a listening window after the first reply
//! so that a forged answer racing the real one is seen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::message::{Question, Replies, reply_of};
use super::pace::Pace;
use super::{DnsIo, Exchange};
use crate::facts::DnsReply;
use crate::facts::failure::{Failure, Operation, StepError};

/// The largest UDP reply we read: our queries carry no EDNS, so a server sends at most
/// 512 bytes (truncating larger answers); anything beyond is someone else's datagram.
const MAX_DATAGRAM: usize = 4096;
/// Sends of one UDP query within its deadline, at most.
const RESENDS: u32 = 6;
/// Sends of one UDP query are at least this far apart.
const MIN_RESEND: Duration = Duration::from_millis(100);
/// How many deadlines past its own a query none of whose copies was answered in time is
/// listened to at most, while the probe goes on with the name (see [`Overdue`]).
const OVERDUE_DEADLINES: u32 = 2;

/// Sends the query (again every sixth of the deadline, each copy with an ID of its own
/// (see [`Copies`]): stub resolvers resend too, and a link losing one packet in six
/// still gets a reply through within the deadline) until a matching reply arrives or
/// the deadline passes, recording every datagram. After the first matching reply the
/// exchange returns at once, so that the target's connections can start, and a task of
/// its own keeps listening for the window (as long as `pace` says, at most `io.window`):
/// a forged answer usually wins the race, and the real one follows.
pub(super) async fn exchange(
    io: &DnsIo<'_>,
    pace: &Arc<Pace>,
    server: SocketAddr,
    query: &[u8],
    question: &Question,
) -> Result<Exchange, (Option<String>, StepError)> {
    let fail = |e: std::io::Error| {
        (
            Some(server.to_string()),
            StepError::io(Operation::Resolve, &e),
        )
    };
    // Given back at the first matching reply, or when the second copy goes out: a query
    // unanswered by then (lost, slow, or a censor's silence for the name) waits out its
    // deadline without keeping another from the resolver.
    let mut permit = Some(io.limits.query().await);
    let socket = UdpSocket::bind(io.dialer.local_for(server))
        .await
        .map_err(fail)?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + io.timeout;
    let resend_every = (io.timeout / RESENDS).max(MIN_RESEND);
    let mut next_send = tokio::time::Instant::now();
    let mut replies = Replies::default();
    let mut copies = Copies::new(query, question);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_send {
            if replies.sent == 1 {
                pace.first_copy(started, false);
                drop(permit.take());
            }
            socket.send_to(copies.next(), server).await.map_err(fail)?;
            replies.sent += 1;
            next_send = now + resend_every;
        }
        match tokio::time::timeout_at(deadline.min(next_send), socket.recv_from(&mut buf)).await {
            Err(_) => continue,
            Ok(Err(e)) => {
                // ICMP errors (port or network unreachable) surface here on Linux.
                if replies.kept.is_empty() {
                    return Err(fail(e));
                }
                break;
            }
            Ok(Ok((len, source))) => {
                let reply = copies.reply(&buf[..len], source.to_string(), started);
                let matched = reply.matches_query;
                let copy = copies.number(reply.id);
                copies.time(&reply, started, pace);
                replies.push(reply);
                if matched {
                    if replies.sent == 1 {
                        pace.first_copy(started, true);
                    }
                    let late = Late {
                        socket,
                        server,
                        copies,
                        first_reply: tokio::time::Instant::now(),
                        resends: pace.copies(resend_every),
                        configured: io.window,
                        deadline,
                        pace: pace.clone(),
                        started,
                    };
                    let kept = std::mem::take(&mut replies.kept);
                    let sent = replies.sent;
                    return Ok(Exchange {
                        server: server.to_string(),
                        replies: kept,
                        dropped: 0,
                        sent,
                        answered_copy: copy,
                        late: Some(tokio::spawn(late.listen(replies))),
                        overdue: None,
                        whole_failed: None,
                    });
                }
            }
        }
    }
    let overdue = (tokio::time::Instant::now() >= deadline).then(|| {
        let until = deadline + io.timeout * OVERDUE_DEADLINES;
        Overdue::listen(socket, copies, started, pace.clone(), until)
    });
    Ok(Exchange {
        server: server.to_string(),
        replies: replies.kept,
        dropped: replies.dropped,
        sent: replies.sent,
        answered_copy: 0,
        late: None,
        overdue,
        whole_failed: None,
    })
}

/// Listening on past the deadline of a query none of whose copies was answered in time,
/// until told to stop (when the lookup's facts are finished, once the probe is done
/// with the name: the lookup made again, the resolver checked) or a few deadlines on.
/// A resolver too slow for the deadline still answers, and its answer shows that the
/// name was not the reason; a censor's silence for the name does not end.
pub(super) struct Overdue {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Option<DnsReply>>,
}

impl Overdue {
    fn listen(
        socket: UdpSocket,
        copies: Copies,
        started: Instant,
        pace: Arc<Pace>,
        until: tokio::time::Instant,
    ) -> Overdue {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                tokio::select! {
                    biased;
                    got = tokio::time::timeout_at(until, socket.recv_from(&mut buf)) => {
                        let (len, source) = got.ok()?.ok()?;
                        let reply = copies.reply(&buf[..len], source.to_string(), started);
                        // A late answer is timed too: the resolver's pace is its late
                        // answers' as well. Not a late failure: a resolver's SERVFAIL
                        // after a censor dropped its queries upstream would pass for a
                        // slow resolver, and excuse every name's silence.
                        if Failure::from_rcode(&reply.rcode).is_none() {
                            copies.time(&reply, started, &pace);
                        }
                        if reply.matches_query {
                            return Some(reply);
                        }
                    }
                    _ = &mut stopped => return None,
                }
            }
        });
        Overdue { stop, task }
    }

    /// The first reply that matched the query, if one came by now.
    pub(super) async fn stop(self) -> Option<DnsReply> {
        // The task may have ended already, its receiver gone with it.
        let _ = self.stop.send(());
        self.task.await.ok().flatten()
    }
}

/// The copies of a UDP query sent so far, each after the first with an ID of its own:
/// a resolver may well answer two copies of one ID differently (a SERVFAIL, then the
/// answer it has since cached), and only two different answers to one copy are an
/// injection.
struct Copies {
    query: Vec<u8>,
    ids: Vec<u16>,
    question: Question,
}

impl Copies {
    fn new(query: &[u8], question: &Question) -> Copies {
        Copies {
            query: query.to_vec(),
            ids: Vec::new(),
            question: question.clone(),
        }
    }

    /// Which copy (from 1) a reply with `id` answers; the latest where none has it.
    fn number(&self, id: u16) -> u32 {
        let at = self.ids.iter().position(|&copy| copy == id);
        at.unwrap_or(self.ids.len().saturating_sub(1)) as u32 + 1
    }

    /// The next copy to send.
    fn next(&mut self) -> &[u8] {
        let id = match self.ids.is_empty() {
            true => self.question.id,
            false => rand::random(),
        };
        self.ids.push(id);
        self.query[..2].copy_from_slice(&id.to_be_bytes());
        &self.query
    }

    /// Times a reply to the first copy that answers the question (a later copy's
    /// reply may answer an earlier one: its time says nothing).
    fn time(&self, reply: &DnsReply, started: Instant, pace: &Pace) {
        if reply.matches_query && reply.id == self.question.id {
            pace.answered(started.elapsed());
        }
    }

    /// A datagram read as a reply to whichever copy its ID names.
    fn reply(&self, bytes: &[u8], source: String, started: Instant) -> DnsReply {
        let id = u16::from_be_bytes([
            bytes.first().copied().unwrap_or(0),
            bytes.get(1).copied().unwrap_or(0),
        ]);
        let question = Question {
            id: if self.ids.contains(&id) {
                id
            } else {
                self.question.id
            },
            ..self.question.clone()
        };
        reply_of(bytes, source, started, &question)
    }
}

/// The listening window of a UDP query after its first reply.
struct Late {
    socket: UdpSocket,
    server: SocketAddr,
    copies: Copies,
    first_reply: tokio::time::Instant,
    /// Copies to send during the window (see [`Pace::copies`]).
    resends: u32,
    /// The longest window, and the query's deadline, which it never passes.
    configured: Duration,
    deadline: tokio::time::Instant,
    pace: Arc<Pace>,
    started: Instant,
}

impl Late {
    /// The window by the resolver's pace as it is now: another query's slow answer may
    /// stretch it while this one listens.
    fn window(&self) -> Duration {
        self.pace.window(self.configured)
    }

    /// Every datagram that arrives until the window's end, added to `replies` (so that
    /// the bounds count the replies before the first answer too), while the query is
    /// sent again `resends` times spread over the window: on a lossy link, an
    /// injector's reply and the real one to one copy must both come through.
    async fn listen(mut self, mut replies: Replies) -> Replies {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut last_send = self.first_reply;
        let mut left = self.resends;
        loop {
            let window = self.window();
            let end = (self.first_reply + window).min(self.deadline);
            // The copies left, spread over what is left of the window: one that shrank
            // while this query listened (its resolver's pace learnt meanwhile, at a
            // run's start) still gets them all, where spacing them by the window alone
            // had left some unsent.
            let next_send = match left {
                0 => end,
                _ => last_send + end.saturating_duration_since(last_send) / (left + 1),
            };
            let now = tokio::time::Instant::now();
            if now >= end {
                break;
            }
            if now >= next_send {
                let copy = self.copies.next();
                if self.socket.send_to(copy, self.server).await.is_ok() {
                    replies.sent += 1;
                }
                last_send = now;
                left -= 1;
                continue;
            }
            match tokio::time::timeout_at(next_send.min(end), self.socket.recv_from(&mut buf)).await
            {
                Ok(Ok((len, source))) => {
                    let reply = self
                        .copies
                        .reply(&buf[..len], source.to_string(), self.started);
                    self.copies.time(&reply, self.started, &self.pace);
                    replies.push(reply);
                }
                Ok(Err(_)) => break,
                Err(_) => {}
            }
        }
        replies
    }
}
