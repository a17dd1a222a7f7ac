//! HTTP: blockpage fingerprints first (they prove interference whatever else
//! happened), then a CDN's own challenge page (a difference, not interference), then a
//! failed fetch where the control's worked, a transfer far slower than the control's
//! (throttling), and a page that differs from the control's.
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
//! a path congested for the first transfer only is not (A/B/A). A TLS failure of the fetch is SNI filtering when the control-SNI
//! handshakes to the same address around it worked, as for domains.

use std::collections::BTreeSet;

use super::transport::{connect_problem, name_singled_out, tcp_finding};
use super::{Blocking, ControlSaw, Finding, Problem, explain, fingerprints};
use crate::facts::TargetFacts;
use crate::facts::failure::{Failure, Operation, StepError};
use crate::facts::{HttpFacts, HttpHop, Measurement, Step, THROTTLE_RATIO};

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

/// The refetches of a slow transfer, if made (see `measure::http`): its control-SNI
/// twin (the fastest, when loss had it made twice), and the fetch with the target's
/// name again after a far faster twin.
struct Refetches<'a> {
    twin: Option<&'a HttpHop>,
    again: Option<&'a HttpHop>,
}

fn refetches(facts: &TargetFacts) -> Refetches<'_> {
    let found = |twin: bool| {
        facts
            .measurements
            .iter()
            .filter_map(move |m| match &m.step {
                Step::Http(h) if h.control_sni.is_some() == twin && h.again != twin => {
                    h.final_response()
                }
                _ => None,
            })
    };
    let best = |hop: &&HttpHop| hop.peak_rate.or(rate(hop)).unwrap_or(0.0);
    Refetches {
        twin: found(true).max_by(|a, b| best(a).total_cmp(&best(b))),
        again: found(false).next(),
    }
}

