//! DNS: answers that cannot be true (bogons, known blockpage addresses), several
//! differing answers to one query, answers consistent with nothing the control knows,
//! and lookups that failed where the control's succeeded.
//!
//! Consistency follows OONI's Web Connectivity v0.5: an answer is consistent when it
//! shares an address or an ASN with the control's answers of the same type, when the
//! address completed a TLS handshake valid for the name (from either side) or served
//! the probe the control's page, or when it lies in the service's expected networks. A
//! CDN that answers differently in different countries is therefore not a censor. AAAA
//! answers are judged only where the probe reached an IPv6 address: elsewhere nothing
//! could vouch for them, and nobody there uses them.
//!
//! A failed lookup is evidence only when its resolver answers otherwise: a resolver
//! that failed the canary too (at the start of the run, or right after) is down or
//! broken, and what fails through it is `inconclusive` (see `explain`). And one record
//! type failing is not the name failing: an A or AAAA lookup that failed while the
//! other type, through the same resolver, gave addresses is no problem of the target's.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use super::{
    Blocking, Context, ControlSaw, Finding, Problem, explain, fingerprints, http, transport,
};
use crate::facts::TargetFacts;
use crate::facts::failure::{Failure, StepError};
use crate::facts::{Check, DnsFacts, DnsReply, Measurement, QueryType, Step, TlsFacts};
use crate::input::bogon::AddressPolicy;

fn lookups(measurements: &[Measurement]) -> impl Iterator<Item = &DnsFacts> {
    measurements.iter().filter_map(|m| match &m.step {
        Step::Dns(f) => Some(f),
        _ => None,
    })
}

pub fn problems(
    probe: &TargetFacts,
    control: Option<&TargetFacts>,
    context: &Context,
) -> Vec<Problem> {
    let mut out = Vec::new();
    for f in lookups(&probe.dns) {
        let like_the_canary = || explain::answered_like_the_canary(f, &context.resolvers);
        // IPv6 answers the probe could not try (it reached no IPv6 address in the run)
        // are neither vouched for by the site, nor used by its users.
        let untried = f.query_type == QueryType::Aaaa
            && !context.ipv6
            && !transport::reached_over(probe, true);
        let injected = || injection(f, probe, control).filter(|_| !untried);
        if let Some(finding) = injected() {
            out.push(Problem::proven(finding));
        } else if let Some(finding) = forged(f, &context.policy, control) {
            let why = like_the_canary().or_else(|| {
                explain::private_like_the_canary(f, &context.resolvers, &context.policy)
            });
            out.push(Problem::proven(finding).unless(why));
        } else if let Some(e) = &f.error {
            // An AAAA query without an answer is normal: many names have no IPv6 address.
            let no_aaaa = e.failure == Failure::DnsNoAnswer && f.query_type == QueryType::Aaaa;
            if no_aaaa || other_type_answered(f, probe) {
                continue;
            }
            let blocking = match e.failure {
                Failure::DnsNxdomain => Blocking::DnsNxdomain,
                _ => Blocking::DnsFailure,
            };
            let mut evidence = format!(
                "{} {} lookup of {} failed: {}",
                f.resolver,
                f.query_type.as_str(),
                f.hostname,
                e.failure
            );
            if f.tries > 1 {
                evidence.push_str(&format!(" ({} tries)", f.tries));
            }
            let finding = Finding::new(blocking, evidence);
            let problem = Problem::weak(finding, control.map(|c| same_lookup(f, c)));
            let why = cut_short(f).or_else(|| answered_another_copy(f, &context.policy));
            let why = why.or_else(|| {
                let late = answered_late(f, probe, &context.policy);
                explain::lookup(f, e, &context.resolvers, context.deadline, late)
            });
            out.push(problem.unless(why));
        } else if let Some(control) = control {
            let judged = |_: &Problem| !untried && !unused(f, probe);
            if let Some(problem) = inconsistent(f, probe, control, context).filter(judged) {
                out.push(problem.unless(like_the_canary()));
            }
        } else if let Some(finding) = outside_asns(f, probe) {
            out.push(Problem::proven(finding).unless(like_the_canary()));
        }
    }
    out
}

