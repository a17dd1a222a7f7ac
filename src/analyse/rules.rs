//! The verdict rules as a table: for each blocking kind, its layer and every form of
//! evidence that gives it, with the function that decides it and what the control has
//! to say for `blocked`. docs/design.md's blocking table is the same in prose (a test
//! below keeps it naming every kind with its layer); the functions named here are the
//! rules themselves, and `judge` orders what they find.
//!
//! A failure that the probe's own machine or network, a resolver failing the canary
//! too, or another target's trigger accounts for is none of these: `explain` makes it
//! `inconclusive` first.

use std::fmt;

use super::Blocking;

/// The layer a blocking kind belongs to, in the order a browser meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Dns,
    Tcp,
    Tls,
    Http,
    Quic,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Dns => "DNS",
            Layer::Tcp => "TCP",
            Layer::Tls => "TLS",
            Layer::Http => "HTTP",
            Layer::Quic => "QUIC",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a form of evidence needs of the control to make a target `blocked`. Without
/// any facts of the control's nothing is: what is found is an `anomaly` in a run without
/// a control and, where the control was asked and gave nothing, an `anomaly` or
/// `inconclusive` as below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: the probe's facts prove it, `blocked` whatever the control saw (an
    /// `anomaly` where it gave nothing).
    Nothing,
    /// The control passing the same step. Where the control could not say, the probe's
    /// facts alone still single the target out: `anomaly`.
    ControlElseSign,
    /// The control passing the same step. Where the control could not say, it is a
    /// failure like any other: `inconclusive`.
    Control,
    /// The control's facts to compare with (its answers, its page): not found without
    /// them, `blocked` where they show the control passing.
    ControlFacts,
    /// Nothing can confirm it: a sign, `anomaly` at most.
    Unconfirmable,
}

/// How a blocking kind is found.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub layer: Layer,
    /// Every form of evidence that gives the kind.
    pub forms: &'static [Form],
}

/// One form of evidence for a blocking kind.
#[derive(Debug, Clone, Copy)]
pub struct Form {
    /// When it fires, in a line.
    pub fires: &'static str,
    pub needs: Needs,
    /// The functions that decide it, as paths in the crate (for finding them; a test
    /// checks that each exists).
    pub decided_in: &'static [&'static str],
}

