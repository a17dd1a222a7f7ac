//! The scenario catalog (scenarios.toml beside this file): each scenario of the labs'
//! censored network, what the censor does, and the verdict an honest probe gives each
//! target it acts on. The demo, the loopback tests and the testbed suite all read it
//! from here, so that the three labs cannot disagree about what a scenario means.
//!
//! It is embedded, so that `censorprobe demo` needs no file beside the binary.

use std::collections::HashSet;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::analyse::{Blocking, Verdict};

/// Where the catalog lives, for error messages and for the readers outside the binary.
pub const FILE: &str = "src/lab/scenarios.toml";
const TEXT: &str = include_str!("scenarios.toml");

/// What a target comes out as: its verdict, its blocking kind, and pieces of evidence
/// that must all be in what the probe says of it (they show the lab did what the
/// scenario says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub blocking: Option<Blocking>,
    pub evidence: Vec<String>,
}

impl Outcome {
    fn new(verdict: Verdict, blocking: Option<Blocking>, evidence: &[&str]) -> Outcome {
        Outcome {
            verdict,
            blocking,
            evidence: evidence.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// Whether a target's verdict and blocking kind are this outcome's (the evidence
    /// is the caller's to check).
    pub fn is(&self, verdict: Verdict, blocking: Option<Blocking>) -> bool {
        (self.verdict, self.blocking) == (verdict, blocking)
    }

    /// `blocked` or `anomaly`: what a probe reports as interference.
    pub fn flags(&self) -> bool {
        matches!(self.verdict, Verdict::Blocked | Verdict::Anomaly)
    }
}

/// A fault of the probe's own network or of the control, not censorship: what it lets
/// a target come out as besides what the censor does to it. No target the censor
/// leaves alone may come out `blocked` or `anomaly`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Nothing the probe can measure is lost (loss is retried, a small NAT table
    /// waited out, broken AAAA answers set aside): the censor's verdicts stand; an
    /// uncensored target is `ok`, or `inconclusive` where the fault leaves it in doubt.
    Benign,
    /// As benign, but the probe's router drops new flows whenever its table is full
    /// (a home router's NAT table): a censor's blackhole, like a blocked QUIC
    /// handshake, may then be `inconclusive`, where the evidence shows the network
    /// failing new connections as the step went on or ended. The probe's rules say so
    /// (a full table leaves 44 to 70 % of first tries unanswered).
    NatFull,
    /// The probe's resolver fails, the canary's lookups too: a target with a name is
    /// `inconclusive`, the evidence naming the resolver, unless a forged answer still
    /// shows (an injector, a resolver's own lie); an endpoint keeps its verdict, or is
    /// `inconclusive` where it failed, since no check of the network can find the
    /// canary.
    ResolverDead,
    /// The probe's network drops all QUIC, the canary's too: a target whose QUIC the
    /// censor blocks may be `inconclusive` (QUIC dark everywhere singles no address out).
    QuicDead,
    /// The probe's network fails much of what it tries (full-size packets lost, new
    /// connections refused room): no target the censor leaves alone is flagged, and a
    /// censored one may be `inconclusive`, its failure no longer told from the network's.
    Degraded,
    /// The control cannot measure all it is asked: a censored target is `blocked`, or
    /// `anomaly` (strong evidence the control could not confirm), or `inconclusive`;
    /// a target down for everyone may be `inconclusive` too.
    ControlStarved,
}

/// Targets of the testbed a scenario acts on, and what each comes out as.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub targets: Vec<String>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    /// What the censor does, in one sentence.
    pub censor: String,
    /// What every target the scenario acts on comes out as, in any lab (no evidence:
    /// that is each lab's); none for a fault, or for scenarios that only include others.
    pub outcome: Option<Outcome>,
    pub fault: Option<Fault>,
    /// Scenarios switched on with this one.
    pub includes: Vec<String>,
    /// The demo's services the scenario acts on.
    pub demo: Vec<String>,
    /// The testbed's targets the scenario acts on.
    pub testbed: Vec<Expectation>,
}

/// The catalog, in the file's order.
#[derive(Debug)]
pub struct Catalog {
    scenarios: Vec<Scenario>,
}