/// Two replies to one copy of the query (one ID: the query goes out again in the
/// listening window, each copy with an ID of its own) with different addresses, both
/// with some, one of them not vouched for by the site itself (see [`site_vouches`]): a
/// resolver answers a copy once, an injector races it. A reply without addresses beside
/// one with is no proof: a resolver that answered a retransmission again (a SERVFAIL,
/// then what it had since cached) gives that too. Nor are two replies the site vouches
/// for each: a relay that asks two resolvers and passes on both answers (a home router
/// asking both of its upstreams) gives those, a CDN having sent each resolver to a node
/// of its own.
fn injection(f: &DnsFacts, probe: &TargetFacts, control: Option<&TargetFacts>) -> Option<Finding> {
    let site = |ours: &BTreeSet<IpAddr>| site_vouches(ours, f, probe, control);
    let (first, other) = f.raced().find(|(a, b)| !(site(a) && site(b)))?;
    let replies = f.replies.iter().filter(|r| r.matches_query).count();
    Some(Finding::new(
        Blocking::DnsInjection,
        format!(
            "{} answered one {} query for {} twice with different addresses: first {}, then {} ({replies} replies in all)",
            f.resolver,
            f.query_type.as_str(),
            f.hostname,
            join(first.iter()),
            join(other.iter())
        ),
    ))
}

/// Where a lookup failed after its resolver answered it over UDP cut short (the TC
/// flag), no whole answer coming over TCP: the resolver answered the name, and what
/// failed is TCP to it, which a home router's forwarder may not serve at all, or a
/// link losing packets. No evidence of the name's blocking.
fn cut_short(f: &DnsFacts) -> Option<String> {
    let matching = || f.replies.iter().filter(|r| r.matches_query);
    let cut = matching().any(|r| r.truncated) && matching().all(|r| r.truncated);
    cut.then(|| {
        format!(
            "{} answered over UDP, but cut short (truncated), and the same query over TCP got no whole answer: the resolver's TCP, not the name",
            f.resolver
        )
    })
}

/// Where a lookup failed with its resolver's own error (SERVFAIL, REFUSED) while the
/// server asked answered another copy of its query, in the listening window, with
/// addresses: a resolver that fails now and then (a pool with one bad member, an
/// overloaded home router) answered the name. A censor that drops the name's queries
/// upstream leaves the resolver nothing to answer with; no address of the answer may be
/// a censor's (a bogon, a known blockpage's).
fn answered_another_copy(f: &DnsFacts, policy: &AddressPolicy) -> Option<String> {
    let e = f.error.as_ref()?;
    if !matches!(e.failure, Failure::DnsServfail | Failure::DnsRefused) {
        return None;
    }
    // Another copy: no error came on the same ID, where an injector racing the
    // resolver's answer with a forged error would put it.
    let erred_on = |id: u16| {
        f.replies
            .iter()
            .any(|o| o.matches_query && o.id == id && Failure::from_rcode(&o.rcode).is_some())
    };
    let answered = |r: &&DnsReply| {
        r.matches_query
            && resolved_by(f, r, policy)
            && !erred_on(r.id)
            && r.addresses().next().is_some()
    };
    let reply = f.replies.iter().find(answered)?;
    Some(format!(
        "{} answered one copy of the query {} and another with {}: a resolver that fails now and then, not the name",
        f.resolver,
        e.failure,
        join(reply.addresses())
    ))
}

/// An answer that is a known blockpage address (even if the control got it too: a
/// censor's poison leaks into resolvers abroad) or a bogon the control did not get (a
/// site whose own record points at 127.0.0.1 is broken for everyone, not censored).
fn forged(f: &DnsFacts, policy: &AddressPolicy, control: Option<&TargetFacts>) -> Option<Finding> {
    let theirs: Vec<IpAddr> = control
        .map(|c| {
            lookups(&c.dns)
                .filter(|c| c.hostname == f.hostname)
                .flat_map(|c| c.all_addresses())
                .collect()
        })
        .unwrap_or_default();
    f.all_addresses().into_iter().find_map(|ip| {
        let why = forged_address(ip, policy, &theirs)?;
        Some(Finding::new(
            Blocking::DnsHijack,
            format!("{} answered {} for {}, {why}", f.resolver, ip, f.hostname),
        ))
    })
}

