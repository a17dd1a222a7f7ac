//! HTTP: blockpage fingerprints first (they prove interference whatever else
//! happened), then a CDN's own challenge page (a difference, not interference), then a
//! failed fetch where the control's worked (a body that stopped dead among them: a
//! freeze), a transfer far slower than the control's (throttling), and a page that
//! differs from the control's.
//!
//! The page comparison is OONI's Web Connectivity rule, so that dynamic pages do not
//! read as blockpages: the status must match and at least one of body length
//! (proportion above 0.7), uncommon header names, or title words must match.
//!
//! A slow transfer is throttling only when it was capped (slow in its fastest quarter
//! second too: loss stalls a transfer between bursts at the path's speed, a throttle
//! caps that speed) and the same address, right after, sent the same URL at its best
//! four times faster than the throttled transfer typically flowed, with the control SNI
//! (the canary's name): a throttle keyed on the name spares that twin, a slow path does
//! not. The URL fetched with its own name once more after the twin must still be capped:
//! a path congested for the first transfer only is not (A/B/A). A transfer that stopped
//! dead is no throttle's: it is a freeze (`tls_stall`) when new connections froze again.
//! A TLS failure of the fetch is SNI filtering when the control-SNI handshakes to the
//! same address around it worked, as for domains.

use std::collections::BTreeSet;

use super::transport::{connect_problem, name_singled_out, slow_path, tcp_finding};
use super::{Blocking, Context, ControlSaw, Finding, Problem, explain, fingerprints};
use crate::facts::TargetFacts;
use crate::facts::failure::{Failure, Operation, StepError};
use crate::facts::{
    HttpFacts, HttpHop, Meanwhile, Measurement, RATED_SPAN_MS, STALL_BYTES, Step, THROTTLE_RATIO,
};

/// Below this many bytes a transfer is too short for its rate to mean anything.
const MIN_RATE_BYTES: u64 = 64 * 1024;
/// A throttle holds a transfer below this (bytes per second, 3 Mbit/s) even in its
/// fastest quarter second (its burst allowance included: Russia held Twitter to
/// 130-150 kbit/s). A faster transfer is not throttled, however much faster the
/// control's network is; and a transfer that loss slows down on average still reaches
/// the path's speed between its stalls, well above this.
const THROTTLE_CAP: f64 = 375_000.0;
/// A transfer cut off by the deadline has a rate worth comparing once it has run this
/// long, whatever it brought.
const MIN_RATE_MS: f64 = 1000.0;
const BODY_PROPORTION: f64 = 0.7;
/// Headers every site sends, left out of the header comparison (OONI's list).
const COMMON_HEADERS: [&str; 25] = [
    "date",
    "content-type",
    "server",
    "cache-control",
    "vary",
    "set-cookie",
    "location",
    "expires",
    "x-powered-by",
    "content-encoding",
    "last-modified",
    "accept-ranges",
    "pragma",
    "x-frame-options",
    "etag",
    "x-content-type-options",
    "age",
    "via",
    "p3p",
    "x-xss-protection",
    "content-language",
    "cf-ray",
    "strict-transport-security",
    "link",
    "x-varnish",
];

/// The fetches of a target, without the refetches of a slow transfer.
fn fetches(facts: &TargetFacts) -> impl Iterator<Item = (&Measurement, &HttpFacts)> {
    facts.measurements.iter().filter_map(|m| match &m.step {
        Step::Http(h) if h.control_sni.is_none() && !h.again => Some((m, h)),
        _ => None,
    })
}

/// The refetches of a slow or stalled transfer, if made (see `measure::http`): its
/// control-SNI twins (two, when loss slowed the first), and the fetch with the target's
/// name again after a far faster twin.
struct Refetches<'a> {
    twins: Vec<&'a HttpHop>,
    again: Option<&'a HttpHop>,
}

impl<'a> Refetches<'a> {
    /// The twin that went fastest, at its best: what the path gives the URL under
    /// another name.
    fn fastest_twin(&self) -> Option<&'a HttpHop> {
        let best = |hop: &&HttpHop| hop.peak_rate.or(rate(hop)).unwrap_or(0.0);
        self.twins
            .iter()
            .copied()
            .max_by(|a, b| best(a).total_cmp(&best(b)))
    }
}

fn refetches(facts: &TargetFacts) -> Refetches<'_> {
    let twins = facts.measurements.iter().filter_map(|m| match &m.step {
        Step::Http(h) if h.control_sni.is_some() && !h.again => compared(h),
        _ => None,
    });
    Refetches {
        twins: twins.collect(),
        again: refetched(facts).find_map(compared),
    }
}

/// What a fetch made again brings to the comparison: its final response, or a round
/// trip that froze before its head.
fn compared(h: &HttpFacts) -> Option<&HttpHop> {
    h.final_response()
        .or_else(|| h.hops.last().filter(|hop| before_head(hop).is_some()))
}

/// Why a fetch that timed out says nothing against its name: the same URL, fetched
/// again with that name right after (the last of an A/B/A, see `measure::http`), came
/// whole. What stopped the first did not stop the name: a path that stalled then. A
/// reset or a refusal is an answer, and is not excused so.
fn read_again(probe: &TargetFacts, url: &str, e: &StepError) -> Option<String> {
    if !e.failure.is_timeout() {
        return None;
    }
    let again = refetches(probe)
        .again
        .filter(|hop| hop.status.is_some() && hop.error.is_none())?;
    Some(format!(
        "fetching {url} failed, and fetched again with its own name right after it came whole ({} bytes): what stopped the first did not stop the name",
        again.body_length
    ))
}

pub fn problems(
    probe: &TargetFacts,
    control: Option<&TargetFacts>,
    context: &Context,
) -> Vec<Problem> {
    let theirs = control.map(|c| fetches(c).next().map(|(_, h)| h));
    let their_page = theirs
        .flatten()
        .filter(|t| t.error.is_none())
        .and_then(|t| t.final_response())
        .zip(control)
        .map(|(page, control)| best_page(page, control));
    let mut out = Vec::new();
    for (m, h) in fetches(probe) {
        // The fetches again are the same URL's: a page of a censor's or a CDN's in one
        // counts as in the first.
        let fetched = || std::iter::once(h).chain(refetched(probe));
        if let Some(problem) = fetched().find_map(|h| blockpage(h, their_page)) {
            out.push(problem);
            continue;
        }
        if let Some(problem) = fetched().find_map(|h| cdn_page(h, their_page)) {
            out.push(problem);
            continue;
        }
        if let Some(e) = &h.error {
            // The target's own name not resolving is the DNS layer's to judge.
            if h.own_name_unresolved() {
                continue;
            }
            let saw = theirs.map(|t| match (t, their_page) {
                (_, Some(page)) => ControlSaw::Success(format!(
                    "the control fetched it (HTTP {})",
                    page.status.unwrap_or_default()
                )),
                (Some(t), None) => control_failed(t),
                (None, None) => ControlSaw::NotMeasured("the control did not fetch it".into()),
            });
            let last = h.hops.last();
            if e.failed_operation == Operation::Connect
                && let Some(address) = last.and_then(|hop| hop.address)
            {
                let mut problem = connect_problem(probe, m, address, e, control, context);
                problem.control = saw;
                out.push(problem);
                continue;
            }
            if last.is_some_and(|hop| hop.close_notify && site_served(hop)) {
                let finding = failure_finding(h, m, probe).0;
                let why = format!("{}{SITE_CLOSED}", finding.evidence);
                out.push(Problem::explained(finding, why));
                continue;
            }
            if let Some(problem) =
                last.and_then(|hop| tls_stall(hop, their_page, saw.clone(), &refetches(probe)))
            {
                // A stall the probe's own network accounts for (its check right after
                // failed too: the link, not the address, went dead) is no freeze, nor
                // one on a link seen losing packets then.
                let what = format!("fetching {}", h.url);
                let why = explain::step(&what, e, h.check.as_ref());
                let own_network = why.is_some();
                let lossy = match problem.explained {
                    None => explain::losing_packets(&what, h.check.as_ref()),
                    Some(_) => None,
                };
                let problem = problem.unless(why.or(lossy));
                // No freeze, and not the probe's own network: where a twin read the whole
                // body, the fetch with its own name after it may still show a throttle.
                let refetched = refetches(probe);
                let twin_read_it = refetched.twins.iter().any(|t| t.error.is_none());
                let slow = their_page
                    .filter(|_| problem.explained.is_some() && !own_network && twin_read_it)
                    .and_then(|page| throttled(h, page, refetched));
                out.push(problem);
                out.extend(slow.map(|slow| slow.with_control(saw)));
                continue;
            }
            if let Some(slow) = their_page.and_then(|page| throttled(h, page, refetches(probe))) {
                out.push(slow.with_control(saw));
                continue;
            }
            if let Some(problem) = last.and_then(|hop| site_unfollowable(hop, e, their_page)) {
                out.push(problem);
                continue;
            }
            if let Some(problem) = last.and_then(|hop| body_stalled(hop, e, their_page, probe)) {
                // A stall the probe's own network accounts for (its check right after
                // failed too) is no sign of a throttle.
                let why = explain::step(&format!("fetching {}", h.url), e, h.check.as_ref());
                out.push(problem.unless(why));
                continue;
            }
            if let Some(hop) = last.filter(|hop| cut_off(hop)) {
                let finding = failure_finding(h, m, probe).0;
                let why = format!(
                    "{} was cut off by the deadline after {} bytes: a slow transfer, which shows no interference unless it was throttled",
                    hop.url, hop.body_length
                );
                out.push(Problem::explained(finding, why));
                continue;
            }
            let (finding, strong) = failure_finding(h, m, probe);
            let problem = match strong || e.failure.is_certificate_error() {
                true => Problem::strong(finding, saw),
                false => Problem::weak(finding, saw),
            };
            let what = format!("fetching {}", h.url);
            let tries = explain::tries_like(e, h.tries, h.first_failure.as_ref());
            let not_the_targets = last.and_then(|hop| {
                let (t, at) = (hop.tls.as_ref()?, hop.started_at.unwrap_or(m.measured_at));
                explain::dates_only(t, at, control).or_else(|| {
                    explain::intercepted_like_the_canary(t, context.canary_intercepted.as_ref())
                })
            });
            let why = not_the_targets
                .or_else(|| explain::step_tried(&what, e, h.check.as_ref(), tries, &h.cut_after))
                .or_else(|| {
                    silent_over_own_session(h, e)
                        .then(|| explain::silent_over_its_session(&what, h.check.as_ref()))?
                })
                .or_else(|| {
                    let hop = last?;
                    let sent = hop.started_at.unwrap_or(m.measured_at);
                    explain::silent_after_trigger(probe, m, hop.address?, e, sent)
                        .or_else(|| slow_path(probe, hop.address?, sent, e, context))
                        .or_else(|| {
                            explain::like_the_canary(&what, hop.address?, e, &context.canary_failed)
                        })
                })
                .or_else(|| read_again(probe, &h.url, e));
            out.push(problem.unless(why));
        } else if let (Some(ours), Some(page)) = (h.final_response(), their_page) {
            let ours = best_page(ours, probe);
            let saw = || Some(ControlSaw::Success("the control fetched it".into()));
            if let Some(name) = fingerprints::cdn_page(page) {
                out.extend(unseen_page(ours, page, name));
            } else if let Some(problem) =
                their_server_error(page).and_then(|saw| server_error(ours, saw))
            {
                out.push(problem);
            } else if let Some(problem) = server_error_here(ours, page, probe) {
                out.push(problem);
            } else if let Some(problem) = rate_limited(ours, page) {
                out.push(problem);
            } else if let Some(slow) = throttled(h, page, refetches(probe)) {
                out.push(slow.with_control(saw()));
            } else if let Some(mut finding) = differs(ours, page) {
                out.push(match site_served(ours) {
                    true => {
                        finding.evidence.push_str(SITE_SERVED);
                        Problem::not_interference(finding, saw())
                    }
                    false => Problem::weak(finding, saw()).unless(ours.address.and_then(|at| {
                        explain::page_where_the_canary_failed(&h.url, at, &context.canary_unreached)
                    })),
                });
            }
        } else if let (Some(ours), Some(Some(t))) = (h.final_response(), theirs) {
            out.extend(server_error(best_page(ours, probe), control_failed(t)));
        }
    }
    out
}

