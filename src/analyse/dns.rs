//! DNS evidence without a control: answers that cannot be true (bogons, known
//! blockpage addresses, addresses outside the service's networks), several differing
//! answers to one query, and lookups that failed.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{Blocking, Context, Finding, fingerprints};
use crate::facts::{DnsFacts, Measurement, QueryType, Step};
use crate::failure::Failure;
use crate::plan::Target;

/// The strongest DNS evidence of interference, in order: injection, a forged answer,
/// an answer outside the expected networks, NXDOMAIN, any other failure.
pub fn finding(dns: &[Measurement], target: &Target, context: &Context) -> Option<Finding> {
    let lookups: Vec<&DnsFacts> = dns
        .iter()
        .filter_map(|m| match &m.step {
            Step::Dns(f) => Some(f),
            _ => None,
        })
        .collect();
    lookups
        .iter()
        .find_map(|f| injection(f))
        .or_else(|| lookups.iter().find_map(|f| forged(f, context)))
        .or_else(|| lookups.iter().find_map(|f| outside_asns(f, &target.asns)))
        .or_else(|| failed(&lookups))
}

/// More than one matching reply to one query, with different addresses.
fn injection(f: &DnsFacts) -> Option<Finding> {
    let sets: Vec<BTreeSet<IpAddr>> = f
        .replies
        .iter()
        .filter(|r| r.matches_query)
        .map(|r| r.addresses().collect())
        .collect();
    let first = sets.first()?;
    let other = sets.iter().find(|s| *s != first)?;
    let show = |s: &BTreeSet<IpAddr>| match s.is_empty() {
        true => "no address".to_string(),
        false => s
            .iter()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(" "),
    };
    Some(Finding::new(
        Blocking::DnsInjection,
        format!(
            "{} answered an {} query for {} {} times with different addresses: first {}, then {}",
            f.resolver,
            f.query_type.as_str(),
            f.hostname,
            sets.len(),
            show(first),
            show(other)
        ),
    ))
}

/// An answer that is a known blockpage address or a bogon.
fn forged(f: &DnsFacts, context: &Context) -> Option<Finding> {
    f.all_addresses().into_iter().find_map(|ip| {
        let why = match fingerprints::dns_blockpage(ip) {
            Some(name) => format!("the address of {name}"),
            None if context.policy.is_bogon(ip) => "a bogon (private or reserved) address".into(),
            None => return None,
        };
        Some(Finding::new(
            Blocking::DnsHijack,
            format!("{} answered {} for {}, {why}", f.resolver, ip, f.hostname),
        ))
    })
}

/// An answer whose ASN (from --asn-db) is not one of the service's.
fn outside_asns(f: &DnsFacts, expected: &[u32]) -> Option<Finding> {
    if expected.is_empty() {
        return None;
    }
    let answer = f
        .replies
        .iter()
        .filter(|r| r.matches_query)
        .flat_map(|r| r.answers.iter())
        .find(|a| a.asn.is_some_and(|asn| !expected.contains(&asn)))?;
    Some(Finding::new(
        Blocking::DnsHijack,
        format!(
            "{} answered {} for {}, which is in AS{}, not in the service's networks ({})",
            f.resolver,
            answer.data,
            f.hostname,
            answer.asn.unwrap_or_default(),
            expected
                .iter()
                .map(|a| format!("AS{a}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

/// A lookup that failed. An AAAA query without an answer is normal (many names have
/// no IPv6 address); a name with no address at all is a failure.
fn failed(lookups: &[&DnsFacts]) -> Option<Finding> {
    let failure = lookups.iter().find_map(|f| {
        let e = f.error.as_ref()?;
        (!(e.failure == Failure::DnsNoAnswer && f.query_type == QueryType::Aaaa)).then_some((f, e))
    });
    if let Some((f, e)) = failure {
        let blocking = match e.failure {
            Failure::DnsNxdomain => Blocking::DnsNxdomain,
            _ => Blocking::DnsFailure,
        };
        return Some(Finding::new(
            blocking,
            format!(
                "{} {} lookup of {} failed: {}",
                f.resolver,
                f.query_type.as_str(),
                f.hostname,
                e.failure
            ),
        ));
    }
    None
}
