//! targets.toml: the services to measure and the run's settings.
//!
//! Parsed once, at the edge, into typed values. Every mistake stops the run before
//! anything is measured, with an error that names the file, the line and the key,
//! because a volunteer on a slow link should not learn about a typo an hour in.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use toml::Spanned;
use url::Url;

/// Where and how DNS is asked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ResolverSpec {
    /// The nameservers of the system's resolv.conf, queried over UDP by the probe itself.
    System,
    Udp(SocketAddr),
    Tcp(SocketAddr),
    /// DNS over HTTPS; the URL is the https:// form of `doh://HOST[:PORT]/PATH`.
    Doh(Url),
}

impl FromStr for ResolverSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "system" {
            return Ok(ResolverSpec::System);
        }
        let socket = |rest: &str| {
            rest.parse::<SocketAddr>().map_err(|_| {
                format!("{s:?}: expected IP:PORT after the scheme (e.g. udp://8.8.8.8:53)")
            })
        };
        if let Some(rest) = s.strip_prefix("udp://") {
            return socket(rest).map(ResolverSpec::Udp);
        }
        if let Some(rest) = s.strip_prefix("tcp://") {
            return socket(rest).map(ResolverSpec::Tcp);
        }
        if let Some(rest) = s.strip_prefix("doh://") {
            let url = Url::parse(&format!("https://{rest}"))
                .map_err(|e| format!("{s:?}: not a DoH URL: {e}"))?;
            if url.host().is_none() {
                return Err(format!("{s:?}: a DoH resolver needs a host"));
            }
            return Ok(ResolverSpec::Doh(url));
        }
        Err(format!(
            "{s:?}: a resolver is \"system\", udp://IP:PORT, tcp://IP:PORT or doh://HOST/PATH"
        ))
    }
}

impl fmt::Display for ResolverSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolverSpec::System => f.write_str("system"),
            ResolverSpec::Udp(addr) => write!(f, "udp://{addr}"),
            ResolverSpec::Tcp(addr) => write!(f, "tcp://{addr}"),
            ResolverSpec::Doh(url) => write!(f, "doh://{}", &url.as_str()["https://".len()..]),
        }
    }
}

impl From<ResolverSpec> for String {
    fn from(r: ResolverSpec) -> String {
        r.to_string()
    }
}

impl TryFrom<String> for ResolverSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// `[settings]`: every field optional; command-line flags override them, and what
/// neither gives has its default in [`super::settings`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub timeout: Option<Duration>,
    pub concurrency: Option<usize>,
    pub per_host: Option<usize>,
    pub resolvers: Option<Vec<ResolverSpec>>,
    pub canary: Option<String>,
    pub treat_as_public: Vec<IpNet>,
    pub tls_ports: Option<Vec<u16>>,
    pub tcp_ports: Option<Vec<u16>>,
    pub quic_ports: Option<Vec<u16>>,
}

/// One `[[service]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub domains: Vec<String>,
    pub urls: Vec<Url>,
    pub endpoints: Vec<SocketAddr>,
    /// The ASNs its addresses are expected in (AS32934 for Facebook and Instagram).
    pub asns: Vec<u32>,
    /// Ports its domains get a TCP connect and TLS handshakes on (default 443).
    pub tls_ports: Option<Vec<u16>>,
    /// Ports its domains get a TCP connect on (default 80).
    pub tcp_ports: Option<Vec<u16>>,
    /// Ports its domains, and its HTTPS URLs on them, get QUIC handshakes on (default
    /// 443; none: no QUIC).
    pub quic_ports: Option<Vec<u16>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetsFile {
    pub settings: Settings,
    pub services: Vec<Service>,
}

/// A mistake in a targets file, located for a person to fix.
#[derive(Debug, thiserror::Error)]
pub struct TargetsError {
    pub file: PathBuf,
    /// A line of the file (1 for an empty file).
    pub line: usize,
    /// The key at fault; empty when there is none (a file that ends too soon).
    pub key: String,
    pub message: String,
}