/// The control's fetch, which failed.
fn control_failed(theirs: &HttpFacts) -> ControlSaw {
    let e = theirs.error.as_ref();
    let what = e.map_or("no response".into(), |e| e.failure.to_string());
    ControlSaw::failed(
        e,
        theirs.check.as_ref(),
        format!("the control's fetch failed too ({what})"),
    )
}

/// The server answered, and the fetch then failed on what it answered (a redirect to a
/// broken location, too many redirects): no network failure, and the control was
/// answered otherwise. The site's own answer, which says nothing of a censor.
fn site_unfollowable(hop: &HttpHop, e: &StepError, theirs: Option<&HttpHop>) -> Option<Problem> {
    let status = hop.status?;
    theirs?;
    let Failure::Unknown(what) = &e.failure else {
        return None;
    };
    let finding = Finding::new(
        Blocking::HttpFailure,
        format!(
            "{} answered HTTP {status}, then the fetch failed: {what}",
            hop.url
        ),
    );
    Some(Problem::explained(
        finding.clone(),
        format!(
            "{}: the site's own answer could not be followed, which is no network failure",
            finding.evidence
        ),
    ))
}

/// The response came and its body did not finish before the deadline, while the
/// control read the whole page, and no control-SNI twin was made (plain HTTP, or a
/// measurement imported from a tool that makes none), nor the silence at the end of the
/// read recorded (an older run, an import) that tells a freeze (`tls_stall`): a
/// throttle or a stall, not a reset, with nothing to tell it from a slow path. A sign,
/// never proof.
fn body_stalled(
    hop: &HttpHop,
    e: &StepError,
    theirs: Option<&HttpHop>,
    probe: &TargetFacts,
) -> Option<Problem> {
    let theirs = theirs?;
    let status = hop.status?;
    let stalled = e.failed_operation == Operation::Read
        && e.failure.is_timeout()
        && theirs.body_length > hop.body_length
        && refetches(probe).twins.is_empty();
    if !stalled || cut_off(hop) {
        return None;
    }
    let finding = Finding::new(
        Blocking::Throttled,
        format!(
            "{} answered HTTP {status}, then its body did not finish before the deadline ({} bytes recorded) while the control read {} bytes",
            hop.url, hop.body_length, theirs.body_length
        ),
    );
    Some(Problem::strong(
        finding,
        Some(ControlSaw::NotMeasured(
            "no transfer with the control SNI from the same address to tell a throttle from a slow path".into(),
        )),
    ))
}

/// A read stopped dead when nothing came for this long before its deadline, and from
/// at most halfway through it. Loss cannot keep a transfer silent so long with any
/// likelihood: at 15 % loss each way a resend and its acknowledgement both get through
/// 72 % of the time, and a sender waiting for its timer resends after 0.2 s, then 0.4,
/// 0.8, 1.6 s (Linux's least), so 2 s of silence takes three resends in a row lost
/// (2 %), and half the default 10 s read four (0.6 %); and when one gets through the
/// transfer moves again. A freeze comes early in the read (16 KB), which is then silent
/// nearly whole. Rare is not never on a link that stalls often: `blocked` also wants
/// the freeze again on new connections (the control-SNI twins, or the fetch with its
/// own name after one that read on), which loss would have to repeat by chance.
const STALL_SILENCE_MS: f64 = 2000.0;

/// Whether a read the deadline ended (a body's, or a round trip's that had its TLS
/// handshake) had stopped dead: silent until the deadline for [`STALL_SILENCE_MS`] at
/// least, from at most halfway through the read. A transfer that kept moving until the
/// deadline (a throttle) did not.
fn stopped_dead(hop: &HttpHop) -> bool {
    match (hop.silent_ms, hop.read_ms) {
        (Some(silent), Some(read)) => {
            (read_timed_out(hop) || before_head(hop).is_some())
                && silent >= STALL_SILENCE_MS
                && 2.0 * silent >= read
        }
        _ => false,
    }
}

/// The raw bytes an HTTPS round trip the deadline ended received after the handshake,
/// with no response head: the record carrying the head (with the start of the body,
/// as servers send it) never completed.
fn before_head(hop: &HttpHop) -> Option<u64> {
    let timed_out = hop
        .error
        .as_ref()
        .is_some_and(|e| e.failure.is_timeout() && e.failed_operation == Operation::HttpRoundTrip);
    hop.received_after_handshake
        .filter(|_| timed_out && hop.status.is_none())
}

/// The bytes a transfer brought before the deadline: of its body, or, before its head,
/// of TLS records.
fn brought(hop: &HttpHop) -> u64 {
    before_head(hop).unwrap_or(hop.body_length)
}

/// How far a transfer that stopped came, in words.
fn stop_point(hop: &HttpHop) -> String {
    match before_head(hop) {
        Some(bytes) => format!(
            "{bytes} bytes on the connection after the TLS handshake, no response head among them"
        ),
        None => format!("{} bytes of its body", hop.body_length),
    }
}

/// Whether a transfer froze: stopped dead after full-size packets passed.
fn froze(hop: &HttpHop) -> bool {
    stopped_dead(hop) && brought(hop) >= STALL_BYTES
}

/// How a refetch of a stalled transfer ended, in words.
fn ending(hop: &HttpHop) -> String {
    match &hop.error {
        None => format!("it read {} bytes", hop.body_length),
        Some(_) if stopped_dead(hop) => format!("it stopped dead after {}", stop_point(hop)),
        Some(_) if cut_off(hop) => format!(
            "it was still coming at the deadline, after {} bytes",
            hop.body_length
        ),
        Some(e) => format!(
            "{} bytes, then {} ({})",
            hop.body_length, e.failure, e.failed_operation
        ),
    }
}