/// What makes `ip` an answer that cannot be true, if anything: a known blockpage's
/// address, or a bogon that is not among `theirs`, the control's answers.
fn forged_address(ip: IpAddr, policy: &AddressPolicy, theirs: &[IpAddr]) -> Option<String> {
    match fingerprints::dns_blockpage(ip) {
        Some(name) => Some(format!("the address of {name}")),
        None if policy.proves_forgery(ip) && !theirs.contains(&ip) => {
            Some("a bogon (private or reserved) address".into())
        }
        None => None,
    }
}

/// Without a control: an answer whose ASN (from the IP database) is not one of the
/// service's. Not one that gave a valid TLS session for the name: the service's own
/// caches sit in local ISPs' networks (Google's, Meta's), and vouch for themselves.
fn outside_asns(f: &DnsFacts, probe: &TargetFacts) -> Option<Finding> {
    let expected = &probe.target.asns;
    if expected.is_empty() {
        return None;
    }
    let vouched = |a: &crate::facts::DnsAnswer| {
        a.address()
            .is_some_and(|ip| valid_tls(ip, &f.hostname, probe))
    };
    let answer = f
        .replies
        .iter()
        .filter(|r| r.matches_query)
        .flat_map(|r| r.answers.iter())
        .find(|a| a.asn.is_some_and(|asn| !expected.contains(&asn)) && !vouched(a))?;
    Some(Finding::new(
        Blocking::DnsHijack,
        format!(
            "{} answered {} for {}, which is in AS{}, not in the service's networks ({})",
            f.resolver,
            answer.data,
            f.hostname,
            answer.asn.unwrap_or_default(),
            join(expected.iter().map(|a| format!("AS{a}")))
        ),
    ))
}

/// An answer the probe had no use for: none of its addresses did a step try, and the
/// probe reached the target as a user would through the same resolver's answer of the
/// other type (a URL is fetched from its first address, an IPv4 one as a rule). Nothing vouches for such an answer or against
/// it: a CDN's IPv6 node in the probe's ISP, which the control was not sent to, reads
/// inconsistent with no ASN to share. A forged one still shows as a bogon, a known
/// blockpage's address or a raced reply; one the probe tried, by what it met there.
fn unused(f: &DnsFacts, probe: &TargetFacts) -> bool {
    let tried: Vec<IpAddr> = probe
        .measurements
        .iter()
        .flat_map(|m| m.step.addresses())
        .collect();
    let tried_any = |g: &DnsFacts| g.all_addresses().iter().any(|ip| tried.contains(ip));
    // The probe went by this resolver's answers for the name (its other type's): a
    // second resolver's answer, which the probe never went by, is judged as ever.
    let went_by_this_resolver = other_types(f, probe).any(tried_any);
    !f.all_addresses().is_empty()
        && !tried_any(f)
        && went_by_this_resolver
        && super::reached_target(probe)
}

/// The same resolver gave addresses for the other record type, and the probe reached
/// the target: the name resolves there, and works. (An injector that answers only one
/// type, A say, still blocks the users who need it when nothing else got through.)
fn other_type_answered(f: &DnsFacts, probe: &TargetFacts) -> bool {
    super::reached(&probe.measurements) && other_types(f, probe).any(|g| !g.addresses.is_empty())
}

/// The lookups of `f`'s name through the same resolver with another record type.
fn other_types<'a>(f: &'a DnsFacts, probe: &'a TargetFacts) -> impl Iterator<Item = &'a DnsFacts> {
    lookups(&probe.dns).filter(|g| {
        g.resolver == f.resolver && g.hostname == f.hostname && g.query_type != f.query_type
    })
}