impl fmt::Display for TargetsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// The targets censorprobe measures unless told otherwise: the repository's
/// targets.toml, built in so that an installed binary works from any directory.
pub const SHIPPED: &str = include_str!("../../targets.toml");

/// How the built-in targets are named in errors and in run.json.
pub const SHIPPED_NAME: &str = "built-in targets";

impl TargetsFile {
    /// The built-in targets.
    pub fn shipped() -> TargetsFile {
        TargetsFile::parse(SHIPPED, Path::new(SHIPPED_NAME))
            .expect("the built-in targets parse (a unit test checks them)")
    }

    pub fn load(path: &Path) -> anyhow::Result<TargetsFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read targets file {}: {e}", path.display()))?;
        Ok(TargetsFile::parse(&text, path)?)
    }

    /// Parses the text of a targets file; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<TargetsFile, TargetsError> {
        let at = Locator { text, path };
        let raw: RawFile = toml::from_str(text).map_err(|e| at.toml_error(&e))?;
        let settings = match raw.settings {
            Some(s) => s.into_inner().validate(&at)?,
            None => Settings::default(),
        };
        let mut names = HashSet::new();
        let mut services = Vec::new();
        for raw_service in raw.service {
            let span = raw_service.span();
            let service = raw_service.into_inner().validate(&at)?;
            if !names.insert(service.name.clone()) {
                return Err(at.error(
                    span,
                    "service.name",
                    format!("service {:?} is defined twice", service.name),
                ));
            }
            services.push(service);
        }
        // A file of [settings] alone is fine: a test list may bring the targets. A run
        // with nothing to measure is refused once both are read (run::prepare).
        Ok(TargetsFile { settings, services })
    }
}