/// An HTTPS body that stopped dead (see [`stopped_dead`]) after full-size packets
/// passed, where the control read more: a freeze. So is a round trip that stopped dead
/// after full-size packets passed the handshake, before its head (the first record of
/// the response never completed; Russia's freeze after 16 KB comes there as often as
/// not), where the control read the page; one with fewer bytes is left to the round
/// trip's failure. By address when every control-SNI
/// twin from the same address froze too (Russia's TSPU has frozen TLS to foreign
/// hosting and CDN networks after about 16 KB since 2025, whatever the name); by name
/// when a twin read past that point and the fetch with its own name right after froze
/// again. Loss stalls a transfer once in a while, and by chance only, so a freeze
/// nothing repeated is a sign; one too short to rule out a path MTU black hole, or
/// over plain HTTP with no twin, says nothing. By address wants two twins that froze:
/// the fetch's own stall may be a throttle's under loss (the throttled name only), and
/// one twin's, loss's on that link now and then; loss repeating it on a third
/// connection is much rarer, a freeze of the address never fails to.
fn tls_stall(
    hop: &HttpHop,
    theirs: Option<&HttpHop>,
    saw: Option<ControlSaw>,
    refetched: &Refetches<'_>,
) -> Option<Problem> {
    let head = before_head(hop).is_some();
    let short = match head {
        true => brought(hop) < STALL_BYTES,
        false => theirs.is_some_and(|t| t.body_length <= hop.body_length),
    };
    if !stopped_dead(hop) || short {
        return None;
    }
    let secs = |ms: Option<f64>| ms.unwrap_or_default() / 1000.0;
    let mut evidence = format!(
        "{} stopped dead after {}: nothing more came, and no reset or FIN, in the last {:.1} s of a {:.1} s read",
        hop.url,
        stop_point(hop),
        secs(hop.silent_ms),
        secs(hop.read_ms)
    );
    let explained = |evidence: String, why: &str| {
        let finding = Finding::new(Blocking::TlsStall, evidence);
        let why = format!("{}{why}", finding.evidence);
        Some(Problem::explained(finding, why))
    };
    if brought(hop) < STALL_BYTES {
        return explained(
            evidence,
            ": too few bytes to show that full-size packets passed, so a path MTU black hole of the probe's own network is as likely as a freeze",
        );
    }
    if !hop.url.starts_with("https:") {
        return explained(
            evidence,
            ", over plain HTTP: no control-SNI twin from the same address to show it again, and one stall may be loss's",
        );
    }
    let control = match theirs {
        Some(page) => Some(ControlSaw::Success(format!(
            "the control read the whole body ({} bytes)",
            page.body_length
        ))),
        None => saw,
    };
    let twins = &refetched.twins;
    if let Some(twin) = twins
        .iter()
        .find(|t| t.error.is_none() && (head || t.body_length > hop.body_length))
    {
        evidence.push_str(&format!(
            ", while the control-SNI twin from the same address read {} bytes",
            twin.body_length
        ));
        return match refetched.again {
            Some(again) if froze(again) => {
                evidence.push_str(&format!(
                    ", and the fetch with its own name right after stopped dead again after {}: a freeze by name",
                    stop_point(again)
                ));
                Some(Problem::strong(
                    Finding::new(Blocking::TlsStall, evidence),
                    control,
                ))
            }
            Some(again) => explained(
                evidence,
                &format!(
                    ", and with its own name right after {}: a path that stalled for a while, not a freeze of the name",
                    ending(again)
                ),
            ),
            None => Some(unrepeated(
                evidence,
                "no fetch with its own name after the twin, to show the freeze held",
                control,
            )),
        };
    }
    if twins.len() >= 2 && twins.iter().all(|t| froze(t)) {
        let counts: Vec<String> = twins.iter().map(|t| brought(t).to_string()).collect();
        evidence.push_str(&format!(
            ", and so did the control-SNI twin{} from the same address, after {} bytes: a freeze by address, whatever the name",
            if twins.len() > 1 { "s" } else { "" },
            counts.join(" and ")
        ));
        return Some(Problem::weak(
            Finding::new(Blocking::TlsStall, evidence),
            control,
        ));
    }
    match twins.first() {
        None => Some(unrepeated(
            evidence,
            "no control-SNI twin from the same address, to show it again",
            control,
        )),
        Some(twin) if twins.len() == 1 && froze(twin) => explained(
            evidence,
            &format!(
                ", and so did the one control-SNI twin from the same address, after {} bytes: two stalls in a row are loss's now and then on a lossy link, and no second twin showed the address frozen",
                brought(twin)
            ),
        ),
        // A twin still coming at the deadline may have read past the point, and says
        // no more than one that stopped short of it.
        Some(twin) => {
            let fared = match twin.error {
                None => format!("read no more than that ({} bytes)", twin.body_length),
                Some(_) => format!("neither read the whole body nor froze ({})", ending(twin)),
            };
            explained(
                evidence,
                &format!(
                    ", and the control-SNI twin from the same address {fared}: nothing tells a freeze from a stall of the path"
                ),
            )
        }
    }
}

/// A freeze nothing repeated: a sign where the control read the whole body, as weak as
/// any failure otherwise.
fn unrepeated(mut evidence: String, why: &str, control: Option<ControlSaw>) -> Problem {
    evidence.push_str(&format!("; {why}"));
    match control {
        Some(ControlSaw::Success(said)) => {
            evidence.push_str(&format!("; {said}"));
            let finding = Finding::new(Blocking::TlsStall, evidence);
            Problem::strong(finding, Some(ControlSaw::NotMeasured(why.into())))
        }
        control => Problem::weak(Finding::new(Blocking::TlsStall, evidence), control),
    }
}

/// Appended to a page difference seen over a TLS session with a valid certificate for
/// the name: no censor can write into one, so the site chose to answer so.
const SITE_SERVED: &str = ", over a TLS session with a valid certificate for the name: the site's own answer (a page by country, a legal block), not a censor's";

/// Appended to a fetch that failed as the server ended its TLS session (a
/// `close_notify`), over a session with a valid certificate for the name: a censor can
/// tear a connection down, but cannot write that alert into the session. It could make
/// the server send it (a FIN forged toward the server, which a server reads as the
/// client leaving), so the close is no evidence either way, not the site's answer.
const SITE_CLOSED: &str = ": the server ended its TLS session (close_notify) first, over a session with a valid certificate for the name; the site's own close as a rule (a server turning the probe's address away, a bot rule), which no censor can write into the session, though one could provoke it (a FIN forged toward the server)";

/// Whether `hop` came over a TLS session with a valid certificate for its name.
fn site_served(hop: &HttpHop) -> bool {
    hop.url.starts_with("https:")
        && hop
            .tls
            .as_ref()
            .is_some_and(|t| t.handshake_done && t.error.is_none())
}

/// The control got `name`, its CDN's challenge page, not the site's: there is no page
/// to compare the probe's with. Over a valid TLS session the probe's page is the site's
/// own answer, and that is all; otherwise it may be an unknown blockpage, which only the
/// comparison would have shown.
fn unseen_page(ours: &HttpHop, theirs: &HttpHop, name: &str) -> Option<Problem> {
    if site_served(ours) || fingerprints::cdn_page(ours) == Some(name) {
        return None;
    }
    let finding = Finding::new(
        Blocking::HttpDiff,
        format!(
            "{} answered HTTP {} over plain HTTP",
            ours.url,
            ours.status.unwrap_or_default()
        ),
    );
    let why = format!(
        "the control got HTTP {} with {name}, a challenge of the site's CDN, so there was no page to compare with",
        theirs.status.unwrap_or_default()
    );
    Some(Problem::weak(finding, Some(ControlSaw::NotMeasured(why))))
}

/// The CDN served its own challenge or access-denied page to the probe, and not the
/// same to the control: the site treats the probe's network differently, which no
/// censor did. The same page at both is no problem.
fn cdn_page(h: &HttpFacts, theirs: Option<&HttpHop>) -> Option<Problem> {
    let ours = h.final_response()?;
    let name = fingerprints::cdn_page(ours)?;
    if theirs.and_then(fingerprints::cdn_page) == Some(name) {
        return None;
    }
    let finding = Finding::new(
        Blocking::HttpDiff,
        format!(
            "{} answered HTTP {} with {name}, a page of the site's CDN, not a censor's{}",
            ours.url,
            ours.status.unwrap_or_default(),
            match theirs.and_then(|t| t.status) {
                Some(status) => format!("; the control got HTTP {status} without it"),
                None => String::new(),
            }
        ),
    );
    Some(Problem::not_interference(finding, None))
}

/// The page a side got: its fetch's, or, where the site answered that with an error of
/// its own (5xx), the first of its fetches again (see `measure::http`) that it answered
/// with a page, neither an error nor a redirect (a fetch again follows none): a flaky
/// site's one 503 is not its page.
fn best_page<'a>(first: &'a HttpHop, facts: &'a TargetFacts) -> &'a HttpHop {
    let page = |hop: &&HttpHop| hop.server_error().is_none() && !hop.redirects();
    match first.server_error() {
        Some(_) => fetched_again(facts).find(page).unwrap_or(first),
        None => first,
    }
}

/// The URL's fetches again with its own name (see `measure::http`).
fn refetched(facts: &TargetFacts) -> impl Iterator<Item = &HttpFacts> {
    facts.measurements.iter().filter_map(|m| match &m.step {
        Step::Http(h) if h.again && h.control_sni.is_none() => Some(h),
        _ => None,
    })
}

/// The final responses of the URL's fetches again, whole.
fn fetched_again(facts: &TargetFacts) -> impl Iterator<Item = &HttpHop> {
    refetched(facts)
        .filter(|h| h.error.is_none())
        .filter_map(HttpFacts::final_response)
}

/// The site answered the probe with an error of its own (5xx) at every fetch, and the
/// control with one too, or not at all (`control`, what it saw): down, unless the
/// control reached it otherwise (then nothing), or its own network accounts for its
/// failure (then not measured).
fn server_error(ours: &HttpHop, control: ControlSaw) -> Option<Problem> {
    let status = ours.server_error()?;
    Some(Problem::weak(
        Finding::new(
            Blocking::HttpFailure,
            format!("{} answered HTTP {status}", ours.url),
        ),
        Some(control),
    ))
}

/// The control's page, where the site answered it with an error of its own too.
fn their_server_error(theirs: &HttpHop) -> Option<ControlSaw> {
    let status = theirs.server_error()?;
    Some(ControlSaw::Failure(format!(
        "the control got HTTP {status} too"
    )))
}

/// The site answered the probe with an error of its own (5xx) at every fetch, and the
/// control with a page: a site overloaded whenever the probe asked, or one that turns
/// the probe's network away, answers so, and so could a censor's page unlike any known
/// one (a known one is a blockpage). Nothing tells them apart: no evidence either way.
fn server_error_here(ours: &HttpHop, theirs: &HttpHop, probe: &TargetFacts) -> Option<Problem> {
    let status = ours.server_error()?;
    let erred = fetched_again(probe)
        .filter(|hop| hop.server_error().is_some())
        .count();
    let finding = Finding::new(
        Blocking::HttpDiff,
        format!("{} answered HTTP {status}", ours.url),
    );
    let each = match erred {
        0 => String::new(),
        n => format!(" at each of {} fetches", n + 1),
    };
    let why = format!(
        "{} answered HTTP {status}{each} while the control got HTTP {}: a server error, which a site overloaded whenever the probe asked, or one turning the probe's network away, answers as much as a censor could",
        ours.url,
        theirs.status.unwrap_or_default()
    );
    Some(Problem::explained(finding, why))
}

