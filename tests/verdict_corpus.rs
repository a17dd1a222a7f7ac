//! The verdict corpus: one table of cases, facts → verdict, each written as a run
//! directory (run.json and measurements.jsonl, by the crate's writer) and judged by
//! `censorprobe analyse` (`cmd::offline::analyse`), its row of verdicts.analysed.csv
//! asserted. Every blocking kind fires at least once (`Blocking::rule` says where each
//! is decided), and the probe's own faults, the control's, and outages never come out
//! `blocked`.
//!
//! Each run holds the canary (its lookup and connect say what the probe's network is
//! like, as in a real run) and the case's target, and the target's neighbour when the
//! case needs another target's trigger.

use std::path::Path;

use censorprobe::analyse::fixtures::*;
use censorprobe::analyse::{Blocking as B, Verdict as V};
use censorprobe::cmd::offline;
use censorprobe::facts::failure::{Failure, Operation, StepError};
use censorprobe::facts::{
    Burst, EchOffer, Hello, Meanwhile, Measurement, QueryType, Reply, Step, Vantage,
};
use censorprobe::input::targets::{CANARY_SERVICE, Target, TargetKind};
use censorprobe::rundir::rows::VerdictRow;
use censorprobe::rundir::writer::ResultsWriter;
use censorprobe::rundir::{RunInfo, RunSettings};

/// What the canary found of the probe's network.
enum Network {
    /// Its resolver answered, its address took a connect.
    Up,
    /// The same, and it was reached over IPv6 too.
    Ipv6,
    /// The same, and its QUIC handshake was answered.
    Quic,
    /// Its resolver failed the canary's lookup so.
    ResolverFailed(Failure),
    /// Its address took no connect.
    Down,
}

/// What the control said of the target.
enum Control {
    /// A run without a control.
    None,
    /// A run with a control that recorded nothing for the target.
    Unavailable,
    Measured(Vec<Measurement>),
}

use Control::{Measured, Unavailable};

/// A row of the table: one target's facts, and the verdict `analyse` must give them.
struct Case {
    name: &'static str,
    target: Target,
    probe: Vec<Measurement>,
    control: Control,
    verdict: V,
    blocking: Option<B>,
    /// Said in the evidence ("" for nothing in particular).
    evidence: &'static str,
    network: Network,
    /// The neighbour's measurements, when the case has one.
    neighbour: Vec<Measurement>,
}

fn case(
    name: &'static str,
    target: Target,
    probe: Vec<Measurement>,
    control: Control,
    verdict: V,
    blocking: Option<B>,
) -> Case {
    Case {
        name,
        target,
        probe,
        control,
        verdict,
        blocking,
        evidence: "",
        network: Network::Up,
        neighbour: Vec::new(),
    }
}

impl Case {
    fn saying(self, evidence: &'static str) -> Case {
        Case { evidence, ..self }
    }

    fn on(self, network: Network) -> Case {
        Case { network, ..self }
    }

    fn after(self, neighbour: Vec<Measurement>) -> Case {
        Case { neighbour, ..self }
    }
}