/// The lookup of `f`'s name through the same resolver, `f` itself first, that the
/// resolver answered past its deadline (see `DnsFacts::overdue`) as it answers a name it
/// resolved: NOERROR, from the server asked, with no address a censor's. A resolver slow
/// for a name is slow for both its types, where a censor that drops the name's queries
/// drops both. A late failure is no such answer: a resolver answers SERVFAIL once its
/// own queries went unanswered, which a censor dropping them upstream makes happen.
fn answered_late<'a>(
    f: &'a DnsFacts,
    probe: &'a TargetFacts,
    policy: &AddressPolicy,
) -> Option<&'a DnsFacts> {
    let resolved = |g: &DnsFacts| {
        g.overdue
            .as_ref()
            .is_some_and(|reply| resolved_by(g, reply, policy))
    };
    std::iter::once(f)
        .chain(other_types(f, probe))
        .find(|g| resolved(g))
}

/// Whether `reply` is `f`'s resolver answering as it answers a name it resolved:
/// NOERROR, from the server asked, with no address a censor's (a bogon, a known
/// blockpage's).
fn resolved_by(f: &DnsFacts, reply: &DnsReply, policy: &AddressPolicy) -> bool {
    Failure::from_rcode(&reply.rcode).is_none()
        && f.resolver_address.as_deref() == Some(reply.source.as_str())
        && !reply
            .addresses()
            .any(|ip| forged_address(ip, policy, &[]).is_some())
}

/// What the control's lookup of the same name and type gave.
fn same_lookup(f: &DnsFacts, control: &TargetFacts) -> ControlSaw {
    let theirs = their_lookups(f, control);
    if let Some(ok) = theirs.iter().find(|c| c.error.is_none()) {
        return ControlSaw::Success(format!(
            "the control resolved it to {}",
            join(ok.addresses.iter())
        ));
    }
    let Some((c, e)) = theirs.iter().find_map(|c| Some((c, c.error.as_ref()?))) else {
        return ControlSaw::NotMeasured("the control did not look it up".into());
    };
    ControlSaw::failed(
        Some(e),
        c.check.as_ref(),
        format!("the control's lookup failed too ({})", e.failure),
    )
}

/// An answer consistent with nothing the control knows.
fn inconsistent(
    f: &DnsFacts,
    probe: &TargetFacts,
    control: &TargetFacts,
    context: &Context,
) -> Option<Problem> {
    let ours = f.all_addresses();
    let theirs = their_lookups(f, control);
    let their_addresses: Vec<IpAddr> = theirs.iter().flat_map(|c| c.all_addresses()).collect();
    let our_asns = asns(f.replies.iter());
    // OONI's consistency: the site itself vouches for an address, or one is among the
    // control's answers of the same type, or shares an ASN with those or with the
    // service's networks.
    let consistent = site_vouches(&ours.iter().copied().collect(), f, probe, Some(control))
        || ours.iter().any(|ip| their_addresses.contains(ip))
        || !our_asns.is_disjoint(&asns(theirs.iter().flat_map(|c| &c.replies)))
        || our_asns.iter().any(|asn| probe.target.asns.contains(asn));
    if consistent {
        return None;
    }
    let finding = Finding::new(
        Blocking::DnsHijack,
        format!(
            "{} answered {} for {}, consistent with neither the control's answers ({}), their networks, a valid certificate, nor the control's page",
            f.resolver,
            join(ours.iter()),
            f.hostname,
            if their_addresses.is_empty() {
                "none".into()
            } else {
                join(their_addresses.iter())
            }
        ),
    );
    let untested = untested(&ours, probe, context);
    let nxdomain = theirs.iter().any(|c| {
        c.error
            .as_ref()
            .is_some_and(|e| e.failure == Failure::DnsNxdomain)
    });
    let problem = match (their_addresses.is_empty(), nxdomain) {
        (false, _) => Problem::weak(
            finding,
            Some(ControlSaw::Success("the control resolved it".into())),
        ),
        // An address for a name that does not exist: a censor's answer for a name that
        // is gone (a ghost of a blocked site), or a resolver that redirects every name
        // that does not exist; a sign either way, never proof.
        (true, true) => Problem::strong(
            finding,
            Some(ControlSaw::NotMeasured(format!(
                "the control's resolver says {} does not exist (NXDOMAIN): a censor's answer for a name that is gone, or a resolver that redirects names that do not exist",
                f.hostname
            ))),
        ),
        (true, false) => Problem::weak(
            finding,
            Some(ControlSaw::NotMeasured(
                "the control could not resolve it to compare".into(),
            )),
        ),
    };
    Some(problem.unless(untested))
}