impl Blocking {
    /// The kind's rule. A new kind cannot be added without one.
    pub const fn rule(self) -> Rule {
        use Needs::*;
        let (layer, forms): (Layer, &'static [Form]) = match self {
            Blocking::DnsHijack => (
                Layer::Dns,
                &[
                    Form {
                        fires: "an answer that is a known blockpage address (even one the control got too), or a bogon the control did not get",
                        needs: Nothing,
                        decided_in: &["analyse::dns::forged"],
                    },
                    Form {
                        fires: "an answer sharing no address or ASN with the control's of the same type, outside the service's `asns`, vouched for by no valid certificate for the name and no page like the control's",
                        needs: ControlFacts,
                        decided_in: &["analyse::dns::inconsistent"],
                    },
                    Form {
                        fires: "without the control's facts, an answer in an ASN (from --asn-db) outside the service's `asns`",
                        needs: Unconfirmable,
                        decided_in: &["analyse::dns::outside_asns"],
                    },
                ],
            ),
            Blocking::DnsNxdomain => (
                Layer::Dns,
                &[Form {
                    fires: "a lookup answered NXDOMAIN, unless the other record type resolved and the target was reached",
                    needs: Control,
                    decided_in: &["analyse::dns::problems"],
                }],
            ),
            Blocking::DnsFailure => (
                Layer::Dns,
                &[
                    Form {
                        fires: "a lookup failed otherwise (SERVFAIL, REFUSED, silence; an AAAA lookup without an answer is normal), unless the other record type resolved and the target was reached",
                        needs: Control,
                        decided_in: &["analyse::dns::problems"],
                    },
                    Form {
                        fires: "a fetch redirected to a host that does not resolve",
                        needs: Control,
                        decided_in: &["analyse::http::failure_finding"],
                    },
                ],
            ),
            Blocking::DnsInjection => (
                Layer::Dns,
                &[Form {
                    fires: "two replies to one copy of a query (one ID) with different addresses: an injector racing the resolver",
                    needs: Nothing,
                    decided_in: &["analyse::dns::injection"],
                }],
            ),
            Blocking::TcpBlackhole => (
                Layer::Tcp,
                &[Form {
                    fires: "every try of a connect went unanswered (timed out, unreachable); an IPv6 address is left out where the probe's IPv6 is missing or broken",
                    needs: Control,
                    decided_in: &[
                        "analyse::transport::tcp_finding",
                        "analyse::transport::connect_problem",
                    ],
                }],
            ),
            Blocking::TcpReset => (
                Layer::Tcp,
                &[Form {
                    fires: "a connect was reset, aborted or closed",
                    needs: Control,
                    decided_in: &[
                        "analyse::transport::tcp_finding",
                        "analyse::transport::connect_problem",
                    ],
                }],
            ),
            Blocking::TcpRefused => (
                Layer::Tcp,
                &[Form {
                    fires: "a connect was refused",
                    needs: Control,
                    decided_in: &[
                        "analyse::transport::tcp_finding",
                        "analyse::transport::connect_problem",
                    ],
                }],
            ),
            Blocking::ProtocolFiltered => (
                Layer::Tcp,
                &[Form {
                    fires: "a connect to an endpoint worked, and after bytes that were neither TLS, HTTP nor DNS sent on it every try of the connect right after went unanswered (dark from the start is `tcp-blackhole`)",
                    needs: Control,
                    decided_in: &[
                        "analyse::transport::protocol_problem",
                        "analyse::transport::first_bytes_at",
                    ],
                }],
            ),
            Blocking::TlsReset => (
                Layer::Tls,
                &[Form {
                    fires: "a handshake with the target's name was reset or closed, while control-SNI handshakes to the same address went through before and right after (or the address then took no connection at all)",
                    needs: ControlElseSign,
                    decided_in: &[
                        "analyse::transport::tls_problem",
                        "analyse::transport::name_singled_out",
                        "analyse::http::failure_finding",
                    ],
                }],
            ),
            Blocking::TlsTimeout => (
                Layer::Tls,
                &[Form {
                    fires: "the same, the handshake stalling",
                    needs: ControlElseSign,
                    decided_in: &[
                        "analyse::transport::tls_problem",
                        "analyse::transport::name_singled_out",
                        "analyse::http::failure_finding",
                    ],
                }],
            ),
            Blocking::TlsMitm => (
                Layer::Tls,
                &[Form {
                    fires: "a certificate not valid for the name (the control's, from any of its addresses, being valid)",
                    needs: ControlElseSign,
                    decided_in: &[
                        "analyse::transport::tls_problem",
                        "analyse::http::failure_finding",
                    ],
                }],
            ),
            Blocking::TlsFailure => (
                Layer::Tls,
                &[Form {
                    fires: "any other failed handshake with the target's name (a reset or stall the control name met too)",
                    needs: Control,
                    decided_in: &[
                        "analyse::transport::tls_problem",
                        "analyse::http::failure_finding",
                    ],
                }],
            ),
            Blocking::TlsStall => (
                Layer::Tls,
                &[
                    Form {
                        fires: "an HTTPS body stopped dead after at least 4 KiB (silent, with no reset or FIN, from at most halfway through its read to the deadline, and for 2 s at least) while the control read the whole body, and the control-SNI twins from the same address stopped dead too: a freeze by address",
                        needs: Control,
                        decided_in: &["analyse::http::tls_stall", "analyse::http::froze"],
                    },
                    Form {
                        fires: "the same, where a control-SNI twin from the same address read past that point and the fetch with its own name right after stopped dead again: a freeze by name",
                        needs: ControlElseSign,
                        decided_in: &["analyse::http::tls_stall", "analyse::http::froze"],
                    },
                    Form {
                        fires: "the same, with no control-SNI twin, or no fetch with its own name after one that read on, to tell",
                        needs: Unconfirmable,
                        decided_in: &["analyse::http::tls_stall"],
                    },
                ],
            ),
            Blocking::TlsFingerprint => (
                Layer::Tls,
                &[Form {
                    fires: "handshakes with the default ClientHello failed once connected with the target's name and with the control name to the same address (before, and right after), while another ClientHello (split, padded or browser-like) passed with both names: the probe's own fingerprint is blocked, not the site (never `blocked`, whatever the control saw)",
                    needs: Unconfirmable,
                    decided_in: &[
                        "analyse::hello::fingerprint",
                        "analyse::transport::tls_problem",
                    ],
                }],
            ),
            Blocking::EchBlocked => (
                Layer::Tls,
                &[Form {
                    fires: "every handshake offering ECH (two at least, in random order with as many without it) was reset or stalled, while every one without ECH with the same name to the same address went through, the target's own first",
                    needs: ControlElseSign,
                    decided_in: &["analyse::ech::ech_problem"],
                }],
            ),
            Blocking::HttpBlockpage => (
                Layer::Http,
                &[Form {
                    fires: "a hop answered with a known blockpage (HTTP 451 included), not over a TLS session valid for the name (that is the site's own answer: `anomaly` without a kind)",
                    needs: Nothing,
                    decided_in: &[
                        "analyse::http::blockpage",
                        "analyse::fingerprints::http_blockpage",
                    ],
                }],
            ),
            Blocking::HttpDiff => (
                Layer::Http,
                &[Form {
                    fires: "a page unlike the control's by OONI's rule (the status, or all of length, uncommon header names and title words), not over a TLS session valid for the name; each side's page its first that is not a server error (a 5xx at each of the probe's fetches is no evidence)",
                    needs: ControlFacts,
                    decided_in: &["analyse::http::differs"],
                }],
            ),
            Blocking::HttpFailure => (
                Layer::Http,
                &[Form {
                    fires: "a fetch failed after connecting (in its round trip or its read)",
                    needs: Control,
                    decided_in: &["analyse::http::failure_finding"],
                }],
            ),
            Blocking::Throttled => (
                Layer::Http,
                &[
                    Form {
                        fires: "a transfer capped at under a quarter of the control's rate (and moving, not stopped dead), its control-SNI twin from the same address four times faster, and capped again when fetched with its own name after the twin (A/B/A)",
                        needs: ControlFacts,
                        decided_in: &["analyse::http::throttled"],
                    },
                    Form {
                        fires: "a body stalled after the response while the control read the whole page, with no control-SNI twin to tell a throttle from a slow path, recorded without the silence at its end (an older run, an import) that tells a freeze",
                        needs: Unconfirmable,
                        decided_in: &["analyse::http::body_stalled"],
                    },
                ],
            ),
            Blocking::QuicBlocked => (
                Layer::Quic,
                &[
                    Form {
                        fires: "a QUIC handshake with the target's name got not one datagram back (every try) while the control name's to the same address were answered before and right after, and TCP+TLS with the name to that address was answered: by name",
                        needs: ControlElseSign,
                        decided_in: &["analyse::quic::quic_problem", "analyse::quic::quic_at"],
                    },
                    Form {
                        fires: "QUIC handshakes to an address got not one datagram back with the control name (the name is then not tried), while TCP+TLS with the name there was answered and the control's QUIC handshakes to the address were: by address (the control dark there too: an address that does not speak QUIC, no finding; the control unable to try: `inconclusive`)",
                        needs: ControlFacts,
                        decided_in: &["analyse::quic::quic_problem", "analyse::quic::quic_at"],
                    },
                ],
            ),
        };
        Rule { layer, forms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of docs/design.md's blocking table: each kind named, with its layer.
    fn documented() -> Vec<(String, String)> {
        include_str!("../../docs/design.md")
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let [_, kind, layer, _, _, _] = cells.as_slice() else {
                    return None;
                };
                let kind = kind.strip_prefix('`')?.strip_suffix('`')?;
                let layers = [Layer::Dns, Layer::Tcp, Layer::Tls, Layer::Http, Layer::Quic];
                layers
                    .iter()
                    .any(|l| l.as_str() == *layer)
                    .then(|| (kind.to_string(), layer.to_string()))
            })
            .collect()
    }