/// The table, by the layer that decides, then the cases that must not be `blocked`.
fn cases() -> Vec<Case> {
    let dns = || vec![lookup(&[(FB, None)])];
    let with = |rest: Vec<Measurement>| [dns(), rest].concat();
    let connected = || with(vec![tcp(FB_443, None)]);
    let reachable = || {
        vec![
            tcp(FB_443, None),
            tls(FB_443, true, None),
            tls(FB_443, false, None),
        ]
    };
    let handshakes = || with(reachable());
    let sni = |failure| {
        with(vec![
            tcp(FB_443, None),
            tls(FB_443, true, None),
            tls(FB_443, false, Some(failure)),
        ])
    };
    // The default ClientHello reset with both names; other ClientHellos as `tries`.
    let fingerprinted = |failure: Failure, tries: &[(Hello, bool, Option<Failure>)]| {
        with(vec![
            tcp(FB_443, None),
            tls(FB_443, true, Some(failure.clone())),
            hellos(tls(FB_443, false, Some(failure.clone())), tries),
            at(tls(FB_443, true, Some(failure)), 1),
        ])
    };
    let reset = || Some(Failure::ConnectionReset);
    let only_alternate = [
        (Hello::Split, false, reset()),
        (Hello::Padded, false, reset()),
        (Hello::Alternate, false, None),
        (Hello::Split, true, reset()),
        (Hello::Padded, true, reset()),
        (Hello::Alternate, true, None),
    ];
    // The target's name failed with `default`, the control's passed; the split
    // ClientHello ended as `split`, the padded and alternate ones as `others`.
    let sni_with = |default: Failure, split: Option<Failure>, others: Option<Failure>| {
        let tries = [
            (Hello::Split, false, split),
            (Hello::Padded, false, others.clone()),
            (Hello::Alternate, false, others),
        ];
        with(vec![
            tcp(FB_443, None),
            tls(FB_443, true, None),
            hellos(tls(FB_443, false, Some(default)), &tries),
        ])
    };
    let timeout = || Some(Failure::GenericTimeout);
    // The target's name silent at `tries` tries, the control's passed, while a pulse of
    // the link during its last try lost 2 of its 6 connects.
    let stalled_losing = |tries: u32| {
        let before = tls(FB_443, true, None);
        let mut stall = checked(tls(FB_443, false, timeout()), None);
        if let Step::TlsHandshake(t) = &mut stall.step {
            t.tries = tries;
            t.check.as_mut().expect("checked").during = Some(Burst {
                made: 6,
                answered: 4,
            });
        }
        with(vec![tcp(FB_443, None), before, stall])
    };
    // TCP+TLS to the address answered, then QUIC handshakes; a control whose QUIC with
    // the name went through.
    let then_quic = |quic: Vec<Measurement>| with([reachable(), quic].concat());
    let quic_answered = || Measured(then_quic(vec![quic(FB_443, false, None, 6)]));
    // Every handshake timed out with both names, and the canary after: the probe's own
    // link; the alternate ClientHello with both names then ended as `alternate`.
    let lost = |alternate: Option<Failure>| {
        let tries = [
            (Hello::Alternate, false, alternate.clone()),
            (Hello::Alternate, true, alternate),
        ];
        with(vec![
            tcp(FB_443, None),
            tls(FB_443, true, timeout()),
            checked(hellos(tls(FB_443, false, timeout()), &tries), timeout()),
        ])
    };
    let page = |status, body, title| fetch(status, body, title, 5.0, None);
    // A URL fetched over TLS, then a QUIC handshake to its address: dark, or answered.
    let fetched_then = |quic_handshake| {
        with(vec![
            over_valid_tls(page(200, 9000, "Facebook - log in")),
            quic_handshake,
        ])
    };
    let quic_dark = || fetched_then(quic(FB_443, true, timeout(), 0));
    let quic_answered_there = || fetched_then(quic(FB_443, false, None, 6));
    let fb_page = || with(vec![page(200, 9000, "Facebook - log in")]);
    let video = || with(vec![fetch(200, 400_000, "Video", 400.0, None)]);
    let slow = || fetch(200, 400_000, "Video", 20_000.0, None);
    let failed_fetch =
        |operation, failure| fetch(0, 0, "", 0.0, Some(StepError::new(operation, failure)));
    let nowhere = || vec![lookup(&[("93.184.216.34", Some(15133))])];
    let challenged = || {
        let mut m = fetch(403, 7000, "Just a moment...", 5.0, None);
        challenge(&mut m);
        m
    };
    let six = "[2a03:2880::1]:443";
    let grease = |failure: Option<Failure>| (EchOffer::Grease, failure);
    let plain = |failure: Option<Failure>| (EchOffer::None, failure);
    let stalled_twice = || {
        [
            plain(None),
            grease(timeout()),
            grease(timeout()),
            plain(None),
        ]
    };
    let with_ech = |handshakes: &[(EchOffer, Option<Failure>)]| {
        with([reachable(), vec![ech(FB_443, handshakes)]].concat())
    };
    let ech_passes = || with_ech(&[grease(None), plain(None)]);
    vec![
        // DNS
        case(
            "a known blockpage address, the control's too",
            domain(&[]),
            vec![lookup(&[("10.10.34.34", None)])],
            Measured(vec![lookup(&[("10.10.34.34", None)])]),
            V::Blocked,
            Some(B::DnsHijack),
        ),
        case(
            "a bogon the control did not get",
            domain(&[]),
            vec![lookup(&[("127.0.0.1", None)])],
            Measured(dns()),
            V::Blocked,
            Some(B::DnsHijack),
        ),
        case(
            "an answer consistent with nothing the control knows",
            domain(&[]),
            nowhere(),
            Measured(vec![lookup(&[(FB, Some(32934))])]),
            V::Blocked,
            Some(B::DnsHijack),
        ),
        case(
            "an answer outside the service's networks, no control",
            domain(&[32934]),
            nowhere(),
            Control::None,
            V::Anomaly,
            Some(B::DnsHijack),
        )
        .saying("AS15133"),
        case(
            "NXDOMAIN where the control resolved",
            domain(&[]),
            vec![failed_lookup(Failure::DnsNxdomain)],
            Measured(dns()),
            V::Blocked,
            Some(B::DnsNxdomain),
        ),
        case(
            "SERVFAIL where the control resolved",
            domain(&[]),
            vec![failed_lookup(Failure::DnsServfail)],
            Measured(dns()),
            V::Blocked,
            Some(B::DnsFailure),
        ),
        case(
            "silence from a resolver that answers the canary",
            domain(&[]),
            vec![failed_lookup(Failure::GenericTimeout)],
            Measured(dns()),
            V::Blocked,
            Some(B::DnsFailure),
        ),
        case(
            "two answers to one query",
            domain(&[]),
            vec![injected(FB, "93.184.216.34")],
            Measured(dns()),
            V::Blocked,
            Some(B::DnsInjection),
        )
        .saying("twice with different addresses"),
        case(
            "two answers to one query, no control",
            domain(&[]),
            vec![injected(FB, "93.184.216.34")],
            Control::None,
            V::Anomaly,
            Some(B::DnsInjection),
        ),
        case(
            "a known blockpage address, the control unavailable",
            domain(&[]),
            vec![lookup(&[("10.10.34.34", None)])],
            Unavailable,
            V::Anomaly,
            Some(B::DnsHijack),
        ),
        case(
            "an address for a name the control says does not exist",
            domain(&[]),
            nowhere(),
            Measured(vec![failed_lookup(Failure::DnsNxdomain)]),
            V::Anomaly,
            Some(B::DnsHijack),
        ),
        // TCP
        case(
            "a blackhole where the control connected",
            domain(&[]),
            with(vec![timed_out_connect()]),
            Measured(connected()),
            V::Blocked,
            Some(B::TcpBlackhole),
        ),
        case(
            "a blackhole, the canary answering right after",
            domain(&[]),
            with(vec![checked(timed_out_connect(), None)]),
            Measured(connected()),
            V::Blocked,
            Some(B::TcpBlackhole),
        ),
        case(
            "an IPv4 address unreachable, no control",
            domain(&[]),
            with(vec![tcp(FB_443, Some(Failure::NetworkUnreachable))]),
            Control::None,
            V::Anomaly,
            Some(B::TcpBlackhole),
        ),
        case(
            "an IPv6 address unanswered where the probe's IPv6 works",
            domain(&[]),
            with(vec![
                tcp(FB_443, None),
                tcp(six, Some(Failure::GenericTimeout)),
            ]),
            Measured(with(vec![tcp(FB_443, None), tcp(six, None)])),
            V::Blocked,
            Some(B::TcpBlackhole),
        )
        .on(Network::Ipv6),
        case(
            "a reset connect",
            domain(&[]),
            with(vec![tcp(FB_443, Some(Failure::ConnectionReset))]),
            Measured(connected()),
            V::Blocked,
            Some(B::TcpReset),
        ),
        case(
            "a refused connect",
            domain(&[]),
            with(vec![tcp(FB_443, Some(Failure::ConnectionRefused))]),
            Measured(connected()),
            V::Blocked,
            Some(B::TcpRefused),
        ),
        case(
            "a fetch's connect unanswered where the control fetched",
            url(),
            with(vec![failed_fetch(
                Operation::Connect,
                Failure::GenericTimeout,
            )]),
            Measured(fb_page()),
            V::Blocked,
            Some(B::TcpBlackhole),
        ),
        case(
            "dark after non-TLS first bytes where the control connected again",
            endpoint(),
            vec![dark_after_first_bytes()],
            Measured(vec![first_bytes(DC_443, Reply::Closed, None)]),
            V::Blocked,
            Some(B::ProtocolFiltered),
        )
        .saying("neither TLS nor HTTP"),
        case(
            "dark after non-TLS first bytes, no control",
            endpoint(),
            vec![dark_after_first_bytes()],
            Control::None,
            V::Anomaly,
            Some(B::ProtocolFiltered),
        ),
        // TLS
        case(
            "SNI reset where the control's handshake worked",
            domain(&[]),
            sni(Failure::ConnectionReset),
            Measured(handshakes()),
            V::Blocked,
            Some(B::TlsReset),
        ),
        case(
            "SNI reset, no control",
            domain(&[]),
            sni(Failure::ConnectionReset),
            Control::None,
            V::Anomaly,
            Some(B::TlsReset),
        )
        .saying("example.com"),
        case(
            "SNI reset, the control unavailable",
            domain(&[]),
            sni(Failure::ConnectionReset),
            Unavailable,
            V::Anomaly,
            Some(B::TlsReset),
        ),
        case(
            "SNI stall where the control's handshake worked",
            domain(&[]),
            sni(Failure::GenericTimeout),
            Measured(handshakes()),
            V::Blocked,
            Some(B::TlsTimeout),
        ),
        case(
            "SNI stall at four tries on a link losing packets",
            domain(&[]),
            stalled_losing(Meanwhile::LOSSY_SILENT_TRIES),
            Measured(handshakes()),
            V::Blocked,
            Some(B::TlsTimeout),
        ),
        case(
            "SNI stall, no control",
            domain(&[]),
            sni(Failure::GenericTimeout),
            Control::None,
            V::Anomaly,
            Some(B::TlsTimeout),
        ),
        case(
            "a certificate not valid for the name",
            domain(&[]),
            with(vec![tcp(FB_443, None), mitm(FB_443)]),
            Measured(handshakes()),
            V::Blocked,
            Some(B::TlsMitm),
        ),
        case(
            "a reset the control name met too, no control",
            domain(&[]),
            with(vec![
                tcp(FB_443, None),
                tls(FB_443, true, Some(Failure::ConnectionReset)),
                tls(FB_443, false, Some(Failure::ConnectionReset)),
            ]),
            Control::None,
            V::Anomaly,
            Some(B::TlsFailure),
        ),
        case(
            "SNI reset, a split ClientHello passed",
            domain(&[]),
            sni_with(Failure::ConnectionReset, None, reset()),
            Measured(handshakes()),
            V::Blocked,
            Some(B::TlsReset),
        )
        .saying("a split ClientHello passed: stateless DPI"),
        case(
            "SNI unanswered, the other ClientHellos with the name reset: its resets were lost",
            domain(&[]),
            sni_with(Failure::GenericTimeout, None, reset()),
            Measured(handshakes()),
            V::Blocked,
            Some(B::TlsReset),
        )
        .saying("the padded and alternate ClientHellos with the name were reset"),
        case(
            "SNI unanswered, the other ClientHellos with the name too",
            domain(&[]),
            sni_with(Failure::GenericTimeout, None, timeout()),
            Measured(handshakes()),
            V::Blocked,
            Some(B::TlsTimeout),
        ),
        case(
            "SNI unanswered, one other ClientHello with the name reset, one unanswered",
            domain(&[]),
            with(vec![
                tcp(FB_443, None),
                tls(FB_443, true, None),
                hellos(
                    tls(FB_443, false, timeout()),
                    &[
                        (Hello::Padded, false, reset()),
                        (Hello::Alternate, false, timeout()),
                    ],
                ),
            ]),
            Measured(handshakes()),
            V::Blocked,
            Some(B::TlsTimeout),
        ),
        case(
            "SNI reset, no other ClientHello passed",
            domain(&[]),
            sni_with(Failure::ConnectionReset, reset(), reset()),
            Measured(handshakes()),
            V::Blocked,
            Some(B::TlsReset),
        )
        .saying("stateful DPI (reassembles)"),
        case(
            "SNI reset, a split ClientHello lost once and passed when made again",
            domain(&[]),
            with(vec![
                tcp(FB_443, None),
                tls(FB_443, true, None),
                hellos(
                    tls(FB_443, false, reset()),
                    &[
                        (Hello::Split, false, timeout()),
                        (Hello::Split, false, None),
                        (Hello::Padded, false, reset()),
                        (Hello::Alternate, false, reset()),
                    ],
                ),
            ]),
            Measured(handshakes()),
            V::Blocked,
            Some(B::TlsReset),
        )
        .saying("a split ClientHello passed: stateless DPI (passed: split)"),
        case(
            "the probe's ClientHello reset with any name, another passed with both",
            domain(&[]),
            fingerprinted(Failure::ConnectionReset, &only_alternate),
            Measured(handshakes()),
            V::Anomaly,
            Some(B::TlsFingerprint),
        )
        .saying("the alternate ClientHello passed with both: what is blocked is the probe's own TLS fingerprint, not facebook.com"),
        case(
            "the probe's ClientHello reset with any name, another passed with both, no control",
            domain(&[]),
            fingerprinted(Failure::ConnectionReset, &only_alternate),
            Control::None,
            V::Anomaly,
            Some(B::TlsFingerprint),
        ),
        case(
            "a body frozen after 12 kB, its control-SNI twins too: by address",
            url(),
            with(vec![
                frozen(12_000),
                stopped_after(twin(0, 0.0), 11_900),
                stopped_after(twin(0, 0.0), 11_900),
            ]),
            Measured(video()),
            V::Blocked,
            Some(B::TlsStall),
        )
        .saying("stopped dead after 12000 bytes"),
        case(
            "a round trip frozen before its head after 14 kB of TLS records, its twins too",
            url(),
            with(vec![
                head_frozen(fetch(0, 0, "", 0.0, None), 14_000, 9_900.0),
                head_frozen(twin(0, 0.0), 13_900, 9_900.0),
                head_frozen(twin(0, 0.0), 13_900, 9_900.0),
            ]),
            Measured(video()),
            V::Blocked,
            Some(B::TlsStall),
        )
        .saying("14000 bytes on the connection after the TLS handshake, no response head"),
        case(
            "a fetch reset in its handshake after the control SNI worked",
            url(),
            with(vec![
                tls(FB_443, true, None),
                failed_fetch(Operation::TlsHandshake, Failure::ConnectionReset),
            ]),
            Measured(fb_page()),
            V::Blocked,
            Some(B::TlsReset),
        ),
        case(
            "a fetch reset in its handshake, the control SNI reset too",
            url(),
            with(vec![
                tls(FB_443, true, Some(Failure::ConnectionReset)),
                failed_fetch(Operation::TlsHandshake, Failure::ConnectionReset),
            ]),
            Measured(fb_page()),
            V::Blocked,
            Some(B::TlsFailure),
        ),
        case(
            "a bad certificate the control did not try",
            domain(&[]),
            with(vec![tcp(FB_443, None), mitm(FB_443)]),
            Measured(dns()),
            V::Anomaly,
            Some(B::TlsMitm),
        ),
        case(
            "handshakes offering ECH stalled, the same without it went through",
            domain(&[]),
            with_ech(&stalled_twice()),
            Measured(ech_passes()),
            V::Blocked,
            Some(B::EchBlocked),
        )
        .saying("offering ECH (GREASE) failed 2 of 2 (generic_timeout_error)"),
        case(
            "a fetched page whose handshakes offering ECH were reset",
            url(),
            with(vec![
                page(200, 9000, "Facebook - log in"),
                ech(
                    FB_443,
                    &[
                        grease(Some(Failure::ConnectionReset)),
                        plain(None),
                        plain(None),
                        grease(Some(Failure::ConnectionReset)),
                    ],
                ),
            ]),
            Measured(with(vec![
                page(200, 9000, "Facebook - log in"),
                ech(FB_443, &[plain(None), grease(None)]),
            ])),
            V::Blocked,
            Some(B::EchBlocked),
        ),
        case(
            "handshakes offering ECH stalled, the control unavailable",
            domain(&[]),
            with_ech(&stalled_twice()),
            Unavailable,
            V::Anomaly,
            Some(B::EchBlocked),
        ),
        // HTTP
        case(
            "HTTP 451 over plain HTTP",
            url(),
            with(vec![page(451, 300, "Unavailable For Legal Reasons")]),
            Measured(fb_page()),
            V::Blocked,
            Some(B::HttpBlockpage),
        ),
        case(
            "a page unlike the control's",
            url(),
            with(vec![page(403, 300, "Forbidden")]),
            Measured(fb_page()),
            V::Blocked,
            Some(B::HttpDiff),
        ),
        case(
            "a fetch reset where the control's worked",
            url(),
            with(vec![failed_fetch(
                Operation::Read,
                Failure::ConnectionReset,
            )]),
            Measured(fb_page()),
            V::Blocked,
            Some(B::HttpFailure),
        ),
        case(
            "capped, its twin fast, capped again (A/B/A)",
            url(),
            with(vec![slow(), twin(400_000, 500.0), again(400_000, 20_000.0)]),
            Measured(video()),
            V::Blocked,
            Some(B::Throttled),
        )
        .saying("kB/s from the same address with the control SNI"),
        case(
            "a body stalled with no twin",
            url(),
            with(vec![stalled()]),
            Measured(video()),
            V::Anomaly,
            Some(B::Throttled),
        ),
        case(
            "HTTP 451, no control",
            url(),
            with(vec![page(451, 300, "Unavailable For Legal Reasons")]),
            Control::None,
            V::Anomaly,
            Some(B::HttpBlockpage),
        ),
        // Not interference
        case(
            "HTTP 451 over a valid TLS session: the site's own",
            url(),
            with(vec![over_valid_tls(page(
                451,
                300,
                "Unavailable For Legal Reasons",
            ))]),
            Measured(fb_page()),
            V::Anomaly,
            None,
        )
        .saying("the site's own answer"),
        case(
            "a CDN's challenge at the probe only",
            url(),
            with(vec![challenged()]),
            Measured(fb_page()),
            V::Anomaly,
            None,
        )
        .saying("not a censor's"),
        case(
            "a CDN's challenge at both",
            url(),
            with(vec![challenged()]),
            Measured(with(vec![challenged()])),
            V::Ok,
            None,
        ),
        case(
            "a server that closes on the first bytes and takes the next connection",
            endpoint(),
            vec![first_bytes(DC_443, Reply::Closed, None)],
            Measured(vec![first_bytes(DC_443, Reply::Closed, None)]),
            V::Ok,
            None,
        ),
        case(
            "a server that shuns such bytes, at both",
            endpoint(),
            vec![dark_after_first_bytes()],
            Measured(vec![dark_after_first_bytes()]),
            V::Ok,
            None,
        )
        .saying("at both vantage points"),
        case(
            "a dynamic page",
            url(),
            with(vec![page(200, 2000, "Facebook - log in")]),
            Measured(with(vec![page(200, 9000, "Facebook - log in")])),
            V::Ok,
            None,
        ),
        case(
            "a CDN's other address, with a valid certificate",
            domain(&[]),
            vec![
                lookup(&[("157.240.9.9", None)]),
                tcp("157.240.9.9:443", None),
                tls("157.240.9.9:443", true, None),
                tls("157.240.9.9:443", false, None),
            ],
            Measured(dns()),
            V::Ok,
            None,
        ),
        // QUIC
        case(
            "QUIC with the name dark where the control name's was answered",
            domain(&[]),
            then_quic(vec![
                quic(FB_443, true, None, 6),
                at(quic(FB_443, false, timeout(), 0), 1),
                at(quic(FB_443, true, None, 6), 2),
            ]),
            quic_answered(),
            V::Blocked,
            Some(B::QuicBlocked),
        )
        .saying("QUIC blocked by name"),
        case(
            "QUIC dark to an address the control reached over QUIC",
            url(),
            quic_dark(),
            Measured(quic_answered_there()),
            V::Blocked,
            Some(B::QuicBlocked),
        )
        .saying("QUIC blocked by address")
        .on(Network::Quic),
        case(
            "QUIC dark to an address the control reached over QUIC, and to the canary too",
            url(),
            quic_dark(),
            Measured(quic_answered_there()),
            V::Inconclusive,
            None,
        )
        .saying("the probe's QUIC was not tried at the canary in this run"),
        case(
            "QUIC dark to an address that is dark to the control's QUIC too",
            domain(&[]),
            then_quic(vec![quic(FB_443, true, timeout(), 0)]),
            Measured(then_quic(vec![quic(FB_443, true, timeout(), 0)])),
            V::Ok,
            None,
        ),
        case(
            "QUIC with the name dark, and the control name's dark right after: the path",
            domain(&[]),
            then_quic(vec![
                quic(FB_443, true, None, 6),
                at(quic(FB_443, false, timeout(), 0), 1),
                at(quic(FB_443, true, timeout(), 0), 2),
            ]),
            quic_answered(),
            V::Ok,
            None,
        ),
        case(
            "QUIC that got datagrams back and failed: loss",
            domain(&[]),
            then_quic(vec![
                quic(FB_443, true, None, 6),
                quic(FB_443, false, timeout(), 2),
            ]),
            quic_answered(),
            V::Ok,
            None,
        ),
        case(
            "QUIC dark while the canary could not be reached either",
            domain(&[]),
            then_quic(vec![checked(quic(FB_443, true, timeout(), 0), timeout())]),
            quic_answered(),
            V::Inconclusive,
            None,
        )
        .saying("the probe's own network"),
        // The probe's own faults
        case(
            "SNI stall at two tries while the link was losing packets: loss's now and then",
            domain(&[]),
            stalled_losing(2),
            Measured(handshakes()),
            V::Inconclusive,
            None,
        )
        .saying("the probe's link was losing packets"),
        case(
            "SNI reset, the other ClientHellos timed out: nothing said of the DPI",
            domain(&[]),
            sni_with(
                Failure::ConnectionReset,
                Some(Failure::GenericTimeout),
                Some(Failure::GenericTimeout),
            ),
            Measured(handshakes()),
            V::Blocked,
            Some(B::TlsReset),
        )
        .saying("to the same address succeeded; the control"),
        case(
            "every ClientHello timed out with both names, the canary too",
            domain(&[]),
            lost(Some(Failure::GenericTimeout)),
            Measured(handshakes()),
            V::Inconclusive,
            None,
        )
        .saying("the probe's own network"),
        case(
            "the default ClientHello timed out with both names and the canary, another passed later",
            domain(&[]),
            lost(None),
            Measured(handshakes()),
            V::Inconclusive,
            None,
        )
        .saying("the probe's own network"),
        case(
            "another ClientHello passed with the target's name only",
            domain(&[]),
            fingerprinted(
                Failure::ConnectionReset,
                &[(Hello::Alternate, false, None), (Hello::Alternate, true, reset())],
            ),
            Control::None,
            V::Anomaly,
            Some(B::TlsFailure),
        ),
        case(
            "a handshake offering ECH stalled once, then went through: loss",
            domain(&[]),
            with_ech(&[
                grease(Some(Failure::GenericTimeout)),
                plain(None),
                plain(None),
                grease(None),
            ]),
            Measured(ech_passes()),
            V::Ok,
            None,
        ),
        case(
            "a handshake offering ECH stalled, and the one without it right after",
            domain(&[]),
            with_ech(&[
                grease(Some(Failure::GenericTimeout)),
                plain(Some(Failure::GenericTimeout)),
            ]),
            Measured(ech_passes()),
            V::Inconclusive,
            None,
        )
        .saying("cannot be told from one of ECH"),
        case(
            "handshakes with ECH and without it stalled after another target's trigger",
            domain(&[]),
            // The target's own handshake before the trigger, the comparison after it.
            with(
                [
                    reachable().into_iter().map(|m| at(m, -20)).collect(),
                    vec![ech(
                        FB_443,
                        &[
                            grease(Some(Failure::GenericTimeout)),
                            plain(Some(Failure::GenericTimeout)),
                        ],
                    )],
                ]
                .concat(),
            ),
            Measured(ech_passes()),
            V::Inconclusive,
            None,
        )
        .after(vec![neighbours_trigger(10)])
        .saying("residual blocking set off by another target"),
        case(
            "a server that refuses ECH with an alert",
            domain(&[]),
            with_ech(&[
                plain(None),
                grease(Some(Failure::SslFailedHandshake)),
                grease(Some(Failure::SslFailedHandshake)),
                plain(None),
            ]),
            Measured(ech_passes()),
            V::Ok,
            None,
        ),
        case(
            "a resolver that failed the canary too",
            domain(&[]),
            vec![failed_lookup(Failure::GenericTimeout)],
            Measured(dns()),
            V::Inconclusive,
            None,
        )
        .on(Network::ResolverFailed(Failure::GenericTimeout))
        .saying("did not answer the canary either"),
        case(
            "a resolver that failed its check right after",
            domain(&[]),
            vec![checked(
                failed_lookup(Failure::DnsServfail),
                Some(Failure::GenericTimeout),
            )],
            Measured(dns()),
            V::Inconclusive,
            None,
        )
        .saying("right after"),
        case(
            "no network at all",
            domain(&[]),
            with(vec![timed_out_connect()]),
            Control::None,
            V::Inconclusive,
            None,
        )
        .on(Network::Down)
        .saying("no network"),
        case(
            "the probe's own machine",
            domain(&[]),
            with(vec![tcp(FB_443, Some(Failure::TooManyOpenFiles))]),
            Measured(connected()),
            V::Inconclusive,
            None,
        )
        .saying("the probe's own machine"),
        case(
            "a timeout, the canary unreachable right after",
            domain(&[]),
            with(vec![checked(
                timed_out_connect(),
                Some(Failure::GenericTimeout),
            )]),
            Measured(connected()),
            V::Inconclusive,
            None,
        )
        .saying("the probe's own network"),
        case(
            "dark after the first bytes, the canary unreachable right after",
            endpoint(),
            vec![reconnect_checked(
                dark_after_first_bytes(),
                Some(Failure::GenericTimeout),
            )],
            Measured(vec![first_bytes(DC_443, Reply::Closed, None)]),
            V::Inconclusive,
            None,
        )
        .saying("the probe's own network"),
        case(
            "a body stalled, the canary unreachable right after",
            url(),
            with(vec![checked(stalled(), Some(Failure::GenericTimeout))]),
            Measured(video()),
            V::Inconclusive,
            None,
        )
        .saying("the probe's own network"),
        case(
            "a body frozen, the canary unreachable right after",
            url(),
            with(vec![
                checked(frozen(12_000), Some(Failure::GenericTimeout)),
                stopped_after(twin(0, 0.0), 11_900),
            ]),
            Measured(video()),
            V::Inconclusive,
            None,
        )
        .saying("the probe's own network"),
        case(
            "a round trip frozen before its head, the canary unreachable right after",
            url(),
            with(vec![
                checked(
                    head_frozen(fetch(0, 0, "", 0.0, None), 14_000, 9_900.0),
                    Some(Failure::GenericTimeout),
                ),
                head_frozen(twin(0, 0.0), 13_900, 9_900.0),
            ]),
            Measured(video()),
            V::Inconclusive,
            None,
        )
        .saying("the probe's own network"),
        case(
            "a body stopped dead after 1.4 kB: a path MTU black hole as likely",
            url(),
            with(vec![frozen(1_400), stopped_after(twin(0, 0.0), 1_400)]),
            Measured(video()),
            V::Inconclusive,
            None,
        )
        .saying("path MTU black hole"),
        case(
            "lossy: a body stopped dead, fine with its own name again after the twin",
            url(),
            with(vec![
                frozen(12_000),
                twin(400_000, 500.0),
                again(400_000, 600.0),
            ]),
            Measured(video()),
            V::Inconclusive,
            None,
        )
        .saying("a path that stalled for a while"),
        case(
            "lossy: every step took retries, and succeeded",
            domain(&[]),
            vec![
                retried(lookup(&[(FB, None)])),
                retried(tcp(FB_443, None)),
                retried(tls(FB_443, true, None)),
                retried(tls(FB_443, false, None)),
            ],
            Measured(handshakes()),
            V::Ok,
            None,
        ),
        case(
            "lossy: slow on average, at the path's speed while it flowed",
            url(),
            with(vec![peaking(slow(), 5_000_000.0), twin(400_000, 500.0)]),
            Measured(video()),
            V::Ok,
            None,
        ),
        case(
            "slow with the control SNI too: a slow path",
            url(),
            with(vec![slow(), twin(400_000, 19_000.0)]),
            Measured(video()),
            V::Inconclusive,
            None,
        )
        .saying("as slow with the control SNI"),
        case(
            "fast again with its own name: congested for a while",
            url(),
            with(vec![slow(), twin(400_000, 500.0), again(400_000, 600.0)]),
            Measured(video()),
            V::Inconclusive,
            None,
        )
        .saying("no longer capped"),
        case(
            "no IPv6 route",
            domain(&[]),
            with(vec![
                tcp(FB_443, None),
                tcp(six, Some(Failure::NetworkUnreachable)),
            ]),
            Control::None,
            V::Ok,
            None,
        ),
        case(
            "broken IPv6, IPv4 fine",
            domain(&[]),
            with(vec![
                tcp(FB_443, None),
                tcp(six, Some(Failure::GenericTimeout)),
            ]),
            Measured(with(vec![tcp(FB_443, None), tcp(six, None)])),
            V::Ok,
            None,
        ),
        case(
            "AAAA refused, the target reached",
            domain(&[]),
            [
                dns(),
                vec![failed_lookup_of(QueryType::Aaaa, Failure::DnsRefused)],
                reachable(),
            ]
            .concat(),
            Measured(handshakes()),
            V::Ok,
            None,
        ),
        case(
            "a residual block another target set off",
            domain(&[]),
            with(vec![timed_out_connect()]),
            Measured(connected()),
            V::Inconclusive,
            None,
        )
        .after(vec![neighbours_trigger(10)])
        .saying("residual blocking set off by another target"),
        case(
            "QUIC dark to an address after another target's trigger during its tries",
            domain(&[]),
            with(
                [
                    reachable().into_iter().map(|m| at(m, -20)).collect(),
                    vec![quic_lasting(at(quic(FB_443, true, timeout(), 0), -12), 6_500.0)],
                ]
                .concat(),
            ),
            Measured(with(
                [reachable(), vec![quic(FB_443, false, None, 6)]].concat(),
            )),
            V::Inconclusive,
            None,
        )
        .after(vec![neighbours_trigger(10)])
        .saying("residual blocking set off by another target"),
        case(
            "nothing failed, nothing reached",
            domain(&[]),
            nowhere(),
            Measured(vec![lookup(&[("93.184.216.35", Some(15133))])]),
            V::Inconclusive,
            None,
        )
        .saying("nothing got through"),
        case(
            "capped, no fetch with its own name after the twin",
            url(),
            with(vec![slow(), twin(400_000, 500.0)]),
            Measured(video()),
            V::Inconclusive,
            None,
        )
        .saying("no fetch with its own name"),
        case(
            "a resolver that failed the canary too, no control",
            domain(&[]),
            vec![failed_lookup(Failure::GenericTimeout)],
            Control::None,
            V::Inconclusive,
            None,
        )
        .on(Network::ResolverFailed(Failure::GenericTimeout))
        .saying("did not answer the canary either"),
        // The control's faults
        case(
            "handshakes offering ECH stalled at the control too",
            domain(&[]),
            with_ech(&stalled_twice()),
            Measured(with_ech(&[
                plain(None),
                grease(Some(Failure::GenericTimeout)),
            ])),
            V::Ok,
            None,
        )
        .saying("at both vantage points"),
        case(
            "the control unavailable, nothing failed",
            domain(&[]),
            connected(),
            Unavailable,
            V::Ok,
            None,
        ),
        case(
            "the control unavailable, a mere failure",
            domain(&[]),
            with(vec![timed_out_connect()]),
            Unavailable,
            V::Inconclusive,
            None,
        )
        .saying("the control could not confirm it"),
        case(
            "capped (A/B/A), the control unavailable: no rate to compare with",
            url(),
            with(vec![slow(), twin(400_000, 500.0), again(400_000, 20_000.0)]),
            Unavailable,
            V::Ok,
            None,
        ),
        case(
            "the control's own machine",
            domain(&[]),
            with(vec![timed_out_connect()]),
            Measured(with(vec![tcp(FB_443, Some(Failure::TooManyOpenFiles))])),
            V::Inconclusive,
            None,
        )
        .saying("the control could not measure it"),
        case(
            "the control's resolver failing its check",
            domain(&[]),
            vec![failed_lookup(Failure::DnsNxdomain)],
            Measured(vec![checked(
                failed_lookup(Failure::GenericTimeout),
                Some(Failure::GenericTimeout),
            )]),
            V::Inconclusive,
            None,
        ),
        case(
            "the control without IPv6",
            domain(&[]),
            with(vec![tcp(six, Some(Failure::GenericTimeout))]),
            Measured(with(vec![tcp(six, Some(Failure::NetworkUnreachable))])),
            V::Inconclusive,
            None,
        ),
        // Down for everyone
        case(
            "NXDOMAIN at both",
            domain(&[]),
            vec![failed_lookup(Failure::DnsNxdomain)],
            Measured(vec![failed_lookup(Failure::DnsNxdomain)]),
            V::Down,
            None,
        )
        .saying("down for everyone"),
        case(
            "a timeout at both",
            domain(&[]),
            with(vec![timed_out_connect()]),
            Measured(with(vec![timed_out_connect()])),
            V::Down,
            None,
        ),
        case(
            "an SNI reset at both",
            domain(&[]),
            sni(Failure::ConnectionReset),
            Measured(sni(Failure::ConnectionReset)),
            V::Down,
            None,
        ),
        case(
            "a bad certificate at both",
            domain(&[]),
            with(vec![tcp(FB_443, None), mitm(FB_443)]),
            Measured(with(vec![tcp(FB_443, None), mitm(FB_443)])),
            V::Down,
            None,
        ),
        case(
            "a server error at both",
            url(),
            with(vec![page(503, 300, "Service Unavailable")]),
            Measured(with(vec![page(503, 300, "Service Unavailable")])),
            V::Down,
            None,
        ),
        case(
            "a fetch reset at both",
            url(),
            with(vec![failed_fetch(
                Operation::Read,
                Failure::ConnectionReset,
            )]),
            Measured(with(vec![failed_fetch(
                Operation::Read,
                Failure::ConnectionReset,
            )])),
            V::Down,
            None,
        ),
    ]
}