/// The control's lookups of `f`'s name and record type.
fn their_lookups<'a>(f: &DnsFacts, control: &'a TargetFacts) -> Vec<&'a DnsFacts> {
    lookups(&control.dns)
        .filter(|c| c.hostname == f.hostname && c.query_type == f.query_type)
        .collect()
}

/// Whether the site itself vouches for `ours`, addresses the lookup `f` gave: one of
/// them completed a TLS handshake valid for the name (from either side), or served the
/// probe the control's page. Neither a shared network nor the control's own answer
/// will do for an injection: a censor's forged address may lie in a large cloud's or
/// CDN's network, and its poison leaks into resolvers abroad.
fn site_vouches(
    ours: &BTreeSet<IpAddr>,
    f: &DnsFacts,
    probe: &TargetFacts,
    control: Option<&TargetFacts>,
) -> bool {
    let by_tls = |facts: &TargetFacts| ours.iter().any(|ip| valid_tls(*ip, &f.hostname, facts));
    let by_page = |control: &TargetFacts| {
        ours.iter()
            .any(|ip| http::same_page_from(*ip, probe, control))
    };
    by_tls(probe) || control.is_some_and(|c| by_tls(c) || by_page(c))
}

/// The ASNs of the addresses in `replies` that answer the query.
fn asns<'a>(replies: impl Iterator<Item = &'a DnsReply>) -> BTreeSet<u32> {
    replies
        .filter(|r| r.matches_query)
        .flat_map(|r| r.answers.iter().filter_map(|a| a.asn))
        .filter(|asn| *asn != 0)
        .collect()
}

/// Why the probe could not put an answer to the test (a certificate, a page): it got
/// no TLS or HTTP answer from any of `ours` (an interceptor of its own network answering
/// in their place, as it did the canary's), and what failed there its own network
/// explains (see `explain::step`, `explain::like_the_canary`). Such an answer says
/// nothing either way: a censor's, or a CDN's node the control was not sent to. A
/// failure its network does not explain stands: a censor's answer may lead nowhere.
fn untested(ours: &[IpAddr], probe: &TargetFacts, context: &Context) -> Option<String> {
    let mut why = None;
    // A handshake shown the certificate of the canary's interceptor met the probe's own
    // network, not the server at the address.
    let intercepted =
        |t: &TlsFacts| explain::intercepted_like_the_canary(t, context.canary_intercepted.as_ref());
    for m in &probe.measurements {
        // Each try at an address: whether the server answered at TLS or HTTP (which
        // would have vouched for it or not), what failed otherwise, and whether an
        // interceptor answered in its place.
        type Try<'a> = (
            SocketAddr,
            bool,
            Option<&'a StepError>,
            Option<&'a Check>,
            Option<String>,
        );
        let tried: Vec<Try> = match &m.step {
            Step::TcpConnect(t) => {
                vec![(t.address, false, t.error.as_ref(), t.check.as_ref(), None)]
            }
            Step::TlsHandshake(t) if !t.control_sni => {
                vec![(
                    t.address,
                    t.server_answered(),
                    t.error.as_ref(),
                    t.check.as_ref(),
                    intercepted(t),
                )]
            }
            Step::Http(h) => h
                .hops
                .iter()
                .filter_map(|hop| {
                    let tls = hop.tls.as_ref();
                    let answered =
                        hop.status.is_some() || tls.is_some_and(TlsFacts::server_answered);
                    let e = hop.error.as_ref().or(tls.and_then(|t| t.error.as_ref()));
                    let instead = tls.and_then(intercepted);
                    Some((hop.address?, answered, e, h.check.as_ref(), instead))
                })
                .collect(),
            _ => Vec::new(),
        };
        for (address, answered, e, check, instead) in tried {
            if !ours.contains(&address.ip()) {
                continue;
            }
            if let Some(instead) = instead {
                why = why.or(Some(instead));
                continue;
            }
            if answered {
                return None;
            }
            // A connect that went through vouches for nothing either way.
            let Some(e) = e else { continue };
            let what = format!("the connection to {address}");
            let found = explain::step(&what, e, check)
                .or_else(|| explain::like_the_canary(&what, address, e, &context.canary_failed));
            match found {
                Some(found) => why = why.or(Some(found)),
                None => return None,
            }
        }
    }
    why.map(|why| format!("the probe could not try the answer: {why}"))
}