struct Locator<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Locator<'_> {
    /// The line of `offset`. The white space that ends a file belongs to its last line:
    /// an error at the end of the file (an array never closed) points at a line there is.
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.end())].matches('\n').count() + 1
    }

    /// Where the file's text ends, trailing white space left out.
    fn end(&self) -> usize {
        self.text.trim_end().len()
    }

    fn error(&self, span: Range<usize>, key: &str, message: String) -> TargetsError {
        TargetsError {
            file: self.path.to_path_buf(),
            line: self.line_of(span.start),
            key: key.to_string(),
            message,
        }
    }

    /// toml's own errors carry a span but not always the key: take the key from the
    /// text of the line the span points at.
    fn toml_error(&self, err: &toml::de::Error) -> TargetsError {
        let span = err.span().unwrap_or(0..0);
        let message = err.message().trim().to_string();
        if span.start >= self.end() {
            // Past the last key: the file ended before what it opened was closed.
            return self.error(span, "", format!("{message} (at the end of the file)"));
        }
        let line_start = self.text[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let line_text = self.text[line_start..].lines().next().unwrap_or("");
        let key = match line_text.split_once('=') {
            Some((key, _)) => key.trim().to_string(),
            None => line_text.trim().to_string(),
        };
        self.error(span, &key, message)
    }

    fn each<T>(
        &self,
        key: &str,
        items: Vec<Spanned<String>>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, TargetsError> {
        items
            .into_iter()
            .map(|item| {
                parse(item.get_ref()).map_err(|message| self.error(item.span(), key, message))
            })
            .collect()
    }

    fn ports(
        &self,
        key: &str,
        ports: Option<Vec<Spanned<u16>>>,
    ) -> Result<Option<Vec<u16>>, TargetsError> {
        let Some(ports) = ports else { return Ok(None) };
        ports
            .into_iter()
            .map(|p| match *p.get_ref() {
                0 => Err(self.error(p.span(), key, "port 0 is not a port".into())),
                port => Ok(port),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    settings: Option<Spanned<RawSettings>>,
    #[serde(default)]
    service: Vec<Spanned<RawService>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    timeout_secs: Option<Spanned<f64>>,
    concurrency: Option<Spanned<usize>>,
    per_host: Option<Spanned<usize>>,
    resolvers: Option<Vec<Spanned<String>>>,
    canary: Option<Spanned<String>>,
    #[serde(default)]
    treat_as_public: Vec<Spanned<String>>,
    tls_ports: Option<Vec<Spanned<u16>>>,
    tcp_ports: Option<Vec<Spanned<u16>>>,
    quic_ports: Option<Vec<Spanned<u16>>>,
}

impl RawSettings {
    fn validate(self, at: &Locator) -> Result<Settings, TargetsError> {
        let timeout = match self.timeout_secs {
            Some(t) => Some(
                parse_timeout(*t.get_ref())
                    .map_err(|m| at.error(t.span(), "settings.timeout_secs", m))?,
            ),
            None => None,
        };
        let positive = |key: &str, v: Option<Spanned<usize>>| match v {
            Some(v) if *v.get_ref() == 0 => {
                Err(at.error(v.span(), key, "must be at least 1".into()))
            }
            v => Ok(v.map(Spanned::into_inner)),
        };
        Ok(Settings {
            timeout,
            concurrency: positive("settings.concurrency", self.concurrency)?,
            per_host: positive("settings.per_host", self.per_host)?,
            resolvers: self
                .resolvers
                .map(|r| at.each("settings.resolvers", r, str::parse))
                .transpose()?,
            canary: self
                .canary
                .map(|c| at.each("settings.canary", vec![c], parse_domain))
                .transpose()?
                .and_then(|mut v| v.pop()),
            treat_as_public: at.each(
                "settings.treat_as_public",
                self.treat_as_public,
                parse_cidr,
            )?,
            tls_ports: at.ports("settings.tls_ports", self.tls_ports)?,
            tcp_ports: at.ports("settings.tcp_ports", self.tcp_ports)?,
            quic_ports: at.ports("settings.quic_ports", self.quic_ports)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    #[serde(default)]
    domains: Vec<Spanned<String>>,
    #[serde(default)]
    urls: Vec<Spanned<String>>,
    #[serde(default)]
    endpoints: Vec<Spanned<String>>,
    #[serde(default)]
    asns: Vec<u32>,
    tls_ports: Option<Vec<Spanned<u16>>>,
    tcp_ports: Option<Vec<Spanned<u16>>>,
    quic_ports: Option<Vec<Spanned<u16>>>,
}

impl RawService {
    fn validate(self, at: &Locator) -> Result<Service, TargetsError> {
        let name = self.name.get_ref().trim().to_string();
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_name {
            return Err(at.error(
                self.name.span(),
                "service.name",
                format!("{name:?}: a service name is letters, digits, '-', '_' or '.'"),
            ));
        }
        let key = |k: &str| format!("service {name:?}: {k}");
        if self.domains.is_empty() && self.urls.is_empty() && self.endpoints.is_empty() {
            return Err(at.error(
                self.name.span(),
                &key("name"),
                "the service is empty: give it domains, urls or endpoints".into(),
            ));
        }
        Ok(Service {
            domains: at.each(&key("domains"), self.domains, parse_domain)?,
            urls: at.each(&key("urls"), self.urls, parse_url)?,
            endpoints: at.each(&key("endpoints"), self.endpoints, parse_endpoint)?,
            asns: self.asns,
            tls_ports: at.ports(&key("tls_ports"), self.tls_ports)?,
            tcp_ports: at.ports(&key("tcp_ports"), self.tcp_ports)?,
            quic_ports: at.ports(&key("quic_ports"), self.quic_ports)?,
            name,
        })
    }
}

pub fn parse_timeout(secs: f64) -> Result<Duration, String> {
    if secs.is_finite() && secs > 0.0 && secs <= 3600.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!(
            "{secs}: a timeout is a number of seconds above 0 and at most 3600"
        ))
    }
}

/// A DNS name to resolve: ASCII, labels of 1 to 63 letters, digits, '-' or '_', at most
/// 253 characters, and not an IP address (those are endpoints).
pub fn parse_domain(s: &str) -> Result<String, String> {
    let name = s.trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if name.is_empty() || name.len() > 253 || !labels_ok {
        return Err(format!("{s:?} is not a domain name"));
    }
    if name.parse::<IpAddr>().is_ok()
        || name
            .split('.')
            .all(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!(
            "{s:?} is an address, not a domain: list it under endpoints as IP:PORT"
        ));
    }
    Ok(name)
}

pub fn parse_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{s:?}: only http:// and https:// URLs can be fetched"
        ));
    }
    if url.host().is_none() {
        return Err(format!("{s:?}: the URL has no host"));
    }
    Ok(url)
}