/// An entry as written; [`Catalog::parse`] checks it and makes it a [`Scenario`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    censor: String,
    verdict: Option<Verdict>,
    blocking: Option<Blocking>,
    fault: Option<Fault>,
    #[serde(default)]
    includes: Vec<String>,
    #[serde(default)]
    demo: Vec<String>,
    #[serde(default)]
    testbed: Vec<RawExpectation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpectation {
    targets: Vec<String>,
    verdict: Option<Verdict>,
    blocking: Option<Blocking>,
    #[serde(default)]
    evidence: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    scenario: Vec<toml::Table>,
}

impl Catalog {
    /// The catalog the binary was built with.
    pub fn load() -> anyhow::Result<Catalog> {
        Catalog::parse(TEXT).with_context(|| format!("the scenario catalog {FILE}"))
    }

    /// Reads a catalog, each error naming the entry it is in.
    pub fn parse(text: &str) -> anyhow::Result<Catalog> {
        let raw: RawCatalog = toml::from_str(text)?;
        let mut scenarios = Vec::new();
        for (index, table) in raw.scenario.into_iter().enumerate() {
            let entry = match table.get("name").and_then(|name| name.as_str()) {
                Some(name) => format!("scenario {name:?}"),
                None => format!("scenario number {}", index + 1),
            };
            let raw: RawScenario = table.try_into().with_context(|| entry.clone())?;
            scenarios.push(Scenario::new(raw).with_context(|| entry.clone())?);
        }
        let mut names = HashSet::new();
        for scenario in &scenarios {
            if !names.insert(scenario.name.as_str()) {
                bail!("scenario {:?} is there twice", scenario.name);
            }
        }
        for scenario in &scenarios {
            for included in &scenario.includes {
                if !names.contains(included.as_str()) || *included == scenario.name {
                    bail!(
                        "scenario {:?} includes {included:?}, which is not another scenario",
                        scenario.name
                    );
                }
            }
        }
        Ok(Catalog { scenarios })
    }

    pub fn scenarios(&self) -> &[Scenario] {
        &self.scenarios
    }

    pub fn scenario(&self, name: &str) -> anyhow::Result<&Scenario> {
        self.scenarios
            .iter()
            .find(|s| s.name == name)
            .with_context(|| format!("no scenario named {name:?} in {FILE}"))
    }

    /// The scenario that acts on the demo's `service`.
    pub fn demo_service(&self, service: &str) -> anyhow::Result<&Scenario> {
        self.scenarios
            .iter()
            .find(|s| s.demo.iter().any(|d| d == service))
            .with_context(|| format!("no scenario of {FILE} acts on the demo's {service:?}"))
    }

    /// The scenarios `names` switched on together, in that order.
    pub fn case(&self, names: &[&str]) -> anyhow::Result<Case<'_>> {
        let scenarios = names
            .iter()
            .map(|name| self.scenario(name))
            .collect::<anyhow::Result<_>>()?;
        Ok(Case {
            catalog: self,
            scenarios,
        })
    }
}

impl Scenario {
    fn new(raw: RawScenario) -> anyhow::Result<Scenario> {
        let outcome = match raw.verdict {
            Some(verdict) => Some(judged(verdict, raw.blocking, Vec::new())?),
            None if raw.blocking.is_some() => bail!("a blocking kind without a verdict"),
            None => None,
        };
        let testbed = raw
            .testbed
            .into_iter()
            .map(|entry| {
                let outcome = match (entry.verdict, &outcome) {
                    (Some(verdict), _) => judged(verdict, entry.blocking, entry.evidence)?,
                    (None, _) if entry.blocking.is_some() => {
                        bail!("a testbed entry with a blocking kind but no verdict")
                    }
                    (None, Some(outcome)) => Outcome {
                        evidence: entry.evidence,
                        ..outcome.clone()
                    },
                    (None, None) => {
                        bail!("a testbed entry without a verdict, and the scenario has none")
                    }
                };
                Ok(Expectation {
                    targets: entry.targets,
                    outcome,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Scenario {
            name: raw.name,
            censor: raw.censor,
            outcome,
            fault: raw.fault,
            includes: raw.includes,
            demo: raw.demo,
            testbed,
        })
    }

    /// What every target the scenario acts on comes out as; an error for a scenario
    /// that says none (a fault, `all`).
    pub fn outcome(&self) -> anyhow::Result<&Outcome> {
        self.outcome
            .as_ref()
            .with_context(|| format!("scenario {:?} of {FILE} has no verdict", self.name))
    }
}

/// An outcome whose blocking kind goes with its verdict.
fn judged(
    verdict: Verdict,
    blocking: Option<Blocking>,
    evidence: Vec<String>,
) -> anyhow::Result<Outcome> {
    if blocking.is_some() && !matches!(verdict, Verdict::Blocked | Verdict::Anomaly) {
        bail!("a blocking kind with verdict {verdict}, which has none");
    }
    Ok(Outcome {
        verdict,
        blocking,
        evidence,
    })
}

/// Scenarios switched on together, as the testbed runs them: what each target of the
/// testbed may come out as.
pub struct Case<'a> {
    catalog: &'a Catalog,
    scenarios: Vec<&'a Scenario>,
}

impl Case<'_> {
    /// The outcomes the scenarios give `target` (any one of them will do), without
    /// their faults; empty when none acts on it. A later scenario's entries for a
    /// target replace an earlier one's; included scenarios come in their place.
    pub fn censored(&self, target: &str) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for scenario in &self.scenarios {
            self.collect(scenario, target, &mut outcomes);
        }
        outcomes
    }