/// True when `ip` completed a TLS handshake with a certificate that vouches for `name`
/// (see [`TlsFacts::vouches_for_name`]). The handshake of a URL's fetch counts as much as
/// a domain's own handshakes.
fn valid_tls(ip: IpAddr, name: &str, facts: &TargetFacts) -> bool {
    facts
        .tcp_tls()
        .any(|t| t.address.ip() == ip && t.server_name == name && t.vouches_for_name())
}

fn join<T: ToString>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{FB, FB_443, domain, facts, lookup as answered, tls};
    use super::*;
    use crate::facts::DnsAnswer;
    use crate::facts::failure::Operation;

    fn reply(id: u16, rcode: &str, addresses: &[&str]) -> DnsReply {
        DnsReply {
            source: "192.0.2.53:53".into(),
            arrival_ms: 1.0,
            id,
            matches_query: true,
            rcode: rcode.into(),
            answers: addresses
                .iter()
                .map(|a| DnsAnswer {
                    answer_type: "A".into(),
                    data: a.to_string(),
                    ttl: 60,
                    asn: None,
                })
                .collect(),
            truncated: false,
        }
    }

    fn lookup(replies: Vec<DnsReply>) -> DnsFacts {
        DnsFacts {
            resolver: "system".into(),
            resolver_address: None,
            hostname: "facebook.com".into(),
            query_type: QueryType::A,
            replies,
            dropped_replies: 0,
            sent: 5,
            addresses: Vec::new(),
            tries: 1,
            check: None,
            overdue: None,
            error: None,
        }
    }

    #[test]
    fn only_two_answers_to_one_copy_of_the_query_are_an_injection() {
        let probe = facts(&domain(&[]), vec![], vec![]);
        let injection = |f: &DnsFacts| injection(f, &probe, None);
        let raced = lookup(vec![
            reply(7, "NoError", &["198.51.100.1"]),
            reply(7, "NoError", &["157.240.1.35"]),
        ]);
        let finding = injection(&raced).expect("an injection");
        assert!(
            finding
                .evidence
                .contains("first 198.51.100.1, then 157.240.1.35")
        );
        // Copies sent again in the listening window have IDs of their own: a resolver
        // whose answer changed between them (a round-robin subset) injects nothing.
        let copies = lookup(vec![
            reply(7, "NoError", &["157.240.1.35"]),
            reply(8, "NoError", &["157.240.1.36"]),
        ]);
        assert_eq!(injection(&copies), None);
        // A SERVFAIL, then the answer to a retransmission of the same copy.
        let retried = lookup(vec![
            reply(7, "ServFail", &[]),
            reply(7, "NoError", &["157.240.1.35"]),
        ]);
        assert_eq!(injection(&retried), None);
        // A reply cut short holds a part of the whole one: no race between them, but
        // one with an address of nobody's before it races it.
        let cut = || DnsReply {
            truncated: true,
            ..reply(7, "NoError", &["157.240.1.35"])
        };
        let whole = reply(7, "NoError", &["157.240.1.35", "157.240.1.36"]);
        assert_eq!(injection(&lookup(vec![cut(), whole])), None);
        let forged = reply(7, "NoError", &["198.51.100.1"]);
        assert!(injection(&lookup(vec![forged, cut()])).is_some());
    }

    /// A lookup answered over UDP cut short, whose TCP exchange failed (a forwarder that
    /// serves no TCP), is no evidence of a block, even where the control resolved it.
    #[test]
    fn a_truncated_answer_without_its_whole_is_no_failure_of_the_name() {
        let mut m = answered(&[]);
        if let Step::Dns(d) = &mut m.step {
            d.replies[0].truncated = true;
            d.error = Some(StepError::new(
                Operation::Resolve,
                Failure::ConnectionRefused,
            ));
        }
        let target = domain(&[]);
        let probe = facts(&target, vec![m], vec![]);
        let control = facts(&target, vec![answered(&[(FB, None)])], vec![]);
        let found = problems(&probe, Some(&control), &Context::default());
        assert_eq!(found.len(), 1, "{found:?}");
        let why = found[0].explained.as_deref().unwrap_or_default();
        assert!(why.contains("cut short"), "{found:?}");
    }

    /// Two IPv6 answers to one AAAA query, where the probe's IPv6 reaches nothing: the
    /// site can vouch for neither, and no user there takes either; with IPv6 working,
    /// an answer of nobody's is an injection as over IPv4.
    #[test]
    fn raced_ipv6_answers_the_probe_cannot_try_are_no_injection() {
        let mut m = answered(&[]);
        if let Step::Dns(d) = &mut m.step {
            d.query_type = QueryType::Aaaa;
            d.replies = ["2a03:2880:f10c:83::25", "2a03:2880:f10c:83::26"]
                .iter()
                .map(|ip| {
                    let mut r = reply(1, "NoError", &[]);
                    r.answers.push(DnsAnswer {
                        answer_type: "AAAA".into(),
                        data: ip.to_string(),
                        ttl: 60,
                        asn: None,
                    });
                    r
                })
                .collect();
        }
        let probe = facts(&domain(&[]), vec![m], vec![]);
        let mut context = Context::default();
        assert!(problems(&probe, None, &context).is_empty());
        context.ipv6 = true;
        let found = problems(&probe, None, &context);
        assert_eq!(
            found[0].finding.blocking,
            Blocking::DnsInjection,
            "{found:?}"
        );
    }

    /// A resolver that fails now and then: one copy of the query answered SERVFAIL,
    /// another, in the listening window, the name's address.
    #[test]
    fn a_failure_the_resolver_answered_otherwise_is_no_evidence() {
        let failed = |second: DnsReply| {
            let mut m = answered(&[]);
            if let Step::Dns(d) = &mut m.step {
                d.resolver_address = Some("192.0.2.53:53".into());
                d.replies = vec![reply(1, "ServFail", &[]), second];
                d.error = Some(StepError::new(Operation::Resolve, Failure::DnsServfail));
                d.check = Some(super::super::fixtures::check(None));
            }
            m
        };
        let target = domain(&[]);
        let control = facts(&target, vec![answered(&[(FB, None)])], vec![]);
        let judged = |second| {
            let probe = facts(&target, vec![failed(second)], vec![]);
            let found = problems(&probe, Some(&control), &Context::default());
            assert_eq!(found.len(), 1, "{found:?}");
            found[0].explained.clone()
        };
        let why = judged(reply(2, "NoError", &[FB])).expect("explained");
        assert!(why.contains("fails now and then"), "{why}");
        // Every copy failed, or the other answer is a bogon: the failure stands.
        assert_eq!(judged(reply(2, "ServFail", &[])), None);
        assert_eq!(judged(reply(2, "NoError", &["10.0.0.1"])), None);
        // The answer and the error to one copy: an injector's forged error racing the
        // resolver's answer, which stands.
        assert_eq!(judged(reply(1, "NoError", &[FB])), None);
    }

    /// A URL is fetched from its first address: the IPv6 answer of a CDN that sends the
    /// probe and the control to nodes of their own goes untried, and says nothing where
    /// the page came (with no ASN to compare). Tried, and it stands.
    #[test]
    fn an_answer_the_probe_had_no_use_for_is_no_inconsistency() {
        use super::super::fixtures::{fetch, over_valid_tls, url};
        let aaaa = |ip: &str| {
            let mut m = answered(&[]);
            if let Step::Dns(d) = &mut m.step {
                d.query_type = QueryType::Aaaa;
                d.addresses = vec![ip.parse().unwrap()];
                d.replies[0].answers.push(DnsAnswer {
                    answer_type: "AAAA".into(),
                    data: ip.into(),
                    ttl: 60,
                    asn: None,
                });
            }
            m
        };
        let lookups = |node: &str| vec![answered(&[(FB, None)]), aaaa(node)];
        let page = || over_valid_tls(fetch(200, 4_000, "Facebook", 40.0, None));
        let control = facts(&url(), lookups("2a03:2880::1"), vec![page()]);
        let context = Context {
            ipv6: true,
            ..Context::default()
        };
        let probe = facts(&url(), lookups("2a03:2880:f0::1"), vec![page()]);
        assert!(problems(&probe, Some(&control), &context).is_empty());
        // A second resolver's answer, which the probe did not go by: judged as ever.
        let mut second = answered(&[("203.0.113.9", None)]);
        if let Step::Dns(d) = &mut second.step {
            d.resolver = "udp://192.0.2.8:53".into();
        }
        let mut ours = lookups("2a03:2880::1");
        ours.push(second);
        let probe = facts(&url(), ours, vec![page()]);
        let found = problems(&probe, Some(&control), &context);
        assert!(
            found.iter().any(|p| p
                .finding
                .evidence
                .starts_with("udp://192.0.2.8:53 answered")),
            "{found:?}"
        );
        // The probe's fetch went to that address, and failed: the answer is judged.
        let mut there = fetch(0, 0, "", 0.0, Some(StepError::timeout(Operation::Connect)));
        if let Step::Http(h) = &mut there.step {
            h.hops[0].address = Some("[2a03:2880:f0::1]:443".parse().unwrap());
        }
        let probe = facts(&url(), lookups("2a03:2880:f0::1"), vec![there]);
        let found = problems(&probe, Some(&control), &context);
        assert!(
            found
                .iter()
                .any(|p| p.finding.blocking == Blocking::DnsHijack),
            "{found:?}"
        );
    }

    /// A relay that asks two resolvers and passes on both answers, each the site's own
    /// (a CDN's node for each), injects nothing; where one answer is vouched for by
    /// nothing, the two are an injection, as without the control.
    #[test]
    fn two_answers_the_site_vouches_for_are_a_relays_not_an_injection() {
        let other_node = "157.240.2.2";
        let target = domain(&[]);
        let twice = |second: &str| {
            let mut m = answered(&[(FB, None)]);
            if let Step::Dns(d) = &mut m.step {
                let mut again = d.replies[0].clone();
                again.answers[0].data = second.into();
                d.replies.push(again);
            }
            m
        };
        // The control's lookup gave `control_node`, and its handshake there was valid.
        let judged = |second: &str, control_node: &str| {
            let probe = facts(&target, vec![twice(second)], vec![tls(FB_443, false, None)]);
            let theirs = tls(&format!("{control_node}:443"), false, None);
            let control = facts(
                &target,
                vec![answered(&[(control_node, None)])],
                vec![theirs],
            );
            let Step::Dns(f) = &probe.dns[0].step else {
                unreachable!()
            };
            (
                injection(f, &probe, Some(&control)),
                injection(f, &probe, None),
            )
        };
        // The probe's node gave a valid handshake, and the control's the other.
        let (with_control, alone) = judged(other_node, other_node);
        assert_eq!(with_control, None);
        // Without the control, nothing vouches for the other node.
        let alone = alone.expect("an injection without the control");
        assert!(
            alone
                .evidence
                .contains("first 157.240.1.35, then 157.240.2.2")
        );
        // An answer of nobody's beside the site's: an injector's.
        let (with_control, _) = judged("198.51.100.1", other_node);
        assert_eq!(
            with_control.map(|f| f.blocking),
            Some(Blocking::DnsInjection)
        );
        // The control's resolver given the forged answer too (a censor's poison leaks
        // abroad), its handshake at the site's: the forged answer is still nobody's.
        let leaked = {
            let probe = facts(
                &target,
                vec![twice("198.51.100.1")],
                vec![tls(FB_443, false, None)],
            );
            let control = facts(
                &target,
                vec![answered(&[("198.51.100.1", None), (FB, None)])],
                vec![tls(FB_443, false, None)],
            );
            let Step::Dns(f) = &probe.dns[0].step else {
                unreachable!()
            };
            injection(f, &probe, Some(&control))
        };
        assert_eq!(leaked.map(|f| f.blocking), Some(Blocking::DnsInjection));
    }
}