pub fn parse_endpoint(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s.parse().map_err(|_| {
        format!(
            "{s:?} is not an endpoint: write IP:PORT, e.g. 149.154.175.50:443 or [2001:db8::1]:443"
        )
    })?;
    if addr.port() == 0 {
        return Err(format!("{s:?}: port 0 is not a port"));
    }
    Ok(addr)
}

pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not a CIDR block (e.g. 198.18.0.0/15)"))
}

/// The service whose fate tells whether the probe has a network at all.
pub const CANARY_SERVICE: &str = "canary";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum TargetKind {
    Domain(String),
    Endpoint(SocketAddr),
    Url(Url),
}

/// One target of the plan, one verdict row: what is measured, with its service's ports.
///
/// What a service's targets have in common (its name, ports and ASNs) is shared among
/// them, not copied: a plan of 100,000 targets holds each once, and a target sent to a
/// task in flight is cloned without allocating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub service: Arc<str>,
    #[serde(flatten)]
    pub kind: TargetKind,
    /// Ports a domain gets a TCP connect and TLS handshakes on.
    pub tls_ports: Arc<[u16]>,
    /// Ports a domain gets a TCP connect on.
    pub tcp_ports: Arc<[u16]>,
    /// Ports a domain gets QUIC handshakes on; an HTTPS URL on one of them gets one too.
    #[serde(default = "empty", skip_serializing_if = "is_empty")]
    pub quic_ports: Arc<[u16]>,
    /// ASNs the service's addresses are expected in.
    #[serde(default = "empty", skip_serializing_if = "is_empty")]
    pub asns: Arc<[u32]>,
}

/// A shared list with nothing in it (serde's default for one left out).
pub fn empty<T>() -> Arc<[T]> {
    Arc::new([])
}

/// Whether a shared list is empty (serde's test for leaving it out).
pub fn is_empty<T>(list: &Arc<[T]>) -> bool {
    list.is_empty()
}

/// Which of the three a target is, without its value: the `target_kind` column of
/// verdicts.csv, so that rows can be filtered by it without reading run.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindName {
    Domain,
    Endpoint,
    Url,
}

impl KindName {
    /// The kind of a target as it is named in result rows (see [`TargetKind::parse`]):
    /// a URL has a scheme, an endpoint is an `IP:PORT`, anything else is a domain.
    pub fn of(name: &str) -> KindName {
        if name.contains("://") {
            KindName::Url
        } else if name.parse::<SocketAddr>().is_ok() {
            KindName::Endpoint
        } else {
            KindName::Domain
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KindName::Domain => "domain",
            KindName::Endpoint => "endpoint",
            KindName::Url => "url",
        }
    }
}

impl TargetKind {
    /// Reads a target as it is named in result rows: a URL, an `IP:PORT` endpoint, or a
    /// domain.
    pub fn parse(name: &str) -> Result<TargetKind, String> {
        match KindName::of(name) {
            KindName::Url => parse_url(name).map(TargetKind::Url),
            KindName::Endpoint => parse_endpoint(name).map(TargetKind::Endpoint),
            KindName::Domain => parse_domain(name).map(TargetKind::Domain),
        }
    }
}