/// A connect to Telegram's data centre that worked, and none right after the first
/// bytes: every try unanswered.
fn dark_after_first_bytes() -> Measurement {
    first_bytes(DC_443, Reply::Silent, Some(Failure::GenericTimeout))
}

/// A lookup answered `first`, then under the same ID `then`: an injector's race.
fn injected(first: &str, then: &str) -> Measurement {
    let mut m = lookup(&[(first, None)]);
    let Step::Dns(injector) = lookup(&[(then, None)]).step else {
        unreachable!("a lookup")
    };
    if let Step::Dns(d) = &mut m.step {
        d.replies.extend(injector.replies);
    }
    m
}

/// The neighbour's handshake with its own name to the service's address, stalled
/// `seconds` before the case's steps: it may set off a residual block of the address.
fn neighbours_trigger(seconds: i64) -> Measurement {
    let mut m = at(tls(FB_443, false, Some(Failure::GenericTimeout)), -seconds);
    if let Step::TlsHandshake(t) = &mut m.step {
        t.server_name = "forbidden.test".into();
    }
    m
}

/// `m`, lasting `ms` milliseconds.
fn quic_lasting(m: Measurement, ms: f64) -> Measurement {
    Measurement {
        runtime_ms: ms,
        ..m
    }
}

/// `m`, answered only at its third try.
fn retried(mut m: Measurement) -> Measurement {
    match &mut m.step {
        Step::Dns(d) => d.tries = 3,
        Step::TcpConnect(t) => t.tries = 3,
        Step::TlsHandshake(t) => t.tries = 3,
        Step::QuicHandshake(q) => q.handshake.tries = 3,
        Step::Http(h) => h.tries = 3,
        Step::Ech(_) => {}
    }
    m
}

