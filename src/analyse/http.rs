//! HTTP: blockpage fingerprints first (they prove interference whatever else
//! happened), then a failed fetch where the control's worked, a transfer far slower
//! than the control's (throttling), and a page that differs from the control's.
//!
//! The page comparison is OONI's Web Connectivity rule, so that dynamic pages do not
//! read as blockpages: the status must match and at least one of body length
//! (proportion above 0.7), uncommon header names, or title words must match.

use std::collections::BTreeSet;

use super::transport::tcp_finding;
use super::{Blocking, ControlSaw, Finding, Problem, fingerprints};
use crate::facts::{HttpFacts, HttpHop, Step};
use crate::failure::{Failure, Operation};
use crate::measure::TargetFacts;

/// Below this many bytes a transfer is too short for its rate to mean anything.
const MIN_RATE_BYTES: u64 = 64 * 1024;
/// A probe transfer slower than the control's divided by this is throttled.
const THROTTLE_RATIO: f64 = 4.0;
/// A transfer faster than this (bytes per second, 8 Mbit/s) throttles no one: the
/// control usually sits on a faster network than the probe, and a busy probe reads a
/// fast transfer more slowly, so the ratio alone would flag every large page.
const THROTTLE_CEILING: f64 = 1_000_000.0;
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

fn fetches(facts: &TargetFacts) -> impl Iterator<Item = &HttpFacts> {
    facts.measurements.iter().filter_map(|m| match &m.step {
        Step::Http(h) => Some(h),
        _ => None,
    })
}

pub fn problems(probe: &TargetFacts, control: Option<&TargetFacts>) -> Vec<Problem> {
    let theirs = control.map(|c| fetches(c).next());
    let mut out = Vec::new();
    for h in fetches(probe) {
        if let Some(finding) = blockpage(h) {
            out.push(Problem::proven(finding));
            continue;
        }
        let their_page = theirs
            .flatten()
            .filter(|t| t.error.is_none())
            .and_then(|t| t.final_response());
        if let Some(e) = &h.error {
            let slow = their_page.and_then(|page| throttled(h, page));
            let saw = theirs.map(|t| match (t, their_page) {
                (_, Some(page)) => ControlSaw::Success(format!(
                    "the control fetched it (HTTP {})",
                    page.status.unwrap_or_default()
                )),
                (Some(t), None) => ControlSaw::Failure(format!(
                    "the control's fetch failed too ({})",
                    t.error
                        .as_ref()
                        .map_or("no response".into(), |e| e.failure.to_string())
                )),
                (None, None) => ControlSaw::NotMeasured("the control did not fetch it".into()),
            });
            let finding = slow.unwrap_or_else(|| failure_finding(h));
            out.push(match e.failure.is_certificate_error() {
                true => Problem::strong(finding, saw),
                false => Problem::weak(finding, saw),
            });
        } else if let (Some(ours), Some(page)) = (h.final_response(), their_page) {
            let saw = || Some(ControlSaw::Success("the control fetched it".into()));
            if let Some(finding) = throttled(h, page).or_else(|| differs(ours, page)) {
                out.push(Problem::weak(finding, saw()));
            }
        }
    }
    out
}

fn blockpage(h: &HttpFacts) -> Option<Finding> {
    h.hops.iter().find_map(|hop| {
        fingerprints::http_blockpage(hop).map(|name| {
            Finding::new(
                Blocking::HttpBlockpage,
                format!("{} answered with {name}", hop.url),
            )
        })
    })
}

/// The failure of a fetch, named by the layer it happened in.
fn failure_finding(h: &HttpFacts) -> Finding {
    let e = h.error.as_ref().expect("called on failed fetches");
    let last = h.hops.last();
    let hop = last.map_or(h.url.as_str(), |hop| hop.url.as_str());
    let at = last
        .and_then(|hop| hop.address)
        .map_or_else(|| hop.to_string(), |a| a.to_string());
    match e.failed_operation {
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
    }
}

/// Bytes per second over the body, when the transfer was long enough to tell.
fn rate(hop: &HttpHop) -> Option<f64> {
    (hop.body_length >= MIN_RATE_BYTES)
        .then(|| hop.body_length as f64 / (hop.transfer_ms.max(1.0) / 1000.0))
}

/// The probe's transfer (finished or cut off by the deadline) ran far slower than the
/// control's.
fn throttled(h: &HttpFacts, theirs: &HttpHop) -> Option<Finding> {
    let ours = h.hops.last()?;
    let (our_rate, their_rate) = (rate(ours)?, rate(theirs)?);
    (our_rate * THROTTLE_RATIO < their_rate && our_rate < THROTTLE_CEILING).then(|| {
        Finding::new(
            Blocking::Throttled,
            format!(
                "{} arrived at {:.0} kB/s at the probe against {:.0} kB/s at the control ({} and {} bytes)",
                ours.url,
                our_rate / 1000.0,
                their_rate / 1000.0,
                ours.body_length,
                theirs.body_length
            ),
        )
    })
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