    fn collect(&self, scenario: &Scenario, target: &str, outcomes: &mut Vec<Outcome>) {
        for included in &scenario.includes {
            if let Ok(included) = self.catalog.scenario(included) {
                self.collect(included, target, outcomes);
            }
        }
        let own: Vec<Outcome> = scenario
            .testbed
            .iter()
            .filter(|entry| entry.targets.iter().any(|t| t == target))
            .map(|entry| entry.outcome.clone())
            .collect();
        if !own.is_empty() {
            *outcomes = own;
        }
    }

    /// The fault switched on, if any.
    pub fn fault(&self) -> Option<Fault> {
        self.scenarios.iter().find_map(|s| s.fault)
    }

    /// The outcome that makes `target` a censored one, for counting false positives
    /// and negatives: the first of its outcomes that flags it (an outage is not
    /// censorship).
    pub fn flagged(&self, target: &str) -> Option<Outcome> {
        self.censored(target).into_iter().find(Outcome::flags)
    }

    /// Every outcome allowed for `target`, its fault's included; a target is named
    /// unless it is an endpoint (`IP:PORT`).
    pub fn allowed(&self, target: &str) -> Vec<Outcome> {
        let censored = self.censored(target);
        let ok = || vec![Outcome::new(Verdict::Ok, None, &[])];
        let inconclusive = Outcome::new(Verdict::Inconclusive, None, &[]);
        let named = target.parse::<std::net::SocketAddr>().is_err();
        match (self.fault(), censored.is_empty()) {
            (None, true) => ok(),
            (None, false) => censored,
            (Some(Fault::ResolverDead), _) if named => {
                let mut outcomes = vec![Outcome::new(
                    Verdict::Inconclusive,
                    None,
                    &["did not answer the canary"],
                )];
                let forged = censored.iter().any(|o| {
                    matches!(
                        o.blocking,
                        Some(Blocking::DnsHijack | Blocking::DnsInjection)
                    )
                });
                if forged {
                    outcomes.extend([
                        Outcome::new(Verdict::Blocked, Some(Blocking::DnsHijack), &[]),
                        Outcome::new(Verdict::Blocked, Some(Blocking::DnsInjection), &[]),
                    ]);
                }
                outcomes
            }
            (Some(Fault::ResolverDead), true) => ok(),
            // A failure of an endpoint gets no working check: the canary's address
            // cannot be looked up, and the probe cannot tell its link working.
            (Some(Fault::ResolverDead), false) => [
                censored,
                vec![Outcome::new(
                    Verdict::Inconclusive,
                    None,
                    &["a lookup of the canary"],
                )],
            ]
            .concat(),
            (Some(Fault::Benign), false) => benign(censored),
            // A table full for long, or as the step ended (the canary's connects made at
            // once right after, or as it was tried again, all unanswered at first), and
            // a connect's six tries no longer tell a blackhole from the network's.
            (Some(Fault::NatFull), false) => excused(
                benign(censored),
                Blocking::TcpBlackhole,
                &[
                    FAILING_NEW_FLOWS,
                    "the probe's network was down as the step ended",
                    "while the probe's link was down",
                ],
            ),
            (Some(Fault::QuicDead), false) => excused(
                censored,
                Blocking::QuicBlocked,
                &["the probe's QUIC handshake to the canary got no answer either"],
            ),
            (
                Some(
                    Fault::Benign
                    | Fault::NatFull
                    | Fault::ControlStarved
                    | Fault::QuicDead
                    | Fault::Degraded,
                ),
                true,
            ) => [ok(), vec![inconclusive]].concat(),
            (Some(Fault::Degraded), false) => [censored, vec![inconclusive]].concat(),
            (Some(Fault::ControlStarved), false) => censored
                .into_iter()
                .flat_map(|outcome| {
                    let anomaly = Outcome::new(Verdict::Anomaly, outcome.blocking, &[]);
                    [outcome, anomaly, inconclusive.clone()]
                })
                .collect(),
        }
    }
}