/// A fetch whose fastest quarter second ran at `peak` bytes a second.
fn peaking(mut m: Measurement, peak: f64) -> Measurement {
    if let Step::Http(h) = &mut m.step {
        h.hops[0].peak_rate = Some(peak);
    }
    m
}

const CANARY_IP: &str = "93.184.215.14";

fn canary() -> Target {
    Target {
        service: CANARY_SERVICE.into(),
        kind: TargetKind::Domain("example.com".into()),
        ..domain(&[])
    }
}

fn neighbour() -> Target {
    Target {
        service: "forbidden".into(),
        kind: TargetKind::Domain("forbidden.test".into()),
        ..domain(&[])
    }
}

/// What the canary measured on `network`.
fn canary_facts(network: &Network) -> Vec<Measurement> {
    let address = format!("{CANARY_IP}:443");
    let mut facts = match network {
        Network::Up => vec![lookup(&[(CANARY_IP, None)]), tcp(&address, None)],
        Network::Ipv6 => vec![
            lookup(&[(CANARY_IP, None)]),
            tcp(&address, None),
            tcp("[2606:2800:21f::1]:443", None),
        ],
        Network::Quic => vec![
            lookup(&[(CANARY_IP, None)]),
            tcp(&address, None),
            quic(&address, true, None, 6),
        ],
        Network::ResolverFailed(failure) => vec![failed_lookup(failure.clone())],
        Network::Down => vec![
            lookup(&[(CANARY_IP, None)]),
            tcp(&address, Some(Failure::GenericTimeout)),
        ],
    };
    for m in &mut facts {
        if let Step::Dns(d) = &mut m.step {
            d.hostname = "example.com".into();
        }
    }
    facts
}