pub fn problems(probe: &TargetFacts, control: Option<&TargetFacts>) -> Vec<Problem> {
    let theirs = control.map(|c| fetches(c).next().map(|(_, h)| h));
    let their_page = theirs
        .flatten()
        .filter(|t| t.error.is_none())
        .and_then(|t| t.final_response());
    let mut out = Vec::new();
    for (m, h) in fetches(probe) {
        if let Some(problem) = blockpage(h) {
            out.push(problem);
            continue;
        }
        if let Some(problem) = cdn_page(h, their_page) {
            out.push(problem);
            continue;
        }
        if let Some(e) = &h.error {
            // The target's own name not resolving is the DNS layer's to judge.
            if e.failed_operation == Operation::Resolve && h.hops.len() == 1 {
                continue;
            }
            let saw = theirs.map(|t| match (t, their_page) {
                (_, Some(page)) => ControlSaw::Success(format!(
                    "the control fetched it (HTTP {})",
                    page.status.unwrap_or_default()
                )),
                (Some(t), None) => match t
                    .error
                    .as_ref()
                    .and_then(|e| explain::at_control(e, t.check.as_ref()))
                {
                    Some(why) => ControlSaw::NotMeasured(why),
                    None => ControlSaw::Failure(format!(
                        "the control's fetch failed too ({})",
                        t.error
                            .as_ref()
                            .map_or("no response".into(), |e| e.failure.to_string())
                    )),
                },
                (None, None) => ControlSaw::NotMeasured("the control did not fetch it".into()),
            });
            let last = h.hops.last();
            if e.failed_operation == Operation::Connect
                && let Some(address) = last.and_then(|hop| hop.address)
            {
                let mut problem =
                    connect_problem(probe, m, address, e, 1, h.check.as_ref(), control);
                problem.control = saw;
                out.push(problem);
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
            let why = explain::step(&what, e, h.check.as_ref()).or_else(|| {
                let hop = last?;
                let sent = hop.started_at.unwrap_or(m.measured_at);
                explain::silent_after_trigger(probe, m, hop.address?, e, sent)
            });
            out.push(problem.unless(why));
        } else if let (Some(ours), Some(page)) = (h.final_response(), their_page) {
            let saw = || Some(ControlSaw::Success("the control fetched it".into()));
            if let Some(name) = fingerprints::cdn_page(page) {
                out.extend(unseen_page(ours, page, name));
            } else if let Some(problem) = server_error(ours, page) {
                out.push(problem);
            } else if let Some(slow) = throttled(h, page, refetches(probe)) {
                out.push(slow.with_control(saw()));
            } else if let Some(mut finding) = differs(ours, page) {
                out.push(match site_served(ours) {
                    true => {
                        finding.evidence.push_str(SITE_SERVED);
                        Problem::not_interference(finding, saw())
                    }
                    false => Problem::weak(finding, saw()),
                });
            }
        }
    }
    out
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
/// measurement imported from a tool that makes none): a throttle or a stall, not a
/// reset, with nothing to tell it from a slow path. A sign, never proof.
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
        && refetches(probe).twin.is_none();
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

/// Appended to a page difference seen over a TLS session with a valid certificate for
/// the name: no censor can write into one, so the site chose to answer so.
const SITE_SERVED: &str = ", over a TLS session with a valid certificate for the name: the site's own answer (a page by country, a legal block), not a censor's";

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

/// Both sides got a server error (5xx) from the site: an outage, if nothing else
/// reached it.
fn server_error(ours: &HttpHop, theirs: &HttpHop) -> Option<Problem> {
    let our_status = ours.status.filter(|s| *s >= 500)?;
    let their_status = theirs.status.filter(|s| *s >= 500)?;
    Some(Problem::weak(
        Finding::new(
            Blocking::HttpFailure,
            format!("{} answered HTTP {our_status}", ours.url),
        ),
        Some(ControlSaw::Failure(format!(
            "the control got HTTP {their_status} too"
        ))),
    ))
}

/// A hop that answered with a known blockpage: proof of interference, unless it came
/// over a TLS session with a valid certificate for the name, which no censor can write
/// into (a site's own legal block, or a page that looks like one).
fn blockpage(h: &HttpFacts) -> Option<Problem> {
    h.hops.iter().find_map(|hop| {
        let name = fingerprints::http_blockpage(hop)?;
        let mut finding = Finding::new(
            Blocking::HttpBlockpage,
            format!("{} answered with {name}", hop.url),
        );
        Some(match site_served(hop) {
            true => {
                finding.evidence.push_str(SITE_SERVED);
                Problem::not_interference(finding, None)
            }
            false => Problem::proven(finding),
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
        Operation::TlsHandshake => Finding::new(
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

/// A body the deadline cut off after some of it came.
fn cut_off(hop: &HttpHop) -> bool {
    hop.body_length > 0
        && hop
            .error
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
    let ours = h.hops.last()?;
    let (our_rate, their_rate) = (rate(ours)?, rate(theirs)?);
    if our_rate * THROTTLE_RATIO >= their_rate {
        return None;
    }
    // Loss stalls a transfer between bursts at the path's speed; a throttle caps that
    // speed, its fastest quarter seconds too. A transfer that came in one or two bursts
    // (a throttle's allowance, then loss) shows no peak: the fetch with the target's name
    // after the twin shows it instead.
    let our_active = ours.active_rate.unwrap_or(our_rate);
    let peak = ours
        .peak_rate
        .or(refetched.again.and_then(|a| a.peak_rate))
        .unwrap_or(our_rate);
    if peak >= THROTTLE_CAP {
        return None;
    }
    let kbps = |rate: f64| format!("{:.0} kB/s", rate / 1000.0);
    let mut evidence = format!(
        "{} arrived at {} ({} while it flowed) at the probe against {} at the control ({} and {} bytes)",
        ours.url,
        kbps(our_rate),
        kbps(our_active),
        kbps(their_rate),
        ours.body_length,
        theirs.body_length
    );
    // What the path gave the same URL under another name, at its best.
    let twin_rate = refetched.twin.and_then(|t| t.peak_rate.or(rate(t)));
    if let Some(rate) = twin_rate {
        evidence.push_str(&format!(
            ", and at up to {} from the same address with the control SNI",
            kbps(rate)
        ));
    }
    // The target's name again after the twin: still capped, or the path had recovered.
    // Capped when it flowed nearer (by ratio) the first transfer's rate than the twin's
    // best: loss slows the twin too, and a throttle's token bucket, refilled while the
    // twin ran, lets a burst through at its start. Too short to rate: stalled, capped.
    let again = refetched.again.map(|a| {
        let flowed = a.active_rate.or(rate(a));
        let capped = flowed
            .is_none_or(|flowed| twin_rate.is_some_and(|twin| flowed < (our_active * twin).sqrt()));
        (capped, flowed)
    });
    if let Some((_, flowed)) = again {
        let flowed = flowed.map_or("no measurable rate".into(), kbps);
        evidence.push_str(&format!(
            ", then at {flowed} while it flowed with its own name again"
        ));
    }
    let (throttled, why_not) = match twin_rate {
        Some(rate) if our_active * THROTTLE_RATIO >= rate => (
            false,
            format!(
                "{evidence}: as slow with the control SNI, so a slow path (a congested route) or a throttle of the address, not of the name"
            ),
        ),
        Some(_) => match again {
            Some((true, _)) => (true, String::new()),
            Some((false, _)) => (
                false,
                format!(
                    "{evidence}: no longer capped once fetched again, so a path congested for a while, not a throttle"
                ),
            ),
            None => (
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
    use super::super::{Blocking, Verdict};
    use crate::facts::failure::{Failure, Operation, StepError};

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

    #[test]
    fn a_server_error_for_everyone_is_down() {
        let dns = || vec![lookup(&[(FB, None)])];
        let error = || fetch(503, 300, "Service Unavailable", 5.0, None);
        let outage = compare(url(), (dns(), vec![error()]), (dns(), vec![error()]));
        assert_eq!(
            kind(&outage),
            (Verdict::Down, None),
            "{}",
            outage.verdict.evidence
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
}