impl Target {
    /// The host name a target's DNS is about, if it has one.
    pub fn hostname(&self) -> Option<&str> {
        match &self.kind {
            TargetKind::Domain(d) => Some(d),
            TargetKind::Url(u) => match u.host() {
                Some(url::Host::Domain(d)) => Some(d),
                _ => None,
            },
            TargetKind::Endpoint(_) => None,
        }
    }

    /// The address a target names itself, if it does: an endpoint, or a URL's host.
    pub fn literal_address(&self) -> Option<IpAddr> {
        match &self.kind {
            TargetKind::Endpoint(address) => Some(address.ip()),
            TargetKind::Url(url) => match url.host()? {
                url::Host::Ipv4(ip) => Some(ip.into()),
                url::Host::Ipv6(ip) => Some(ip.into()),
                url::Host::Domain(_) => None,
            },
            TargetKind::Domain(_) => None,
        }
    }

    pub fn is_canary(&self) -> bool {
        *self.service == *CANARY_SERVICE
    }
}

/// How a target is named in result rows.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TargetKind::Domain(d) => f.write_str(d),
            TargetKind::Endpoint(e) => write!(f, "{e}"),
            TargetKind::Url(u) => f.write_str(u.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TargetsFile, TargetsError> {
        TargetsFile::parse(text, Path::new("targets.toml"))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    const GOOD: &str = r#"
[settings]
timeout_secs = 5
resolvers = ["system", "udp://8.8.8.8:53", "doh://1.1.1.1/dns-query"]
canary = "example.com"
treat_as_public = ["198.18.0.0/15"]

[[service]]
name = "telegram"
domains = ["telegram.org", "Web.Telegram.org."]
urls = ["https://web.telegram.org/"]
endpoints = ["149.154.175.50:443", "[2001:db8::1]:80"]
asns = [62041]
tls_ports = [8443]
"#;

    #[test]
    fn parses_a_good_file() {
        let file = parse(GOOD).unwrap();
        assert_eq!(file.settings.timeout, Some(Duration::from_secs(5)));
        assert_eq!(
            file.settings.resolvers.as_ref().unwrap()[2].to_string(),
            "doh://1.1.1.1/dns-query"
        );
        let s = &file.services[0];
        assert_eq!(s.domains, ["telegram.org", "web.telegram.org"]);
        assert_eq!(s.endpoints[1].port(), 80);
        assert_eq!(s.tls_ports, Some(vec![8443]));
        assert_eq!(s.tcp_ports, None);
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = error("[[service]]\nname = \"x\"\ndomain = [\"a.org\"]\n");
        assert!(e.starts_with("targets.toml:3: domain: "), "{e}");
        assert!(e.contains("unknown field `domain`"), "{e}");
    }

    /// Found by fuzzing (fuzz/seeds/targets_toml/crash-array-open-at-end-of-file.toml):
    /// an error at the end of the file named the line after the last one, and no key.
    #[test]
    fn a_file_that_ends_too_soon_names_its_last_line() {
        let e = error("[[service]]\nname = \"tg\"\ndomains = [\"a.org\",\n\n\n");
        assert!(e.starts_with("targets.toml:3: "), "{e}");
        assert!(e.ends_with("(at the end of the file)"), "{e}");
        assert!(!e.contains(": :"), "{e}");
    }

    #[test]
    fn bad_address_names_line_and_key() {
        let e = error("[[service]]\nname = \"tg\"\n\nendpoints = [\"149.154.175.50\"]\n");
        assert!(
            e.starts_with("targets.toml:4: service \"tg\": endpoints: "),
            "{e}"
        );
        assert!(e.contains("IP:PORT"), "{e}");
    }

    #[test]
    fn bad_port_names_line_and_key() {
        let e = error("[[service]]\nname = \"tg\"\ndomains = [\"a.org\"]\ntls_ports = [70000]\n");
        assert!(e.starts_with("targets.toml:4: tls_ports: "), "{e}");
        let e = error("[[service]]\nname = \"tg\"\ndomains = [\"a.org\"]\ntcp_ports = [0]\n");
        assert!(
            e.starts_with("targets.toml:4: service \"tg\": tcp_ports: port 0"),
            "{e}"
        );
        let e = error("[[service]]\nname = \"tg\"\nendpoints = [\"1.2.3.4:0\"]\n");
        assert!(e.contains("endpoints: \"1.2.3.4:0\": port 0"), "{e}");
    }

    #[test]
    fn bad_url_names_line_and_key() {
        let e = error("[[service]]\nname = \"yt\"\nurls = [\"ftp://youtube.com/\"]\n");
        assert!(
            e.starts_with("targets.toml:3: service \"yt\": urls: "),
            "{e}"
        );
        let e = error("[[service]]\nname = \"yt\"\nurls = [\"not a url\"]\n");
        assert!(e.contains("is not a URL"), "{e}");
    }

    #[test]
    fn empty_service_is_an_error() {
        let e = error("[[service]]\nname = \"fb\"\n[[service]]\nname = \"empty\"\n");
        assert!(
            e.starts_with("targets.toml:2: service \"fb\": name: the service is empty"),
            "{e}"
        );
    }

    #[test]
    fn bad_settings_are_errors() {
        let e = error(
            "[settings]\nresolvers = [\"8.8.8.8\"]\n[[service]]\nname=\"a\"\ndomains=[\"a.org\"]\n",
        );
        assert!(e.starts_with("targets.toml:2: settings.resolvers: "), "{e}");
        let e =
            error("[settings]\ntimeout_secs = -1\n[[service]]\nname=\"a\"\ndomains=[\"a.org\"]\n");
        assert!(
            e.starts_with("targets.toml:2: settings.timeout_secs: "),
            "{e}"
        );
        let e = error(
            "[settings]\ntreat_as_public = [\"10.0.0.0/33\"]\n[[service]]\nname=\"a\"\ndomains=[\"a.org\"]\n",
        );
        assert!(
            e.starts_with("targets.toml:2: settings.treat_as_public: "),
            "{e}"
        );
        let e = error(
            "[settings]\ntimeout_secs = \"ten\"\n[[service]]\nname=\"a\"\ndomains=[\"a.org\"]\n",
        );
        assert!(e.starts_with("targets.toml:2: timeout_secs: "), "{e}");
    }

    #[test]
    fn bad_domains_and_duplicates_are_errors() {
        let e = error("[[service]]\nname = \"a\"\ndomains = [\"https://a.org/\"]\n");
        assert!(e.contains("is not a domain name"), "{e}");
        let e = error("[[service]]\nname = \"a\"\ndomains = [\"1.2.3.4\"]\n");
        assert!(e.contains("list it under endpoints"), "{e}");
        let e = error(
            "[[service]]\nname = \"a\"\ndomains = [\"a.org\"]\n[[service]]\nname = \"a\"\ndomains = [\"b.org\"]\n",
        );
        assert!(
            e.starts_with("targets.toml:4: service.name: service \"a\" is defined twice"),
            "{e}"
        );
        assert!(
            parse("[settings]\ncanary = \"a.org\"\n")
                .unwrap()
                .services
                .is_empty()
        );
    }

    #[test]
    fn the_built_in_targets_parse() {
        let file = TargetsFile::shipped();
        let names: Vec<_> = file.services.iter().map(|s| s.name.as_str()).collect();
        for service in ["telegram", "facebook", "instagram", "youtube", "twitter"] {
            assert!(names.contains(&service), "{service} missing from {names:?}");
        }
        assert!(file.settings.canary.is_some());
    }
}