/// The site answered the probe 429 Too Many Requests, and the control with a page (over
/// a session valid for the name, the site's own answer as any other): a site limits how
/// often one address may ask, and the probe asks for a URL several
/// times (fetched again, its twins), from an address a carrier's NAT may share with
/// many users. A censor's page with this status is missed so: nothing tells them apart.
fn rate_limited(ours: &HttpHop, theirs: &HttpHop) -> Option<Problem> {
    let limited = ours.status == Some(429) && theirs.status != Some(429) && !site_served(ours);
    limited.then(|| {
        let finding = Finding::new(
            Blocking::HttpDiff,
            format!("{} answered HTTP 429", ours.url),
        );
        let why = format!(
            "{} answered HTTP 429 Too Many Requests while the control got HTTP {}: a site's limit on how often one address asks (the probe asks several times, from an address many may share), not a censor's page",
            ours.url,
            theirs.status.unwrap_or_default()
        );
        Problem::explained(finding, why)
    })
}

/// A hop that answered with a known blockpage: proof of interference, unless it came
/// over a TLS session with a valid certificate for the name, which no censor can write
/// into (a site's own legal block, or a page that looks like one), or the control's page
/// (`theirs`), from outside the censor, matches it too (a site's own 451, a page that
/// quotes a blockpage's words).
fn blockpage(h: &HttpFacts, theirs: Option<&HttpHop>) -> Option<Problem> {
    h.hops.iter().find_map(|hop| {
        let name = fingerprints::http_blockpage(hop)?;
        let mut finding = Finding::new(
            Blocking::HttpBlockpage,
            format!("{} answered with {name}", hop.url),
        );
        // Not from the address the probe got it from (the control tries the probe's
        // addresses too, and only those where its own DNS failed), nor from a known
        // blockpage's: the censor's own page, fetched from abroad.
        let elsewhere = |page: &&HttpHop| {
            page.address != hop.address
                && page
                    .address
                    .is_none_or(|a| fingerprints::dns_blockpage(a.ip()).is_none())
        };
        let everyone = theirs.filter(elsewhere).and_then(fingerprints::http_blockpage) == Some(name);
        Some(match (site_served(hop), everyone) {
            (true, _) => {
                finding.evidence.push_str(SITE_SERVED);
                Problem::not_interference(finding, None)
            }
            (false, true) => {
                finding.evidence.push_str(", as the control's page did: the site's own answer to everyone, not a censor's");
                Problem::not_interference(finding, None)
            }
            (false, false) => Problem::proven(finding),
        })
    })
}

/// The failure of a fetch, named by the layer it happened in, and whether the probe's
/// facts alone show interference: a TLS failure that singled out the name (see
/// `transport::name_singled_out`).
fn failure_finding(h: &HttpFacts, m: &Measurement, probe: &TargetFacts) -> (Finding, bool) {
    let e = h.error.as_ref().expect("called on failed fetches");
    let last = h.hops.last();
    let hop = last.map_or(h.url.as_str(), |hop| hop.url.as_str());
    let at = last
        .and_then(|hop| hop.address)
        .map_or_else(|| hop.to_string(), |a| a.to_string());
    let contrast = last.and_then(|hop| {
        name_singled_out(probe, hop.address?, hop.started_at.unwrap_or(m.measured_at))
    });
    if e.failed_operation == Operation::TlsHandshake
        && !e.failure.is_certificate_error()
        && let Some(contrast) = contrast
    {
        let blocking = match e.failure {
            Failure::GenericTimeout => Blocking::TlsTimeout,
            _ if e.failure.is_reset_or_eof() => Blocking::TlsReset,
            _ => Blocking::TlsFailure,
        };
        let strong = blocking != Blocking::TlsFailure;
        let finding = Finding::new(
            blocking,
            format!(
                "TLS handshake for {hop} with {at} failed ({}) {contrast}",
                e.failure
            ),
        );
        return (finding, strong);
    }
    let finding = match e.failed_operation {
        Operation::Resolve => Finding::new(
            Blocking::DnsFailure,
            format!("could not resolve the host of {hop}: {}", e.failure),
        ),
        Operation::Connect => tcp_finding(&at, e),
        Operation::TlsHandshake if e.failure.is_certificate_error() => Finding::new(
            Blocking::TlsMitm,
            format!(
                "the certificate {at} presented for {hop} is not valid for it ({})",
                e.failure
            ),
        ),
        Operation::TlsHandshake if e.failure == Failure::GenericTimeout => Finding::new(
            Blocking::TlsTimeout,
            format!("TLS handshake for {hop} with {at} timed out"),
        ),
        // A fetch is made over TCP: a QUIC failure is not one of its own, but is a
        // handshake's all the same.
        Operation::TlsHandshake | Operation::QuicHandshake => Finding::new(
            Blocking::TlsFailure,
            format!("TLS handshake for {hop} with {at} failed: {}", e.failure),
        ),
        Operation::HttpRoundTrip | Operation::Read => Finding::new(
            Blocking::HttpFailure,
            format!(
                "fetching {hop} from {at} failed: {} ({})",
                e.failure, e.failed_operation
            ),
        ),
    };
    (finding, false)
}

/// A fetch whose round trip timed out at every try of a lossy link's (see
/// `Meanwhile::LOSSY_SILENT_TRIES`), its kept try over a TLS session whose handshake
/// with the target's own name went through.
fn silent_over_own_session(h: &HttpFacts, e: &StepError) -> bool {
    h.tries >= Meanwhile::LOSSY_SILENT_TRIES
        && e.failure.is_timeout()
        && e.failed_operation == Operation::HttpRoundTrip
        && h.hops
            .last()
            .and_then(|hop| hop.tls.as_ref())
            .is_some_and(|t| t.handshake_done && !t.control_sni)
}

/// A body the deadline cut off after some of it came.
fn cut_off(hop: &HttpHop) -> bool {
    hop.body_length > 0 && read_timed_out(hop)
}

/// A body's read that the deadline ended.
fn read_timed_out(hop: &HttpHop) -> bool {
    hop.error
        .as_ref()
        .is_some_and(|e| e.failure.is_timeout() && e.failed_operation == Operation::Read)
}

/// Bytes per second over the body, when the transfer was long enough to tell: enough
/// bytes, or cut off by the deadline after running a while.
fn rate(hop: &HttpHop) -> Option<f64> {
    let long_enough =
        hop.body_length >= MIN_RATE_BYTES || (cut_off(hop) && hop.transfer_ms >= MIN_RATE_MS);
    long_enough.then(|| hop.body_length as f64 / (hop.transfer_ms.max(1.0) / 1000.0))
}

/// Whether a body came in fewer than three quarter seconds (it has no peak rate) though
/// it lasted longer ([`RATED_SPAN_MS`]): silent most of its time, in bursts between
/// stalls. A throttle keeps a transfer moving, data in every quarter second; bursts and
/// stalls are loss's (on a link losing a quarter of its packets each way, a transfer of
/// the testbed's came in two bursts over 3 s, 104 kB/s on average) or a freeze's, and
/// its average rate, which the stalls make, says nothing of a cap.
fn came_in_bursts(hop: &HttpHop) -> bool {
    hop.peak_rate.is_none() && hop.transfer_ms >= RATED_SPAN_MS
}

/// A transfer (finished or cut off by the deadline) far slower at the probe than at
/// the control: throttling when the control-SNI twin from the same address was far
/// faster too; otherwise, a slow path for all the probe can tell.
struct Slow {
    finding: Finding,
    throttled: bool,
    why_not: String,
}

impl Slow {
    fn with_control(self, saw: Option<ControlSaw>) -> Problem {
        match self.throttled {
            true => Problem::weak(self.finding, saw),
            false => Problem::explained(self.finding, self.why_not),
        }
    }
}