    #[test]
    fn the_design_doc_names_every_kind_with_its_layer() {
        let rows = documented();
        for kind in Blocking::all() {
            let layer = kind.rule().layer.to_string();
            assert!(
                rows.contains(&(kind.to_string(), layer.clone())),
                "docs/design.md's blocking table has no row `{kind}` | {layer}"
            );
        }
        for (kind, _) in &rows {
            assert!(
                kind.parse::<Blocking>().is_ok(),
                "docs/design.md names `{kind}`, which is no blocking kind"
            );
        }
        assert_eq!(rows.len(), Blocking::COUNT, "one row a kind: {rows:?}");
    }

    #[test]
    fn the_readme_names_every_kind_in_order() {
        let rows: Vec<String> = include_str!("../../README.md")
            .lines()
            .filter_map(|line| {
                let kind = line.strip_prefix("| `")?.split_once('`')?.0;
                kind.parse::<Blocking>().is_ok().then(|| kind.to_string())
            })
            .collect();
        let kinds: Vec<String> = Blocking::all().map(|k| k.to_string()).collect();
        assert_eq!(rows, kinds, "README.md's table of blocking kinds");
    }

    #[test]
    fn every_rule_names_functions_that_exist() {
        for kind in Blocking::all() {
            let rule = kind.rule();
            assert!(!rule.forms.is_empty(), "{kind} has no form");
            for path in rule.forms.iter().flat_map(|f| f.decided_in) {
                let (module, function) = path.rsplit_once("::").expect("a path");
                let file = format!(
                    "{}/src/{}.rs",
                    env!("CARGO_MANIFEST_DIR"),
                    module.replace("::", "/")
                );
                let source = std::fs::read_to_string(&file).expect("the module's file");
                assert!(
                    source.contains(&format!("fn {function}(")),
                    "{kind}'s rule names {path}, which {file} does not define"
                );
            }
        }
    }
}