/// `facts` as measured for `target` from `vantage`.
fn of(target: &Target, vantage: Vantage, facts: &[Measurement]) -> Vec<Measurement> {
    facts
        .iter()
        .cloned()
        .map(|m| Measurement {
            vantage,
            service: target.service.clone(),
            target: target.to_string(),
            ..m
        })
        .collect()
}

/// Writes the case's run into `dir`, as `censorprobe run` would.
fn write_run(dir: &Path, case: &Case) {
    let mut targets = vec![canary(), case.target.clone()];
    if !case.neighbour.is_empty() {
        targets.push(neighbour());
    }
    let control = match case.control {
        Control::None => None,
        _ => Some("https://control.test:8443/".to_string()),
    };
    let settings = RunSettings {
        canary: Some("example.com".into()),
        control,
        ..RunSettings::default()
    };
    let info = RunInfo::start("corpus-", settings, targets.into_iter().collect());
    let mut writer = ResultsWriter::create(dir, &info).unwrap();
    let mut lines = of(&canary(), Vantage::Probe, &canary_facts(&case.network));
    lines.extend(of(&neighbour(), Vantage::Probe, &case.neighbour));
    lines.extend(of(&case.target, Vantage::Probe, &case.probe));
    if let Measured(theirs) = &case.control {
        lines.extend(of(&case.target, Vantage::Control, theirs));
    }
    writer.write_measurements(&lines).unwrap();
}