fn throttled(h: &HttpFacts, theirs: &HttpHop, refetched: Refetches<'_>) -> Option<Slow> {
    let first = h.hops.last()?;
    // A throttle keeps a transfer moving; one that stopped dead is a freeze's, or the
    // path's for a while (loss on a throttled link stalls it too). Where the fetch with
    // its own name after the twin kept moving, that one is rated: the name's transfers
    // on either side of the twin then both failed to flow as the twin did.
    let (ours, stalled) = match stopped_dead(first) {
        false => (first, None),
        true => (refetched.again.filter(|a| !stopped_dead(a))?, Some(first)),
    };
    if came_in_bursts(ours) {
        return None;
    }
    let (our_rate, their_rate) = (rate(ours)?, rate(theirs)?);
    if our_rate * THROTTLE_RATIO >= their_rate {
        return None;
    }
    // Loss stalls a transfer between bursts at the path's speed; a throttle caps that
    // speed, its fastest quarter seconds too, in every transfer of the name: the fetch
    // with the target's name after the twin too (under 25 % loss each way, one that
    // flowed at 983 kB/s after a first one that crawled had read `throttled`). A
    // transfer too short to show a peak (under three quarter seconds; a longer one
    // without is bursts, above) has that one's alone.
    let our_active = ours.active_rate.unwrap_or(our_rate);
    let peaks = [ours.peak_rate, refetched.again.and_then(|a| a.peak_rate)];
    let peak = peaks
        .into_iter()
        .flatten()
        .reduce(f64::max)
        .unwrap_or(our_rate);
    if peak >= THROTTLE_CAP {
        return None;
    }
    let kbps = |rate: f64| format!("{:.0} kB/s", rate / 1000.0);
    let head = match stalled {
        Some(first) => format!(
            "{} stopped dead after {} and, fetched with its own name again after the control-SNI twin, arrived",
            first.url,
            stop_point(first)
        ),
        None => format!("{} arrived", ours.url),
    };
    let mut evidence = format!(
        "{head} at {} ({} while it flowed) at the probe against {} at the control ({} and {} bytes)",
        kbps(our_rate),
        kbps(our_active),
        kbps(their_rate),
        ours.body_length,
        theirs.body_length
    );
    // What the path gave the same URL under another name, at its best.
    let twin_rate = refetched
        .fastest_twin()
        .and_then(|t| t.peak_rate.or(rate(t)));
    if let Some(rate) = twin_rate {
        evidence.push_str(&format!(
            ", and at up to {} from the same address with the control SNI",
            kbps(rate)
        ));
    }
    // The target's name again after the twin: still capped, or the path had recovered.
    // Capped when it flowed nearer (by ratio) the first transfer's rate than the twin's
    // best: loss slows the twin too, and a throttle's token bucket, refilled while the
    // twin ran, lets a burst through at its start. Too short to rate: stalled, capped;
    // but in bursts between stalls (see [`came_in_bursts`]), it showed no cap at all.
    // Rated after a stall, it is that fetch again: the stall before the twin showed
    // the name not flowing already.
    let again = match stalled {
        Some(_) => Some((true, None)),
        None => refetched.again.map(|a| {
            let flowed = a.active_rate.or(rate(a));
            let capped = !came_in_bursts(a)
                && flowed.is_none_or(|flowed| {
                    twin_rate.is_some_and(|twin| flowed < (our_active * twin).sqrt())
                });
            (capped, Some(flowed))
        }),
    };
    if let Some((_, Some(flowed))) = again {
        let flowed = flowed.map_or("no measurable rate".into(), kbps);
        evidence.push_str(&format!(
            ", then at {flowed} while it flowed with its own name again"
        ));
    }
    // A first twin that fell short (slow, or stopped: a second was made) showed the path
    // holding back a transfer with another name too; the faster one after it is a good
    // moment of that path, and two transfers of the name on either side of it no proof
    // of a cap (at 30 % loss each way, a stalled twin then one at 1,177 kB/s around the
    // name's at 262 kB/s had read `throttled`).
    let short = refetched
        .twins
        .first()
        .filter(|_| refetched.twins.len() > 1);
    let (throttled, why_not) = match twin_rate {
        Some(rate) if our_active * THROTTLE_RATIO >= rate => (
            false,
            format!(
                "{evidence}: as slow with the control SNI, so a slow path (a congested route) or a throttle of the address, not of the name"
            ),
        ),
        Some(_) => match (again, short) {
            (Some((true, _)), None) => (true, String::new()),
            (Some((true, _)), Some(first)) => (
                false,
                format!(
                    "{evidence}: but the first control-SNI twin fell short ({}), so the path held back a transfer with another name too, and the faster one after it says nothing of a cap on the name",
                    ending(first)
                ),
            ),
            (Some((false, _)), _) => (
                false,
                format!(
                    "{evidence}: no longer capped once fetched again, so a path congested for a while, not a throttle"
                ),
            ),
            (None, _) => (
                false,
                format!(
                    "{evidence}; no fetch with its own name after the twin, to tell a throttle from a path congested for a while"
                ),
            ),
        },
        None => (
            false,
            format!(
                "{evidence}; no transfer with the control SNI from the same address to tell a throttle from a slow path"
            ),
        ),
    };
    Some(Slow {
        finding: Finding::new(Blocking::Throttled, evidence),
        throttled,
        why_not,
    })
}

/// Whether a fetch of the probe's from `ip` got the page the control got: an address
/// that serves the site's page is the site's. Stricter than `differs`, which lets a
/// dynamic page pass on any one likeness: here the status, the title (not empty) and
/// the body's length must all match, as no unknown blockpage would.
pub fn same_page_from(ip: std::net::IpAddr, probe: &TargetFacts, control: &TargetFacts) -> bool {
    let Some(theirs) = fetches(control).find_map(|(_, h)| h.final_response()) else {
        return false;
    };
    let same = |ours: &HttpHop| {
        let (a, b) = (ours.body_length, theirs.body_length);
        ours.status == theirs.status
            && ours.title.as_deref().is_some_and(|t| !t.is_empty())
            && ours.title == theirs.title
            && a.min(b) as f64 > BODY_PROPORTION * a.max(b) as f64
    };
    fingerprints::cdn_page(theirs).is_none()
        && fetches(probe)
            .filter_map(|(_, h)| h.final_response())
            .filter(|ours| ours.address.is_some_and(|a| a.ip() == ip))
            .any(same)
}

/// OONI's page comparison.
fn differs(ours: &HttpHop, theirs: &HttpHop) -> Option<Finding> {
    let (Some(our_status), Some(their_status)) = (ours.status, theirs.status) else {
        return None;
    };
    if our_status != their_status && their_status >= 500 {
        return None; // the control's server erred: nothing to compare with
    }
    let status = our_status == their_status;
    let body = match (ours.body_length, theirs.body_length) {
        // A cut-off body at the probe says nothing about the page's length.
        (a, b) if a > 0 && b > 0 && (!ours.body_truncated || theirs.body_truncated) => {
            a.min(b) as f64 / a.max(b) as f64 > BODY_PROPORTION
        }
        _ => false,
    };
    if status && (body || headers_match(ours, theirs) || titles_match(ours, theirs)) {
        return None;
    }
    Some(Finding::new(
        Blocking::HttpDiff,
        format!(
            "{} differs from the control's: status {} vs {}, {} vs {} bytes, title {:?} vs {:?}",
            ours.url,
            our_status,
            their_status,
            ours.body_length,
            theirs.body_length,
            ours.title.as_deref().unwrap_or(""),
            theirs.title.as_deref().unwrap_or("")
        ),
    ))
}

fn headers_match(ours: &HttpHop, theirs: &HttpHop) -> bool {
    let names = |hop: &HttpHop| -> BTreeSet<String> {
        hop.headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect()
    };
    let (a, b) = (names(ours), names(theirs));
    if a == b {
        return true;
    }
    let uncommon = |s: BTreeSet<String>| -> BTreeSet<String> {
        s.into_iter()
            .filter(|k| !COMMON_HEADERS.contains(&k.as_str()))
            .collect()
    };
    !uncommon(a).is_disjoint(&uncommon(b))
}