/// How the probe's rules say a network failing new connections: too many of the
/// connects it answered went unanswered at first.
const FAILING_NEW_FLOWS: &str = "while the probe's network was failing new connections";

/// `censored` on a benign fault's network, with what such a fault may hide.
///
/// A link that loses packets slows the control-SNI twin as well as the throttled
/// transfer, and now and then the fetch with its own name after it less, or brings the
/// throttled transfer in bursts between stalls: where the twin (the first one, or both)
/// falls short of the ratio, the name's fetch again came faster, or the transfer came
/// in bursts (left as cut off by the deadline), the honest verdict is a slow path, not
/// a throttle of the name; and where it stalled for seconds while the twin, slowed by
/// the loss too, neither froze nor read the whole body, nothing tells the throttle
/// from a stall of the path; nor where it stopped dead and its fetch again, slowed by
/// the loss too, was still coming at the deadline. A NAT table full now and then leaves a new flow without
/// room: a TCP connect has six tries to find some, a QUIC handshake two, so a blocked
/// QUIC handshake's silence may be no longer told from the network's. And where a
/// lossy link left many copies of the run's other queries unanswered at first (half,
/// in a run that showed it), all of a dropped name's copies going unanswered is no
/// sign. Nor need a split ClientHello get through a stateless filter of the name: it
/// gets as many tries as any step, and a lost packet in each leaves it silent, which
/// says nothing of the censor (the block itself is still shown). And where every copy's
/// real answer was lost while the injector's forged ones came, the race is not seen:
/// the forged answer alone reads as a resolver's lie (`dns-hijack`), blocked still. An
/// ECH block may read `inconclusive` where the loss failed the handshakes without ECH
/// too: a block of the whole address cannot be told from one of ECH then, and the
/// neighbour on the address meets what may be a residual block its failure set off.
fn benign(censored: Vec<Outcome>) -> Vec<Outcome> {
    let mut censored = unproven(censored, SPLIT_PASSED);
    if censored
        .iter()
        .any(|o| o.blocking == Some(Blocking::DnsInjection))
    {
        censored.push(Outcome::new(
            Verdict::Blocked,
            Some(Blocking::DnsHijack),
            &["consistent with neither the control's answers"],
        ));
    }
    let slow = excused(
        censored,
        Blocking::Throttled,
        &[
            "as slow with the control SNI",
            "no longer capped once fetched again",
            "the first control-SNI twin fell short",
            "cut off by the deadline",
            "nothing tells a freeze from a stall of the path",
            "a path that stalled for a while, not a freeze of the name",
        ],
    );
    let crowded = excused(slow, Blocking::QuicBlocked, &[FAILING_NEW_FLOWS]);
    let ech = excused(
        crowded,
        Blocking::EchBlocked,
        &[
            "cannot be told from one of ECH",
            "residual blocking set off by another target",
        ],
    );
    excused(
        ech,
        Blocking::DnsFailure,
        &["while the resolver was dropping queries"],
    )
}

/// The evidence that a split ClientHello passed a filter of the name.
const SPLIT_PASSED: &str = "a split ClientHello passed: stateless DPI";