/// The case's row of verdicts.analysed.csv, as `censorprobe analyse` wrote it.
fn analysed(case: &Case) -> VerdictRow {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    write_run(&dir, case);
    offline::analyse(&dir, None).unwrap();
    let mut rows = csv::Reader::from_path(dir.join("verdicts.analysed.csv")).unwrap();
    let target = case.target.to_string();
    rows.deserialize::<VerdictRow>()
        .map(Result::unwrap)
        .find(|row| row.target == target)
        .unwrap_or_else(|| panic!("{}: no row for {target}", case.name))
}

#[test]
fn every_case_gets_its_verdict_through_analyse() {
    let cases = cases();
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let row = analysed(case);
            let got = row.judgement().unwrap();
            let right =
                got == (case.verdict, case.blocking) && row.evidence.contains(case.evidence);
            (!right).then(|| {
                format!(
                    "{}: expected {} {:?} saying {:?}, got {} {:?}: {}",
                    case.name,
                    case.verdict,
                    case.blocking,
                    case.evidence,
                    got.0,
                    got.1,
                    row.evidence
                )
            })
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_corpus_fires_every_blocking_kind_and_names_each_case_once() {
    let cases = cases();
    for kind in B::all() {
        assert!(
            cases.iter().any(|c| c.blocking == Some(kind)),
            "no case gives {kind}"
        );
    }
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "two cases share a name");
}