/// Every word of five letters or more in our title is in theirs.
fn titles_match(ours: &HttpHop, theirs: &HttpHop) -> bool {
    let words = |hop: &HttpHop| -> BTreeSet<String> {
        hop.title
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .filter(|w| w.chars().count() >= 5)
            .map(str::to_lowercase)
            .collect()
    };
    let ours = words(ours);
    !ours.is_empty() && ours.is_subset(&words(theirs))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Blocking, Control, Outcome, Verdict};
    use crate::facts::failure::{Failure, Operation, StepError};
    use crate::facts::{Burst, Meanwhile, Measurement, Step};

    #[test]
    fn a_cdn_challenge_is_an_anomaly_of_the_cdn_never_a_block() {
        let dns = || vec![lookup(&[(FB, None)])];
        let page = || fetch(200, 9000, "Facebook - log in", 5.0, None);
        let mut challenged = fetch(403, 7000, "Just a moment...", 5.0, None);
        challenge(&mut challenged);
        let probe_only = compare(
            url(),
            (dns(), vec![challenged.clone()]),
            (dns(), vec![page()]),
        );
        assert_eq!(kind(&probe_only), (Verdict::Anomaly, None));
        assert!(
            probe_only.verdict.evidence.contains("Cloudflare")
                && probe_only.verdict.evidence.contains("not a censor's"),
            "{}",
            probe_only.verdict.evidence
        );
        // The same challenge at both: the site challenges everyone.
        let both = compare(
            url(),
            (dns(), vec![challenged.clone()]),
            (dns(), vec![challenged]),
        );
        assert_eq!(
            kind(&both),
            (Verdict::Ok, None),
            "{}",
            both.verdict.evidence
        );
    }

    #[test]
    fn a_page_over_a_valid_tls_session_is_the_sites_own() {
        let dns = || vec![lookup(&[(FB, None)])];
        let page = || fetch(200, 9000, "Facebook - log in", 5.0, None);
        let legal = || fetch(451, 300, "Unavailable For Legal Reasons", 5.0, None);
        let plain = compare(url(), (dns(), vec![legal()]), (dns(), vec![page()]));
        assert_eq!(
            kind(&plain),
            (Verdict::Blocked, Some(Blocking::HttpBlockpage))
        );
        let served = compare(
            url(),
            (dns(), vec![over_valid_tls(legal())]),
            (dns(), vec![page()]),
        );
        assert_eq!(kind(&served), (Verdict::Anomaly, None));
        assert!(served.verdict.evidence.contains("the site's own answer"));
        // Too many requests: the site's limit, not a censor's page.
        let limited = || fetch(429, 200, "Too Many Requests", 5.0, None);
        let outcome = compare(url(), (dns(), vec![limited()]), (dns(), vec![page()]));
        inconclusive_saying(&outcome, &["HTTP 429 Too Many Requests"]);
        // Over a valid session, the site's own limit: an anomaly, as its other answers.
        let outcome = compare(
            url(),
            (dns(), vec![over_valid_tls(limited())]),
            (dns(), vec![page()]),
        );
        assert_eq!(kind(&outcome), (Verdict::Anomaly, None));
        // Over plain HTTP, where the control was answered the same from an address of
        // its own: the site's own block of both countries.
        let from = |address: &str| {
            let mut m = legal();
            if let Step::Http(h) = &mut m.step {
                h.hops[0].address = Some(address.parse().unwrap());
            }
            m
        };
        let everyone = compare(
            url(),
            (dns(), vec![legal()]),
            (dns(), vec![from("157.240.2.2:80")]),
        );
        assert_eq!(kind(&everyone), (Verdict::Anomaly, None));
        assert!(
            everyone
                .verdict
                .evidence
                .contains("as the control's page did"),
            "{}",
            everyone.verdict.evidence
        );
        // From the address the probe got it from, or from a known blockpage's: the
        // censor's page, fetched from abroad.
        for censors in [FB_443, "10.10.34.34:80"] {
            let outcome = compare(url(), (dns(), vec![legal()]), (dns(), vec![from(censors)]));
            assert_eq!(
                kind(&outcome),
                (Verdict::Blocked, Some(Blocking::HttpBlockpage)),
                "{censors}"
            );
        }
        // Any other difference over one is the site's too.
        let moved = || fetch(404, 300, "Not here", 5.0, None);
        let other = compare(
            url(),
            (dns(), vec![over_valid_tls(moved())]),
            (dns(), vec![page()]),
        );
        assert_eq!(kind(&other), (Verdict::Anomaly, None));
        let plain_other = compare(url(), (dns(), vec![moved()]), (dns(), vec![page()]));
        assert_eq!(
            kind(&plain_other),
            (Verdict::Blocked, Some(Blocking::HttpDiff))
        );
    }

    #[test]
    fn a_challenged_control_leaves_nothing_to_compare() {
        let dns = || vec![lookup(&[(FB, None)])];
        let page = || fetch(200, 9000, "Facebook - log in", 5.0, None);
        let mut challenged = fetch(403, 7000, "Just a moment...", 5.0, None);
        challenge(&mut challenged);
        let plain = compare(
            url(),
            (dns(), vec![page()]),
            (dns(), vec![challenged.clone()]),
        );
        assert_eq!(kind(&plain), (Verdict::Inconclusive, None));
        assert!(plain.verdict.evidence.contains("no page to compare with"));
        let served = compare(
            url(),
            (dns(), vec![over_valid_tls(page())]),
            (dns(), vec![challenged]),
        );
        assert_eq!(kind(&served), (Verdict::Ok, None));
    }

    /// The target's URL judged from the probe's fetches `ours` and the control's
    /// `theirs`, both after the same lookup.
    fn fetched(ours: Vec<Measurement>, theirs: Vec<Measurement>) -> Outcome {
        let dns = || vec![lookup(&[(FB, None)])];
        compare(url(), (dns(), ours), (dns(), theirs))
    }

    /// `outcome`'s verdict and blocking kind are `expected`, its evidence says `said`.
    fn judged(outcome: &Outcome, expected: (Verdict, Option<Blocking>), said: &str) {
        assert_eq!(kind(outcome), expected, "{}", outcome.verdict.evidence);
        evidence_of(outcome, &[said]);
    }

    fn unavailable() -> Measurement {
        fetch(503, 300, "Service Unavailable", 5.0, None)
    }

    /// The site's 503 at a fetch and its two fetches again.
    fn unavailable_thrice() -> Vec<Measurement> {
        vec![
            unavailable(),
            fetched_again(unavailable()),
            fetched_again(unavailable()),
        ]
    }

    #[test]
    fn a_server_error_for_everyone_is_down() {
        let down = (Verdict::Down, None);
        let outage = fetched(vec![unavailable()], vec![unavailable()]);
        judged(&outage, down, "answered HTTP 503");
        // Fetched again, at both sides, erring each time; or the control's fetch failed.
        let refused = StepError::new(Operation::Connect, Failure::ConnectionRefused);
        let failed = fetch(0, 0, "", 0.0, Some(refused));
        for theirs in [unavailable_thrice(), vec![failed]] {
            judged(
                &fetched(unavailable_thrice(), theirs),
                down,
                "answered HTTP 503",
            );
        }
    }

    #[test]
    fn a_server_error_at_the_probe_only_is_no_evidence() {
        let page = || fetch(200, 9000, "Facebook - log in", 5.0, None);
        // A flaky site's one error, its page the next time: nothing wrong.
        let passing = fetched(vec![unavailable(), fetched_again(page())], vec![page()]);
        judged(
            &passing,
            (Verdict::Ok, None),
            "fetched with HTTP status 200",
        );
        // An error at every fetch where the control got the page, at its first fetch or
        // its next, over plain HTTP or a valid TLS session: the site's own, or a page
        // unlike any blockpage known; nothing tells.
        for (ours, theirs) in [
            (unavailable_thrice(), vec![page()]),
            (
                unavailable_thrice(),
                vec![unavailable(), fetched_again(page())],
            ),
            (
                unavailable_thrice()
                    .into_iter()
                    .map(over_valid_tls)
                    .collect(),
                vec![page()],
            ),
        ] {
            judged(
                &fetched(ours, theirs),
                (Verdict::Inconclusive, None),
                "answered HTTP 503 at each of 3 fetches while the control got HTTP 200",
            );
        }
        // A page after the error is compared as any: one unlike the control's still is.
        let moved = fetch(404, 300, "Not here", 5.0, None);
        judged(
            &fetched(vec![unavailable(), fetched_again(moved)], vec![page()]),
            (Verdict::Blocked, Some(Blocking::HttpDiff)),
            "status 404 vs 200",
        );
        // A captive portal's 511 is the network's answer, not the site's error: a page
        // unlike the control's (`explain::page_where_the_canary_failed` tells a
        // portal's).
        let portal = fetch(511, 300, "CafeNet: log in", 5.0, None);
        judged(
            &fetched(vec![portal], vec![page()]),
            (Verdict::Blocked, Some(Blocking::HttpDiff)),
            "status 511 vs 200",
        );
        // A known blockpage stays proof, served as an error, or at a fetch again.
        let iran = |status| {
            let mut iran = fetch(status, 300, "M1-6", 5.0, None);
            if let Step::Http(h) = &mut iran.step {
                h.hops[0].body_prefix =
                    r#"<iframe src="http://10.10.34.34?type=Invalid Site">"#.into();
            }
            iran
        };
        for ours in [
            vec![iran(503)],
            vec![unavailable(), fetched_again(iran(200))],
        ] {
            judged(
                &fetched(ours, vec![page()]),
                (Verdict::Blocked, Some(Blocking::HttpBlockpage)),
                "Iran's national blockpage",
            );
        }
        // A redirect at a fetch again, which follows none, is no page.
        let redirect = fetch(302, 0, "", 5.0, None);
        judged(
            &fetched(vec![unavailable(), fetched_again(redirect)], vec![page()]),
            (Verdict::Inconclusive, None),
            "answered HTTP 503 while the control got HTTP 200",
        );
    }

    /// The control read the whole video; the probe's facts after its lookup.
    fn against_the_control(probe: Vec<Measurement>) -> Outcome {
        let dns = || vec![lookup(&[(FB, None)])];
        let video = fetch(200, 400_000, "Video", 400.0, None);
        compare(url(), (dns(), probe), (dns(), vec![video]))
    }

    #[test]
    fn a_transfer_that_stopped_dead_is_a_freeze_by_address_or_by_name() {
        let passed = |m| checked(m, None);
        // Its twins from the same address froze too: by address (Russia's TSPU).
        let by_address = against_the_control(vec![
            passed(frozen(12_000)),
            stopped_after(twin(0, 0.0), 11_900),
            stopped_after(twin(0, 0.0), 11_900),
        ]);
        assert_eq!(
            kind(&by_address),
            (Verdict::Blocked, Some(Blocking::TlsStall))
        );
        evidence_of(
            &by_address,
            &[
                "stopped dead after 12000 bytes",
                "9.8 s of a 10.0 s read",
                "twins from the same address, after 11900 and 11900 bytes",
                "by address",
                "the control read the whole body (400000 bytes)",
            ],
        );
        // The twin read it all, and the name froze again right after: by name.
        let by_name = against_the_control(vec![
            frozen(12_000),
            twin(400_000, 500.0),
            stopped_after(again(0, 0.0), 12_100),
        ]);
        assert_eq!(kind(&by_name), (Verdict::Blocked, Some(Blocking::TlsStall)));
        evidence_of(
            &by_name,
            &[
                "twin from the same address read 400000 bytes",
                "again after 12100 bytes of its body: a freeze by name",
            ],
        );
        // The same, where some of the connects to the canary right after the first
        // stall went unanswered at first, or during its last try: a lossy link, whose
        // stalls in a row are no freeze. All of them answered: a freeze.
        let lossy = |first_tries, during| {
            let mut stalled = checked(frozen(12_000), None);
            if let Step::Http(h) = &mut stalled.step {
                let check = h.check.as_mut().expect("checked");
                (check.first_tries, check.during) = (first_tries, during);
            }
            against_the_control(vec![
                stalled,
                twin(400_000, 500.0),
                stopped_after(again(0, 0.0), 12_100),
            ])
        };
        let burst = |answered| Some(Burst { made: 6, answered });
        for (first_tries, during) in [(burst(4), None), (burst(6), burst(5))] {
            let lost = lossy(first_tries, during);
            assert_eq!(kind(&lost), (Verdict::Inconclusive, None));
            evidence_of(
                &lost,
                &["the probe's link was losing packets", "went unanswered"],
            );
        }
        assert_eq!(
            kind(&lossy(burst(6), burst(6))),
            (Verdict::Blocked, Some(Blocking::TlsStall))
        );
        // The name did not freeze again: a path that stalled for a while.
        let passed_again = against_the_control(vec![
            frozen(12_000),
            twin(400_000, 500.0),
            again(400_000, 600.0),
        ]);
        assert_eq!(kind(&passed_again), (Verdict::Inconclusive, None));
        evidence_of(
            &passed_again,
            &["it read 400000 bytes", "stalled for a while"],
        );
        // One twin froze too, and no second one was made (a run of an earlier version):
        // two stalls in a row, which loss makes now and then.
        let once = against_the_control(vec![
            passed(frozen(12_000)),
            stopped_after(twin(0, 0.0), 11_900),
        ]);
        assert_eq!(kind(&once), (Verdict::Inconclusive, None));
        evidence_of(&once, &["the one control-SNI twin", "no second twin"]);
        // The second twin read past it: the address is not frozen, and the name's own
        // fetch after it tells.
        let second_read = against_the_control(vec![
            passed(frozen(12_000)),
            stopped_after(twin(0, 0.0), 11_900),
            twin(400_000, 500.0),
            again(400_000, 600.0),
        ]);
        assert_eq!(kind(&second_read), (Verdict::Inconclusive, None));
        evidence_of(&second_read, &["read 400000 bytes", "stalled for a while"]);
        // Nothing repeated it: a sign.
        let alone = against_the_control(vec![frozen(12_000)]);
        assert_eq!(kind(&alone), (Verdict::Anomaly, Some(Blocking::TlsStall)));
        evidence_of(
            &alone,
            &["no control-SNI twin", "the control read the whole body"],
        );
        // A twin that neither froze nor read the whole body (slow, still moving, past
        // the point or not): no telling.
        let crawling = cut_at_deadline(twin(0, 0.0), 30_000, 10_000.0, 200.0);
        let unsure = against_the_control(vec![frozen(12_000), crawling]);
        assert_eq!(kind(&unsure), (Verdict::Inconclusive, None));
        evidence_of(
            &unsure,
            &["neither read the whole body nor froze (it was still coming"],
        );
        // The name did not freeze again, but crawled where the twin flowed at the
        // path's speed: a throttle, which loss on the link stalled the first time.
        let crawled = |peak: f64| {
            let mut m = cut_at_deadline(again(0, 0.0), 150_000, 3000.0, 50.0);
            if let Step::Http(h) = &mut m.step {
                h.hops[0].peak_rate = Some(peak);
            }
            against_the_control(vec![frozen(32_000), twin(400_000, 500.0), m])
        };
        let throttled = crawled(60_000.0);
        assert_eq!(
            kind(&throttled),
            (Verdict::Blocked, Some(Blocking::Throttled)),
            "{}",
            throttled.verdict.evidence
        );
        evidence_of(
            &throttled,
            &[
                "stopped dead after 32000 bytes of its body and, fetched with its own name again after the control-SNI twin, arrived at 50 kB/s",
            ],
        );
        // Loss alone: between its stalls the transfer ran at the path's speed.
        let lossy = crawled(900_000.0);
        assert_eq!(kind(&lossy), (Verdict::Inconclusive, None));
        evidence_of(&lossy, &["stalled for a while"]);
        // The probe's own network failed its check right after the stall: nothing after
        // it is evidence, the crawl included.
        let mut m = cut_at_deadline(again(0, 0.0), 150_000, 3000.0, 50.0);
        if let Step::Http(h) = &mut m.step {
            h.hops[0].peak_rate = Some(60_000.0);
        }
        let own = against_the_control(vec![
            checked(frozen(32_000), Some(Failure::GenericTimeout)),
            twin(400_000, 500.0),
            m,
        ]);
        assert_eq!(
            kind(&own),
            (Verdict::Inconclusive, None),
            "{}",
            own.verdict.evidence
        );
        // Too few bytes to show that full-size packets passed: a path MTU black hole.
        let mtu = against_the_control(vec![frozen(1_400), stopped_after(twin(0, 0.0), 1_400)]);
        assert_eq!(kind(&mtu), (Verdict::Inconclusive, None));
        evidence_of(&mtu, &["path MTU black hole"]);
    }

    #[test]
    fn a_round_trip_that_froze_before_its_head_is_a_freeze_too() {
        let first = |received, silent| {
            let m = head_frozen(fetch(0, 0, "", 0.0, None), received, silent);
            checked(m, None)
        };
        let frozen_twins = || [13_900, 13_800].map(|n| head_frozen(twin(0, 0.0), n, 9_900.0));
        // 14 kB of TLS records after the handshake, then nothing, on every connection to
        // the address: the record carrying the head never completed (Russia's freeze).
        let mut probe = vec![first(14_000, 9_900.0)];
        probe.extend(frozen_twins());
        let by_address = against_the_control(probe);
        assert_eq!(
            kind(&by_address),
            (Verdict::Blocked, Some(Blocking::TlsStall)),
            "{}",
            by_address.verdict.evidence
        );
        evidence_of(
            &by_address,
            &[
                "stopped dead after 14000 bytes on the connection after the TLS handshake, no response head",
                "9.9 s of a 10.0 s read",
                "twins from the same address, after 13900 and 13800 bytes",
                "by address",
                "the control read the whole body",
            ],
        );
        // The twin read the page, and the name froze again before its head: by name.
        let by_name = against_the_control(vec![
            first(14_000, 9_900.0),
            twin(400_000, 500.0),
            head_frozen(again(0, 0.0), 14_100, 9_900.0),
        ]);
        assert_eq!(kind(&by_name), (Verdict::Blocked, Some(Blocking::TlsStall)));
        evidence_of(&by_name, &["again after 14100 bytes on the connection"]);
        // Too few bytes to show that full-size packets passed, or a silence loss could
        // make: the round trip's failure, judged as before.
        for (received, silent) in [(1_400, 9_900.0), (14_000, 1_000.0)] {
            let mut probe = vec![first(received, silent)];
            probe.extend(frozen_twins());
            let other = against_the_control(probe);
            assert_ne!(
                other.verdict.blocking,
                Some(Blocking::TlsStall),
                "{}",
                other.verdict.evidence
            );
            evidence_of(&other, &["http_round_trip"]);
        }
    }

    /// A captive portal before its login answers every plain HTTP request with its own
    /// page and refuses the rest, the canary's connects too: a page unlike the control's
    /// is then no sign against the site. Where the canary went through, or failed only
    /// over the other family, the page is the site's network's doing as before.
    #[test]
    fn a_page_in_place_of_the_sites_where_the_canary_was_refused_is_no_sign() {
        let dns = || vec![lookup(&[(FB, None)])];
        let mut page = fetch(200, 180, "Welcome - please log in", 5.0, None);
        if let Step::Http(h) = &mut page.step {
            h.hops[0]
                .headers
                .push(("x-portal".into(), "cafenet".into()));
        }
        let mut site = fetch(200, 9000, "Facebook - log in", 5.0, None);
        if let Step::Http(h) = &mut site.step {
            h.hops[0].headers.push(("x-fb-debug".into(), "1".into()));
        }
        let judged = |canary: Vec<Measurement>| {
            compare_in(
                &canary_context(dns(), canary),
                url(),
                (dns(), vec![page.clone()]),
                (dns(), vec![site.clone()]),
            )
        };
        // Its connects to port 443 refused; to port 80, which the portal answers, not.
        let refused = |address| {
            vec![
                tcp(address, Some(Failure::ConnectionRefused)),
                tcp("198.18.0.10:80", None),
            ]
        };
        inconclusive_saying(
            &judged(refused("198.18.0.10:443")),
            &[
                "the canary's TLS could not be reached over IPv4 in this run (connection_refused in connect), though its plain TCP could",
            ],
        );
        let answered = vec![
            tcp("198.18.0.10:443", None),
            tls("198.18.0.10:443", false, None),
        ];
        // Its TLS port silent and nothing else tried: the link down as the canary was
        // measured, or its address blocked, says nothing of a portal.
        let silent = vec![tcp("198.18.0.10:443", Some(Failure::GenericTimeout))];
        for canary in [answered, silent, refused("[2001:db8::10]:443")] {
            let outcome = judged(canary);
            assert_eq!(kind(&outcome), (Verdict::Blocked, Some(Blocking::HttpDiff)));
        }
    }

    #[test]
    fn a_round_trip_silent_over_its_own_session_on_a_lossy_link_is_no_sign() {
        // Four tries, each with its TLS handshake done with the target's own name and
        // 2 kB after it, then no response head before the deadline.
        let silent = |tls: bool, during: Burst| {
            let mut m = head_frozen(fetch(0, 0, "", 0.0, None), 2_000, 9_900.0);
            if tls {
                m = over_valid_tls(m);
            }
            let mut check = check(None);
            check.during = Some(during);
            check.first_tries = Some(Burst {
                made: 6,
                answered: 5,
            });
            if let Step::Http(h) = &mut m.step {
                h.tries = 4;
                h.check = Some(check);
            }
            m
        };
        let lossy = Burst {
            made: 6,
            answered: 4,
        };
        let sound = Burst {
            made: 6,
            answered: 6,
        };
        inconclusive_saying(
            &against_the_control(vec![silent(true, lossy)]),
            &[
                "TLS handshakes with the target's own name went through",
                "2 of the 6 connects to the canary",
                "nothing singled the name out",
            ],
        );
        // Loss seen right after only, or no handshake with the name on record (the name
        // may be what the silence follows): the round trip's failure stands.
        for other in [silent(true, sound), silent(false, lossy)] {
            let outcome = against_the_control(vec![other]);
            assert_eq!(
                kind(&outcome),
                (Verdict::Blocked, Some(Blocking::HttpFailure)),
                "{}",
                outcome.verdict.evidence
            );
        }
    }

    /// A fetch the server ended with its TLS `close_notify` (Caddy's `abort`, as Go's
    /// servers close a connection they turn away) over a session valid for the name is
    /// the site's own close as a rule, which a censor could only provoke: no evidence
    /// (`inconclusive`); without the alert (a FIN or reset, which anyone on the path
    /// can send), or over a session not valid for the name, the failure stands against
    /// the control's page.
    #[test]
    fn a_session_the_site_closed_is_no_evidence_either_way() {
        let dns = || vec![lookup(&[(FB, None)])];
        let page = || fetch(200, 9000, "Facebook - log in", 5.0, None);
        let closed = |close_notify: bool, valid: bool| {
            let eof = StepError::new(Operation::HttpRoundTrip, Failure::Eof);
            let mut m = fetch(0, 0, "", 0.0, Some(eof));
            if valid {
                m = over_valid_tls(m);
            }
            if let Step::Http(h) = &mut m.step {
                h.hops[0].close_notify = close_notify;
            }
            m
        };
        let outcome = compare(
            url(),
            (dns(), vec![closed(true, true)]),
            (dns(), vec![page()]),
        );
        assert_eq!(kind(&outcome), (Verdict::Inconclusive, None));
        assert!(
            outcome.verdict.evidence.contains("the site's own close"),
            "{}",
            outcome.verdict.evidence
        );
        for (close_notify, valid) in [(false, true), (true, false)] {
            let outcome = compare(
                url(),
                (dns(), vec![closed(close_notify, valid)]),
                (dns(), vec![page()]),
            );
            assert_eq!(
                kind(&outcome),
                (Verdict::Blocked, Some(Blocking::HttpFailure)),
                "close_notify {close_notify}, valid {valid}: {}",
                outcome.verdict.evidence
            );
        }
    }

    #[test]
    fn a_freeze_is_blocked_only_with_the_controls_body_and_the_probes_network() {
        let dns = || vec![lookup(&[(FB, None)])];
        let by_address = || {
            vec![
                frozen(12_000),
                stopped_after(twin(0, 0.0), 11_900),
                stopped_after(twin(0, 0.0), 11_800),
            ]
        };
        let by_name = || {
            vec![
                frozen(12_000),
                twin(400_000, 500.0),
                stopped_after(again(0, 0.0), 12_100),
            ]
        };
        // No control: a sign at most.
        for probe in [by_address(), by_name(), vec![frozen(12_000)]] {
            let alone = judge(url(), dns(), probe);
            assert_eq!(kind(&alone), (Verdict::Anomaly, Some(Blocking::TlsStall)));
        }
        // A control that could not be asked: the name singled out is a sign; a freeze of
        // the address might be the server's, for everyone.
        let unavailable = |probe| {
            judge_with(
                &facts(&url(), dns(), probe),
                Control::Unavailable("refused"),
            )
        };
        assert_eq!(
            kind(&unavailable(by_name())),
            (Verdict::Anomaly, Some(Blocking::TlsStall))
        );
        assert_eq!(
            kind(&unavailable(by_address())),
            (Verdict::Inconclusive, None)
        );
        // The canary took no connect right after: the probe's link went dead, not the
        // address.
        let mut own = by_address();
        own[0] = checked(frozen(12_000), Some(Failure::GenericTimeout));
        let lost = against_the_control(own);
        assert_eq!(kind(&lost), (Verdict::Inconclusive, None));
        evidence_of(&lost, &["the probe's own network"]);
        // The control's body stopped too: no freeze of the probe's.
        let theirs = stopped_after(fetch(200, 0, "Video", 0.0, None), 12_000);
        let everyone = compare(url(), (dns(), by_address()), (dns(), vec![theirs]));
        assert_ne!(everyone.verdict.verdict, Verdict::Blocked);
        assert_ne!(everyone.verdict.blocking, Some(Blocking::TlsStall));
    }

    #[test]
    fn loss_and_throttles_are_no_freeze() {
        let fast_twin_then_slow =
            |first| vec![first, twin(400_000, 500.0), again(400_000, 20_000.0)];
        // Loss's silences end when a resend gets through: 1.5 s at the end of a 3 s read,
        // or 3 s of a 10 s read (the last byte in its second half), is no freeze.
        for (read, silent) in [(3_000.0, 1_500.0), (10_000.0, 3_000.0)] {
            let mut gaps =
                cut_at_deadline(fetch(200, 0, "Video", 0.0, None), 150_000, read, silent);
            if let Step::Http(h) = &mut gaps.step {
                h.hops[0].peak_rate = Some(5_000_000.0);
            }
            let lossy = against_the_control(fast_twin_then_slow(gaps));
            assert_eq!(
                kind(&lossy),
                (Verdict::Inconclusive, None),
                "{}",
                lossy.verdict.evidence
            );
            assert!(lossy.verdict.evidence.contains("cut off by the deadline"));
        }
        // A throttle keeps the transfer moving until the deadline, data in every quarter
        // second: still throttled.
        let mut crawling =
            cut_at_deadline(fetch(200, 0, "Video", 0.0, None), 150_000, 10_000.0, 150.0);
        if let Step::Http(h) = &mut crawling.step {
            (h.hops[0].active_rate, h.hops[0].peak_rate) = (Some(15_000.0), Some(15_000.0));
        }
        let throttle = against_the_control(fast_twin_then_slow(crawling.clone()));
        assert_eq!(
            kind(&throttle),
            (Verdict::Blocked, Some(Blocking::Throttled))
        );
        // The first twin fell short too (a second was made): the path held back a
        // transfer with another name as well.
        let short_twin = against_the_control(vec![
            crawling.clone(),
            twin(100_000, 3_000.0),
            twin(400_000, 500.0),
            again(400_000, 20_000.0),
        ]);
        assert_eq!(kind(&short_twin), (Verdict::Inconclusive, None));
        evidence_of(&short_twin, &["the first control-SNI twin fell short"]);
        // The fetch with its own name after the twin flowed faster than any throttle
        // lets through, or came in bursts between stalls: no cap held (heavy loss makes
        // a first transfer crawl at one record per retransmission timeout, as a throttle).
        let mut bursts_after = vec![crawling.clone(), twin(524_288, 1.0)];
        let mut fast = again(400_000, 2_800.0);
        if let Step::Http(h) = &mut fast.step {
            (h.hops[0].active_rate, h.hops[0].peak_rate) = (Some(983_000.0), Some(983_000.0));
        }
        let flowed = against_the_control([bursts_after.clone(), vec![fast]].concat());
        assert_eq!(kind(&flowed), (Verdict::Inconclusive, None));
        bursts_after.push(again(147_210, 3_000.0));
        if let Step::Http(h) = &mut bursts_after[2].step {
            (h.hops[0].active_rate, h.hops[0].peak_rate) = (None, None);
        }
        let stalled_after = against_the_control(bursts_after);
        assert_eq!(kind(&stalled_after), (Verdict::Inconclusive, None));
        evidence_of(&stalled_after, &["no longer capped once fetched again"]);
        // The same average in bursts between stalls (no quarter second but two brought
        // data): loss's, or a freeze's, not a cap.
        if let Step::Http(h) = &mut crawling.step {
            (h.hops[0].active_rate, h.hops[0].peak_rate) = (None, None);
        }
        let bursts = against_the_control(fast_twin_then_slow(crawling));
        assert_eq!(kind(&bursts), (Verdict::Inconclusive, None));
        evidence_of(&bursts, &["cut off by the deadline"]);
        // And a freeze is never rated as a throttle, however slow it was on average:
        // only the fetch after the twin is, where that kept moving.
        let freeze = against_the_control(vec![
            frozen(150_000),
            twin(400_000, 500.0),
            again(400_000, 600.0),
        ]);
        assert_ne!(kind(&freeze).1, Some(Blocking::Throttled));
        let frozen_then_slow = against_the_control(fast_twin_then_slow(frozen(150_000)));
        assert_eq!(
            kind(&frozen_then_slow),
            (Verdict::Blocked, Some(Blocking::Throttled))
        );
    }

    #[test]
    fn a_fetch_reset_after_the_control_sni_worked_is_sni_filtering() {
        let dns = || vec![lookup(&[(FB, None)])];
        let reset = || {
            fetch(
                0,
                0,
                "",
                0.0,
                Some(StepError::new(
                    Operation::TlsHandshake,
                    Failure::ConnectionReset,
                )),
            )
        };
        let ok = || (dns(), vec![fetch(200, 9000, "Facebook", 5.0, None)]);
        let sni = compare(url(), (dns(), vec![tls(FB_443, true, None), reset()]), ok());
        assert_eq!(kind(&sni), (Verdict::Blocked, Some(Blocking::TlsReset)));
        // Without a control-SNI handshake that worked, only a TLS failure.
        let plain = compare(
            url(),
            (
                dns(),
                vec![tls(FB_443, true, Some(Failure::ConnectionReset)), reset()],
            ),
            ok(),
        );
        assert_eq!(kind(&plain), (Verdict::Blocked, Some(Blocking::TlsFailure)));
    }

    /// A long transfer meets far more packets than the short steps a network's random
    /// resets are measured on: torn down in its body at every try, it is no sign where
    /// the network turned other steps down now and then; before any byte, it is.
    #[test]
    fn a_long_transfer_torn_down_on_a_network_that_resets_at_random_is_no_sign() {
        let dns = || vec![lookup(&[(FB, None)])];
        let ok = || (dns(), vec![fetch(200, 524_288, "Photo", 50.0, None)]);
        let torn = |answered: u32, cut_after: &[u64]| {
            let (status, operation) = match cut_after.is_empty() {
                true => (0, Operation::HttpRoundTrip),
                false => (200, Operation::Read),
            };
            let error = StepError::new(operation, Failure::ConnectionReset);
            let body = cut_after.first().copied().unwrap_or(0);
            let mut m = checked(fetch(status, body, "Photo", 30.0, Some(error)), None);
            if let Step::Http(h) = &mut m.step {
                h.tries = Meanwhile::TURNED_DOWN_TRIES;
                h.cut_after = cut_after.to_vec();
                // 159 tries of connects, handshakes and fetches, some 1,000 packets.
                h.check.as_mut().unwrap().meanwhile = Some(Meanwhile {
                    answered,
                    tries: 159,
                    packets: 1000,
                });
            }
            compare(url(), (dns(), vec![tls(FB_443, true, None), m]), ok())
        };
        // Three tries in 159 turned down at random, one packet in 333: a transfer cut
        // after 100 to 230 kB met some 100 to 250 packets at each try.
        let cut = torn(156, &[147_210, 98_304, 230_000]);
        assert_eq!(
            kind(&cut),
            (Verdict::Inconclusive, None),
            "{}",
            cut.verdict.evidence
        );
        evidence_of(
            &cut,
            &[
                "turning connections down at random",
                "one in 333 of the some 1000 packets they met; at that rate all 3 tries of this step (161, 111, 246 packets, torn down in the body after 147210, 98304, 230000 bytes) fail once in",
            ],
        );
        // The same network, the fetch reset before its response at every try.
        let early = torn(156, &[]);
        assert_eq!(
            kind(&early).0,
            Verdict::Blocked,
            "{}",
            early.verdict.evidence
        );
        // A network that turned nothing else down: a cut at every try is a sign.
        let steady = torn(159, &[147_210, 98_304, 230_000]);
        assert_eq!(
            kind(&steady).0,
            Verdict::Blocked,
            "{}",
            steady.verdict.evidence
        );
    }
}