/// `outcomes`, and each that asks for `evidence` once more without it: a fault that can
/// keep the probe from showing that much, and not more.
fn unproven(outcomes: Vec<Outcome>, evidence: &str) -> Vec<Outcome> {
    let lesser: Vec<Outcome> = outcomes
        .iter()
        .filter(|o| o.evidence.iter().any(|e| e == evidence))
        .map(|o| Outcome {
            evidence: o
                .evidence
                .iter()
                .filter(|e| *e != evidence)
                .cloned()
                .collect(),
            ..o.clone()
        })
        .collect();
    [outcomes, lesser].concat()
}

/// `censored`, and `inconclusive` saying one of `reasons` besides where one of them is
/// of `kind`: a fault that can hide that kind of blocking, and only that kind.
fn excused(censored: Vec<Outcome>, kind: Blocking, reasons: &[&str]) -> Vec<Outcome> {
    let hidden = censored.iter().any(|o| o.blocking == Some(kind));
    let mut outcomes = censored;
    if hidden {
        outcomes.extend(
            reasons
                .iter()
                .map(|why| Outcome::new(Verdict::Inconclusive, None, &[why])),
        );
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const TESTBED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/testbed");

    #[test]
    fn the_catalog_reads() {
        let catalog = Catalog::load().unwrap();
        let hijack = catalog.scenario("dns-hijack").unwrap();
        assert_eq!(
            hijack.outcome().unwrap(),
            &Outcome::new(Verdict::Blocked, Some(Blocking::DnsHijack), &[])
        );
        assert_eq!(
            catalog.scenario("lossy").unwrap().fault,
            Some(Fault::Benign)
        );
        assert!(catalog.scenario("all").unwrap().outcome().is_err());
    }

    /// The shell implements each scenario as scripts/testbed/scenarios/NAME.sh: every
    /// file has its entry, and every entry its file.
    #[test]
    fn every_scenario_of_the_testbed_is_in_the_catalog_and_only_those() {
        let files: BTreeSet<String> = std::fs::read_dir(format!("{TESTBED}/scenarios"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "sh"))
            .map(|path| path.file_stem().unwrap().to_str().unwrap().to_string())
            .collect();
        let catalog = Catalog::load().unwrap();
        let named: BTreeSet<String> = catalog.scenarios().iter().map(|s| s.name.clone()).collect();
        assert_eq!(files, named, "scripts/testbed/scenarios/ against {FILE}");
    }

    /// all.sh includes what the catalog's `all` does.
    #[test]
    fn all_includes_the_same_scenarios_in_the_shell_and_the_catalog() {
        let script = std::fs::read_to_string(format!("{TESTBED}/scenarios/all.sh")).unwrap();
        let joined = script.replace("\\\n", " ");
        let included: Vec<&str> = joined
            .lines()
            .find_map(|line| line.strip_prefix("include "))
            .expect("all.sh includes the scenarios")
            .split_whitespace()
            .collect();
        let catalog = Catalog::load().unwrap();
        assert_eq!(included, catalog.scenario("all").unwrap().includes);
    }

    #[test]
    fn errors_name_the_entry() {
        let error =
            Catalog::parse("[[scenario]]\nname = \"x\"\ncensor = \"y\"\nverdict = \"blockd\"\n")
                .unwrap_err();
        assert!(format!("{error:#}").contains("scenario \"x\""), "{error:#}");
        let error = Catalog::parse(
            "[[scenario]]\nname = \"x\"\ncensor = \"y\"\nverdict = \"ok\"\nblocking = \"dns-hijack\"\n",
        )
        .unwrap_err();
        assert!(format!("{error:#}").contains("scenario \"x\""), "{error:#}");
        let error =
            Catalog::parse("[[scenario]]\nname = \"x\"\ncensor = \"y\"\nincludes = [\"z\"]\n")
                .unwrap_err();
        assert!(format!("{error:#}").contains("\"z\""), "{error:#}");
    }

    /// Residual blocking with every censorship scenario: its entries replace
    /// sni-filter's for signal's targets, and a fault's rule applies to the rest.
    #[test]
    fn a_later_scenario_replaces_an_earlier_ones_outcomes() {
        let catalog = Catalog::load().unwrap();
        let case = catalog.case(&["all", "residual"]).unwrap();
        let signal = case.allowed("signal.test");
        assert_eq!(signal.len(), 2, "{signal:?}");
        assert_eq!(signal[0].blocking, Some(Blocking::TlsTimeout));
        assert_eq!(signal[1].verdict, Verdict::Inconclusive);
        assert_eq!(
            case.allowed("instagram.test")[0].blocking,
            Some(Blocking::DnsHijack)
        );
        assert_eq!(case.allowed("canary.test")[0].verdict, Verdict::Ok);
        let dead = catalog.case(&["all", "resolver-down"]).unwrap();
        assert_eq!(dead.allowed("facebook.test").len(), 3);
        assert_eq!(dead.allowed("198.19.1.1:443")[0].verdict, Verdict::Blocked);
        assert!(dead.flagged("smallsite.test").is_none());
    }

    /// A full NAT table may hide a blackhole, with the network's failing in the
    /// evidence; a lossy link may not.
    #[test]
    fn a_full_nat_table_may_hide_a_blackhole_and_a_lossy_link_may_not() {
        let catalog = Catalog::load().unwrap();
        let hidden = |fault: &str, target: &str| {
            let case = catalog.case(&["all", fault]).unwrap();
            let allowed = case.allowed(target);
            assert_eq!(
                allowed[0].blocking,
                Some(Blocking::TcpBlackhole),
                "{allowed:?}"
            );
            allowed
                .iter()
                .filter(|o| o.verdict == Verdict::Inconclusive)
                .flat_map(|o| o.evidence.clone())
                .collect::<Vec<_>>()
        };
        let nat = hidden("nat-small", "198.19.1.1:443");
        assert!(nat.iter().any(|e| e == FAILING_NEW_FLOWS), "{nat:?}");
        assert!(nat.iter().any(|e| e.contains("down as the step ended")));
        assert_eq!(hidden("lossy", "198.19.1.1:443"), Vec::<String>::new());
        assert_eq!(hidden("nat-small", "telegram.test").len(), nat.len());
        // A dropped name's lookups may read as a resolver dropping queries on either.
        let lossy = catalog.case(&["all", "lossy"]).unwrap();
        let dropped = lossy.allowed("youtube.test");
        assert_eq!(dropped[0].blocking, Some(Blocking::DnsFailure));
        assert_eq!(
            dropped[1],
            Outcome::new(
                Verdict::Inconclusive,
                None,
                &["while the resolver was dropping queries"]
            )
        );
    }

    /// A lossy link may keep a split ClientHello from showing a stateless filter, never
    /// the block itself; without a fault, the split one must show it.
    #[test]
    fn a_lossy_link_may_hide_what_a_split_hello_shows_and_not_the_block() {
        let catalog = Catalog::load().unwrap();
        let evidence = |case: &[&str]| {
            let case = catalog.case(case).unwrap();
            let allowed = case.allowed("signal.test");
            assert!(
                allowed
                    .iter()
                    .all(|o| o.blocking == Some(Blocking::TlsReset))
            );
            allowed.into_iter().map(|o| o.evidence).collect::<Vec<_>>()
        };
        assert_eq!(
            evidence(&["sni-filter"]),
            [vec!["canary.test".to_string(), SPLIT_PASSED.into()]]
        );
        assert_eq!(
            evidence(&["all", "lossy"]),
            [
                vec!["canary.test".to_string(), SPLIT_PASSED.into()],
                vec!["canary.test".to_string()]
            ]
        );
        // An injection whose real answers were all lost shows as the forged one alone.
        let kinds = |case: &[&str]| -> Vec<Option<Blocking>> {
            let case = catalog.case(case).unwrap();
            case.allowed("facebook.test")
                .iter()
                .map(|o| o.blocking)
                .collect()
        };
        assert_eq!(kinds(&["dns-injection"]), [Some(Blocking::DnsInjection)]);
        assert!(kinds(&["all", "lossy"]).contains(&Some(Blocking::DnsHijack)));
        // An ECH block whose handshakes without ECH the loss failed too: inconclusive.
        let ech = |case: &[&str]| catalog.case(case).unwrap().allowed("cloudflare-ech.test");
        let inconclusive =
            |outcomes: Vec<Outcome>| outcomes.iter().any(|o| o.verdict == Verdict::Inconclusive);
        assert!(!inconclusive(ech(&["ech-block"])));
        assert!(inconclusive(ech(&["all", "lossy"])));
    }
}
