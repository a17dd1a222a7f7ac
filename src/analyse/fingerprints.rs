//! Known fingerprints of pages that are not the site's own: censors' blockpages
//! (addresses in DNS answers, patterns in HTTP responses), and the challenge,
//! access-denied and error pages that a CDN or web application firewall serves in the
//! site's place.
//!
//! Blockpages: a small table on purpose, only fingerprints that are specific to a
//! censor and have no known false positives. Source: ooni/blocking-fingerprints (commit
//! 171641e, 2024-10, columns `location_found`, `pattern_type`, `pattern`), cross-checked
//! with Citizen Lab's filtering-annotations. A match proves interference; the absence
//! of a match proves nothing.
//!
//! CDN pages: the site's own CDN serves them to some networks and not to others (a bot
//! challenge, a country or address the site refuses), so a page compared with the
//! control's reads as blocking (OONI's known false positive, ooni/probe#1734, #2528).
//! Sources: the `fp` rows of ooni/blocking-fingerprints, Censored Planet's
//! `false_positive_signatures.json` (censoredplanet-analysis, 2022-04), the vendors'
//! documentation and public captures of the pages; each entry names its own. Every
//! entry identifies the CDN's page itself, not any page served through the CDN
//! (`server: cloudflare` and `cf-ray` are on every page behind Cloudflare). A match is
//! evidence against censorship on that path: the request reached the CDN, which
//! answered for the site.

use std::net::IpAddr;

use crate::facts::HttpHop;

/// A censor's own address handed out in place of the real one.
pub struct DnsFingerprint {
    pub address: &'static str,
    pub name: &'static str,
}

pub const DNS: &[DnsFingerprint] = &[
    DnsFingerprint {
        address: "10.10.34.34",
        name: "Iran's national blockpage (dns.ir)",
    },
    DnsFingerprint {
        address: "10.10.34.35",
        name: "Iran's national blockpage (dns.ir)",
    },
    DnsFingerprint {
        address: "10.10.34.36",
        name: "Iran's national blockpage (dns.ir)",
    },
    DnsFingerprint {
        address: "d0::11",
        name: "Iran's national blockpage (dns.ir, IPv6)",
    },
    DnsFingerprint {
        address: "95.167.13.50",
        name: "Rostelecom's blockpage (Russia)",
    },
    DnsFingerprint {
        address: "95.167.13.51",
        name: "Rostelecom's blockpage (Russia)",
    },
    DnsFingerprint {
        address: "195.175.254.2",
        name: "Turkey's BTK blockpage",
    },
];

pub fn dns_blockpage(ip: IpAddr) -> Option<&'static str> {
    DNS.iter()
        .find(|f| f.address.parse::<IpAddr>().ok() == Some(ip))
        .map(|f| f.name)
}

/// Where in a response a pattern is looked for.
pub enum Where {
    Body,
    /// The value of the header of this (lower-case) name.
    Header(&'static str),
}

impl Where {
    /// `pattern` occurs here: a substring, matched case-sensitively as in the sources.
    fn has(&self, hop: &HttpHop, pattern: &str) -> bool {
        match self {
            Where::Body => hop.body_prefix.contains(pattern),
            Where::Header(name) => hop.header(name).is_some_and(|v| v.contains(pattern)),
        }
    }
}

struct HttpFingerprint {
    found_in: Where,
    /// A substring, matched case-sensitively as in the source table.
    pattern: &'static str,
    name: &'static str,
}

const HTTP: &[HttpFingerprint] = &[
    HttpFingerprint {
        found_in: Where::Body,
        pattern: "iframe src=\"http://10.10",
        name: "Iran's national blockpage (iframe to 10.10.34.34)",
    },
    HttpFingerprint {
        found_in: Where::Body,
        pattern: "peyvandha.ir",
        name: "Iran's national blockpage (peyvandha.ir)",
    },
    HttpFingerprint {
        found_in: Where::Header("location"),
        pattern: "warning.rt.ru",
        name: "Rostelecom's blockpage (Russia)",
    },
    HttpFingerprint {
        found_in: Where::Header("location"),
        pattern: "vk.com/blank.php?rkn=",
        name: "VK's Roskomnadzor notice (Russia)",
    },
    HttpFingerprint {
        found_in: Where::Body,
        pattern: "eais.rkn.gov.ru",
        name: "Roskomnadzor's registry notice (Russia)",
    },
    HttpFingerprint {
        found_in: Where::Body,
        pattern: "Telekomünikasyon İletişim Başkanlığı",
        name: "Turkey's BTK blockpage",
    },
    HttpFingerprint {
        found_in: Where::Body,
        pattern: "Güvenli İnternet Uyarı",
        name: "TTNet's blockpage (Turkey)",
    },
];

/// The name of the blockpage a response matches, if any. HTTP 451 (RFC 7725) is a
/// blockpage by definition.
pub fn http_blockpage(hop: &HttpHop) -> Option<&'static str> {
    if hop.status == Some(451) {
        return Some("HTTP 451 Unavailable For Legal Reasons");
    }
    HTTP.iter()
        .find(|f| f.found_in.has(hop, f.pattern))
        .map(|f| f.name)
}

/// What a CDN page must show besides its pattern, where the pattern alone could occur
/// on an ordinary page.
pub enum Also {
    /// Nothing: the pattern is the CDN's own, found on no other page.
    Nothing,
    /// One of these statuses: CDNs send their challenges and refusals as errors, while
    /// the same words in a 200 are a page about them.
    Status(&'static [u16]),
    /// A second pattern: each alone occurs elsewhere, both together only on this page.
    Pattern(Where, &'static str),
}

/// A page that a CDN or web application firewall serves in place of the site's own.
pub struct CdnFingerprint {
    pub found_in: Where,
    /// A substring, matched case-sensitively.
    pub pattern: &'static str,
    pub also: Also,
    pub name: &'static str,
    /// The dataset row, vendor documentation or public capture the pattern comes from.
    pub source: &'static str,
}

impl CdnFingerprint {
    fn matches(&self, hop: &HttpHop) -> bool {
        self.found_in.has(hop, self.pattern)
            && match &self.also {
                Also::Nothing => true,
                Also::Status(codes) => hop.status.is_some_and(|s| codes.contains(&s)),
                Also::Pattern(found_in, pattern) => found_in.has(hop, pattern),
            }
    }
}

/// Cloudflare's challenge statuses: 403 for the managed challenge and CAPTCHA, 503 for
/// the JavaScript challenge of "I'm Under Attack" mode.
const CLOUDFLARE_CHALLENGE: &[u16] = &[403, 503];

/// The statuses of Cloudflare's own error pages: 1xxx errors come as 403, 409, 429 or
/// 530, and the 5xx ones as themselves. Not 451: a legal block is a blockpage.
const CLOUDFLARE_ERROR: &[u16] = &[
    403, 409, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 525, 526, 527, 530,
];

/// In order: the first match names the page, so a specific entry comes before a
/// general one of the same CDN.
pub const CDN: &[CdnFingerprint] = &[
    CdnFingerprint {
        found_in: Where::Header("cf-mitigated"),
        pattern: "challenge",
        also: Also::Nothing,
        name: "Cloudflare's challenge page (cf-mitigated: challenge)",
        source: "Cloudflare, \"Detect a Challenge Page response\" (developers.cloudflare.com/cloudflare-challenges/challenge-types/challenge-pages/detect-response/): set on every challenge page, and only there",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "window._cf_chl_opt",
        also: Also::Status(CLOUDFLARE_CHALLENGE),
        name: "Cloudflare's challenge page (Just a moment...)",
        source: "captures of the challenge page (VeNoMouS/cloudscraper tests/fixtures/js_challenge_02_11_2021.html; a 2025 \"Just a moment...\" page saved in Husky169/kxz69web); statuses: Cloudflare, \"Error page types\", and RSS-Bridge/rss-bridge#2599",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "<title>Please Wait... | Cloudflare</title>",
        also: Also::Nothing,
        name: "Cloudflare's challenge page (Please Wait... | Cloudflare)",
        source: "ooni/blocking-fingerprints ooni.in_6, ooni.id_39, ooni.mm_http_2 (filed there as scope `prod`)",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "Checking your browser before accessing",
        also: Also::Pattern(Where::Body, "cf-browser-verification"),
        name: "Cloudflare's browser check (Checking your browser before accessing)",
        source: "Censored Planet false_positive_signatures.json x_cloudflare_check (ooni/blocking-fingerprints cp.fp_x_cloudflare_check); the second pattern from captures, VeNoMouS/cloudscraper tests/fixtures/js_challenge_*_2019/2020.html",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "<title>Attention Required! | Cloudflare</title>",
        also: Also::Nothing,
        name: "Cloudflare's block or CAPTCHA page (Attention Required! | Cloudflare)",
        source: "captures: VeNoMouS/cloudscraper tests/fixtures/reCaptcha_challenge_12_12_2019.html, pastebin.com/JyAhT3aK (a 403)",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "used Cloudflare to restrict access</title>",
        also: Also::Nothing,
        name: "Cloudflare's access-denied page (the site owner restricts access)",
        source: "capture: pastebin.com/ZjnFgENx (a 403, \"Access denied | <host> used Cloudflare to restrict access\")",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "id=\"cf-error-details\"",
        also: Also::Status(CLOUDFLARE_ERROR),
        name: "Cloudflare's error page (cf-error-details)",
        source: "the pages of Censored Planet x_cloudflare_error_1 (\"Ray ID:\") and x_cloudflare_error_2, by their markup; statuses: Cloudflare, \"Cloudflare 1xxx errors\" and \"Cloudflare 5xx errors\"",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "<H1>Access Denied</H1>",
        also: Also::Pattern(Where::Body, "Reference&#32;&#35;"),
        name: "Akamai's Access Denied page (Reference #18...)",
        source: "Censored Planet x_on_this_server and f_gen_access_denied, each too broad alone (Apache's 403 and any page); the entity-encoded reference from captures (cdn.redhat.com 403 with X-Cache: TCP_DENIED, AkamaiGHost) and Akamai, \"Why is Akamai blocking me?\"",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "An error occurred while processing your request.<p>",
        also: Also::Pattern(Where::Body, "Reference&#32;&#35;"),
        name: "Akamai's error page (Reference #...)",
        source: "Censored Planet x_generic_akamai_error (ooni/blocking-fingerprints cp.fp_x_generic_akamai_error); the reference from captures (Server: AkamaiGHost)",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "Incapsula incident ID",
        also: Also::Pattern(Where::Body, "/_Incapsula_Resource?CWUDNSAI="),
        name: "Imperva Incapsula's block page (Incapsula incident ID)",
        source: "captures of the page (200, 403 and 503, with X-Iinfo); not Censored Planet x_incapsula, the _Incapsula_Resource?SWJIYLWA script on every page Imperva serves",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "Sucuri WebSite Firewall - Access Denied",
        also: Also::Nothing,
        name: "Sucuri's firewall block page",
        source: "Censored Planet blockpage_signatures.json a_prod_sucurifw_1 (ooni/blocking-fingerprints cp.a_prod_sucurifw_1, scope `prod`); a capture: 403 with X-Sucuri-Block",
    },
    CdnFingerprint {
        found_in: Where::Header("x-amzn-waf-action"),
        pattern: "captcha",
        also: Also::Nothing,
        name: "AWS WAF's CAPTCHA (x-amzn-waf-action: captcha)",
        source: "AWS WAF Developer Guide, \"CAPTCHA and Challenge action behavior\" (405 with this header)",
    },
    CdnFingerprint {
        found_in: Where::Header("x-amzn-waf-action"),
        pattern: "challenge",
        also: Also::Nothing,
        name: "AWS WAF's challenge (x-amzn-waf-action: challenge)",
        source: "AWS WAF Developer Guide, \"CAPTCHA and Challenge action behavior\" (202 with this header)",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "configured to block access from your country",
        also: Also::Pattern(Where::Body, "Generated by cloudfront (CloudFront)"),
        name: "CloudFront's geo-restriction page (the site refuses the probe's country)",
        source: "CloudFront Developer Guide, \"HTTP 403 status code (Permission Denied)\", geographic restrictions; the text from a capture of the 403",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "Request blocked.",
        also: Also::Pattern(Where::Body, "Generated by cloudfront (CloudFront)"),
        name: "AWS WAF's block page at CloudFront (Request blocked.)",
        source: "CloudFront Developer Guide, \"HTTP 403 status code\", AWS WAF on the distribution; the text from captures of the 403",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "Generated by cloudfront (CloudFront)",
        also: Also::Nothing,
        name: "CloudFront's error page (The request could not be satisfied)",
        source: "captures of CloudFront's error pages (400, 403, 502), all signed with this line",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "/.well-known/ddos-guard/",
        also: Also::Status(&[403]),
        name: "DDoS-Guard's browser check",
        source: "a verbatim capture of the 403 (annas-archive.pk); not Censored Planet a_prod_ddos_guard (\"DDOS-GUARD\"), which ordinary pages behind DDoS-Guard carry",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "working to restore all services as soon as possible. Please check back soon.",
        also: Also::Nothing,
        name: "Azure Front Door's error page (Our services aren't available right now)",
        source: "Censored Planet false_positive_signatures.json p_fp_15; Microsoft's Azure AD B2C custom-domain troubleshooting (a disabled Azure Front Door route)",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "Fastly error: unknown domain:",
        also: Also::Nothing,
        name: "Fastly's unknown-domain error",
        source: "Censored Planet false_positive_signatures.json p_fp_9 (ooni/blocking-fingerprints cp.fp_p_fp_9)",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "is protected by Project Shield, but recent configuration changes are propagating",
        also: Also::Nothing,
        name: "Project Shield's configuration error page",
        source: "Censored Planet false_positive_signatures.json p_fp_22",
    },
    CdnFingerprint {
        found_in: Where::Body,
        pattern: "<td><span>DDOS attempt was blocked.</span></td>",
        also: Also::Nothing,
        name: "GoDaddy's DDoS-protection block page",
        source: "Censored Planet false_positive_signatures.json x_godaddy_ddos_warning (ooni/blocking-fingerprints cp.fp_x_godaddy_ddos_warning)",
    },
];

/// The name of the CDN or firewall page a response is, if any. A blockpage is never
/// one, whatever else it carries: a censor's page proves interference.
pub fn cdn_page(hop: &HttpHop) -> Option<&'static str> {
    if http_blockpage(hop).is_some() {
        return None;
    }
    CDN.iter().find(|f| f.matches(hop)).map(|f| f.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(status: u16, headers: &[(&str, &str)], body: &str) -> HttpHop {
        HttpHop {
            status: Some(status),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body_length: body.len() as u64,
            body_prefix: body.into(),
            ..HttpHop::new("http://x.test/")
        }
    }

    #[test]
    fn blockpages_match_and_ordinary_pages_do_not() {
        let iran = r#"<html><head><title>M1-6</title></head><body><iframe src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy " style="width: 100%"></iframe></body></html>"#;
        assert!(
            http_blockpage(&hop(200, &[], iran))
                .unwrap()
                .contains("Iran")
        );
        assert!(
            http_blockpage(&hop(302, &[("location", "http://warning.rt.ru/?id=1")], ""))
                .unwrap()
                .contains("Russia")
        );
        assert!(http_blockpage(&hop(451, &[], "")).is_some());
        assert!(
            http_blockpage(&hop(
                200,
                &[],
                "<html><title>Telegram Web</title><iframe src=\"https://t.me\">"
            ))
            .is_none()
        );
        assert!(
            http_blockpage(&hop(302, &[("location", "https://www.facebook.com/")], "")).is_none()
        );
    }

    #[test]
    fn dns_fingerprints_parse_and_match() {
        for f in DNS {
            assert!(f.address.parse::<IpAddr>().is_ok(), "{}", f.address);
        }
        assert!(dns_blockpage("10.10.34.35".parse().unwrap()).is_some());
        assert!(dns_blockpage("149.154.167.51".parse().unwrap()).is_none());
    }

    fn cdn(status: u16, headers: &[(&str, &str)], body: &str) -> Option<&'static str> {
        cdn_page(&hop(status, headers, body))
    }

    const CLOUDFLARE: [(&str, &str); 3] = [
        ("server", "cloudflare"),
        ("cf-ray", "91719332fad18f33-FRA"),
        ("content-type", "text/html; charset=UTF-8"),
    ];

    /// Cloudflare's managed challenge as served in 2025, without its style block and
    /// most of `_cf_chl_opt`.
    const JUST_A_MOMENT: &str = r#"<!DOCTYPE html>
<html lang="en-US">
    <head>
        <title>Just a moment...</title>
        <meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
        <meta name="robots" content="noindex,nofollow">
        <meta http-equiv="refresh" content="390">
    </head>
    <body class="no-js">
        <div class="main-wrapper" role="main">
            <div class="main-content">
                <noscript>
                    <div class="h2">
                        <span id="challenge-error-text">Enable JavaScript and cookies to continue</span>
                    </div>
                </noscript>
            </div>
        </div>
        <script>
            (function() {
                window._cf_chl_opt = {
                    cvId: '3',
                    cZone: "example.org",
                    cType: 'managed',
                    cRay: '91719332fad18f33',
                };
                var cpo = document.createElement('script');
                cpo.src = '/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1?ray=91719332fad18f33';
                document.getElementsByTagName('head')[0].appendChild(cpo);
            }());
        </script>
    </body>
</html>"#;

    /// An ordinary page through Cloudflare, with the JavaScript Detections snippet
    /// Cloudflare injects into every HTML page of a site with bot protection.
    const ORDINARY_BEHIND_CLOUDFLARE: &str = r#"<!DOCTYPE html><html lang="en"><head><title>Example News</title></head>
<body><h1>Example News</h1><p>Today's stories.</p>
<script>(function(){function c(){var b=a.contentDocument||a.contentWindow.document;if(b){var d=b.createElement('script');d.innerHTML="window.__CF$cv$params={r:'97415a96a7346cfd',t:'MTc1NjAyMjgyMy4wMDAwMDA='};var a=document.createElement('script');a.nonce='';a.src='/cdn-cgi/challenge-platform/scripts/jsd/main.js';document.getElementsByTagName('head')[0].appendChild(a);";b.getElementsByTagName('head')[0].appendChild(d)}}c()})();</script>
</body></html>"#;

    #[test]
    fn cloudflare_challenges_are_named_by_header_or_by_page() {
        let mut challenged = CLOUDFLARE.to_vec();
        challenged.push(("cf-mitigated", "challenge"));
        assert_eq!(
            cdn(403, &challenged, JUST_A_MOMENT),
            Some("Cloudflare's challenge page (cf-mitigated: challenge)")
        );
        // The header alone is enough, whatever the status (429 under Super Bot Fight Mode).
        assert!(cdn(429, &challenged, "").unwrap().contains("cf-mitigated"));
        // A proxy on the way may drop the header; the page still names itself.
        assert_eq!(
            cdn(403, &CLOUDFLARE, JUST_A_MOMENT),
            Some("Cloudflare's challenge page (Just a moment...)")
        );

        let legacy = r#"<!DOCTYPE HTML>
<html lang="en-US">
<head>
  <title>Just a moment...</title>
</head>
<body>
  <table width="100%" height="100%" cellpadding="20">
    <tr>
      <td align="center" valign="middle">
          <div class="cf-browser-verification cf-im-under-attack">
  <noscript><h1 data-translate="turn_on_js" style="color:#bd2426;">Please turn JavaScript on and reload the page.</h1></noscript>
  <div id="cf-content" style="display:none">
    <h1><span data-translate="checking_browser">Checking your browser before accessing</span> example.org.</h1>
    <p data-translate="process_is_automatic">This process is automatic. Your browser will redirect to your requested content shortly.</p>
  </div>
  <form class="challenge-form" id="challenge-form" action="/?__cf_chl_jschl_tk__=8d7c02ba809cdf3aeda8d8d382719b093ce20c64-1590526860-0" method="POST">
  </form>"#;
        assert!(
            cdn(503, &CLOUDFLARE, legacy)
                .unwrap()
                .contains("browser check")
        );

        let please_wait = r#"<head>
<title>Please Wait... | Cloudflare</title>
<meta name="captcha-bypass" id="captcha-bypass" />
<link rel="stylesheet" id="cf_styles-css" href="/cdn-cgi/styles/cf.errors.css" type="text/css" media="screen,projection" />"#;
        assert!(
            cdn(403, &CLOUDFLARE, please_wait)
                .unwrap()
                .contains("Please Wait")
        );
    }

    #[test]
    fn cloudflare_refusals_and_errors_are_named() {
        let blocked = r#"<!DOCTYPE html>
<!--[if gt IE 8]><!--> <html class="no-js" lang="en-US"> <!--<![endif]-->
<head>
<title>Attention Required! | Cloudflare</title>
<meta name="robots" content="noindex, nofollow" />
<link rel="stylesheet" id="cf_styles-css" href="/cdn-cgi/styles/cf.errors.css" type="text/css" media="screen,projection" />
</head>
<body>
  <div id="cf-wrapper">
    <div id="cf-error-details" class="cf-error-details-wrapper">
      <div class="cf-wrapper cf-header cf-error-overview">
        <h1 data-translate="block_headline">Sorry, you have been blocked</h1>
        <h2 class="cf-subheadline"><span data-translate="unable_to_access">You are unable to access</span> example.org</h2>
      </div>
      <span class="cf-footer-item sm:block sm:mb-1">Cloudflare Ray ID: <strong class="font-semibold">81e39f9ccea9c270</strong></span>
    </div>
  </div>
</body>"#;
        assert!(
            cdn(403, &CLOUDFLARE, blocked)
                .unwrap()
                .contains("Attention Required!")
        );

        let restricted = r#"<head>
<title>Access denied | example.org used Cloudflare to restrict access</title>
<link rel="stylesheet" id="cf_styles-css" href="/cdn-cgi/styles/cf.errors.css" type="text/css" media="screen,projection" />
</head>
<body>
<div id="cf-wrapper">"#;
        assert!(
            cdn(403, &CLOUDFLARE, restricted)
                .unwrap()
                .contains("restricts access")
        );

        let timed_out = r#"<title>example.org | 522: Connection timed out</title>
<link rel="stylesheet" id="cf_styles-css" href="/cdn-cgi/styles/main.css" />
</head>
<body>
<div id="cf-wrapper">
    <div id="cf-error-details" class="p-0">
        <header class="mx-auto pt-10 lg:pt-6 lg:px-8 w-240 lg:w-full mb-8">
            <h1 class="inline-block sm:block sm:mb-2 font-light text-60 lg:text-4xl text-black-dark leading-tight mr-2">
              <span class="inline-block">Connection timed out</span>"#;
        assert_eq!(
            cdn(522, &CLOUDFLARE, timed_out),
            Some("Cloudflare's error page (cf-error-details)")
        );
        // A legal block is a blockpage, even in Cloudflare's clothes.
        assert!(http_blockpage(&hop(451, &CLOUDFLARE, blocked)).is_some());
        assert_eq!(cdn(451, &CLOUDFLARE, blocked), None);
    }

    #[test]
    fn other_cdns_pages_are_named() {
        let akamai = [
            ("server", "AkamaiGHost"),
            ("mime-version", "1.0"),
            ("content-type", "text/html"),
            (
                "x-cache",
                "TCP_DENIED from a104-71-131-14.deploy.akamaitechnologies.com (AkamaiGHost/10.4.6-37171458) (-)",
            ),
        ];
        let denied = "<HTML><HEAD>\n<TITLE>Access Denied</TITLE>\n</HEAD><BODY>\n<H1>Access Denied</H1>\n \nYou don't have permission to access \"http&#58;&#47;&#47;www&#46;example&#46;org&#47;\" on this server.<P>\nReference&#32;&#35;18&#46;e834768&#46;1638849804&#46;2c1382d\n</BODY>\n</HTML>\n";
        assert!(
            cdn(403, &akamai, denied)
                .unwrap()
                .contains("Akamai's Access Denied")
        );
        let error = "<HTML><HEAD><TITLE>Error</TITLE></HEAD><BODY>\nAn error occurred while processing your request.<p>\nReference&#32;&#35;179&#46;8c346d68&#46;1491884491&#46;2960089\n</BODY></HTML>\n";
        assert!(cdn(503, &akamai, error).unwrap().contains("Akamai's error"));

        let incapsula = r#"<html style="height:100%"><head><META NAME="ROBOTS" CONTENT="NOINDEX, NOFOLLOW"><meta name="format-detection" content="telephone=no"><meta name="viewport" content="initial-scale=1.0"><meta http-equiv="X-UA-Compatible" content="IE=edge,chrome=1"></head><body style="margin:0px;height:100%"><iframe id="main-iframe" src="/_Incapsula_Resource?CWUDNSAI=27&xinfo=3-131528363-0%200NNN%20RT%281625925716861%208316%29&incident_id=0-483007950490240963&edet=9&cinfo=ffffffff&rpinfo=0&mth=GET" frameborder=0 width="100%" height="100%" marginheight="0px" marginwidth="0px">Request unsuccessful. Incapsula incident ID: 0-483007950490240963</iframe></body></html>"#;
        // Imperva sends it as a 200 as often as a 403 or 503.
        let iinfo = [(
            "x-iinfo",
            "3-131528363-0 0NNN RT(1625925716861 8316) q(3 -1 -1 -1) r(3 -1)",
        )];
        assert!(cdn(200, &iinfo, incapsula).unwrap().contains("Incapsula"));

        let sucuri = [
            ("server", "Sucuri/Cloudproxy"),
            ("x-sucuri-id", "19002"),
            ("x-sucuri-block", "FBP007"),
        ];
        let sucuri_page = r#"<!DOCTYPE html>
<html lang="en" xmlns="http://www.w3.org/1999/xhtml">
<head>
<link rel="stylesheet" href="https://cdn.sucuri.net/sucuri-firewall-block.css" />
<title>Sucuri WebSite Firewall - Access Denied</title>
</head>
<body>
<h1 class="brand-font font-size-xtra no-margin"><i class="icon-circle-red"></i>Access Denied - Sucuri Website Firewall</h1>"#;
        assert!(cdn(403, &sucuri, sucuri_page).unwrap().contains("Sucuri"));

        let cloudfront = [
            ("server", "CloudFront"),
            ("x-cache", "Error from cloudfront"),
            (
                "via",
                "1.1 51c76241371dfc20d25094a51b4759eb.cloudfront.net (CloudFront)",
            ),
            (
                "x-amz-cf-id",
                "QGJDmdNqJJ6_zS3ALUczF-8NrM-HDKqTzNu-CZoppz6bi3nWv_cSIw==",
            ),
        ];
        let satisfied = |why: &str| {
            format!(
                "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\" \"http://www.w3.org/TR/html4/loose.dtd\">\n<HTML><HEAD><META HTTP-EQUIV=\"Content-Type\" CONTENT=\"text/html; charset=iso-8859-1\">\n<TITLE>ERROR: The request could not be satisfied</TITLE>\n</HEAD><BODY>\n<H1>403 ERROR</H1>\n<H2>The request could not be satisfied.</H2>\n<HR noshade size=\"1px\">\n{why}\n<BR clear=\"all\">\n<HR noshade size=\"1px\">\n<PRE>\nGenerated by cloudfront (CloudFront)\nRequest ID: QGJDmdNqJJ6_zS3ALUczF-8NrM-HDKqTzNu-CZoppz6bi3nWv_cSIw==\n</PRE>\n<ADDRESS>\n</ADDRESS>\n</BODY></HTML>"
            )
        };
        let waf = satisfied(
            "Request blocked.\nWe can't connect to the server for this app or website at this time.",
        );
        assert!(
            cdn(403, &cloudfront, &waf)
                .unwrap()
                .contains("AWS WAF's block page")
        );
        let geo = satisfied(
            "The Amazon CloudFront distribution is configured to block access from your country.",
        );
        assert!(
            cdn(403, &cloudfront, &geo)
                .unwrap()
                .contains("geo-restriction")
        );
        let bad = satisfied("Bad request.");
        assert!(
            cdn(403, &cloudfront, &bad)
                .unwrap()
                .contains("CloudFront's error page")
        );
        assert!(
            cdn(405, &[("x-amzn-waf-action", "captcha")], "")
                .unwrap()
                .contains("CAPTCHA")
        );
        assert!(
            cdn(202, &[("x-amzn-waf-action", "challenge")], "")
                .unwrap()
                .contains("AWS WAF's challenge")
        );

        let ddos_guard = r#"<!doctype html><html><head><title>DDoS-Guard</title><meta charset="utf-8"/><link rel="stylesheet" href="/.well-known/ddos-guard/js-challenge/index.css"><script defer="defer" src="/.well-known/ddos-guard/js-challenge/index.js"></script><script src="https://check.ddos-guard.net/check.js"></script></head><body data-ddg-origin="true"><div class="container"><h1 id="ddg-l10n-title">Checking your browser before accessing <span class="ddg-origin"></span></h1><p>Please wait a few seconds.</p></div></body></html>"#;
        assert_eq!(
            cdn(403, &[("server", "ddos-guard")], ddos_guard),
            Some("DDoS-Guard's browser check")
        );

        let front_door = "<h2>Our services aren't available right now</h2><p>We're working to restore all services as soon as possible. Please check back soon.</p>0zCJTaQAAAAAtMqAK6fApSKvnxU0VWvAJQ0hHRURHRTE3MTYARWRnZQ==";
        let azure = [("x-azure-ref", "20251230T015200Z-r1c6b8")];
        assert!(
            cdn(400, &azure, front_door)
                .unwrap()
                .contains("Azure Front Door")
        );

        let fastly = "Fastly error: unknown domain: example.org.";
        assert!(cdn(500, &[], fastly).unwrap().contains("Fastly"));
    }

    #[test]
    fn ordinary_pages_through_a_cdn_are_not_cdn_pages() {
        let mut cached = CLOUDFLARE.to_vec();
        cached.push(("cf-cache-status", "DYNAMIC"));
        assert_eq!(cdn(200, &cached, ORDINARY_BEHIND_CLOUDFLARE), None);
        // The origin's own refusals and errors, passed through.
        assert_eq!(cdn(404, &cached, ORDINARY_BEHIND_CLOUDFLARE), None);
        assert_eq!(
            cdn(403, &cached, "<html><body><h1>Forbidden</h1></body></html>"),
            None
        );

        // A page about the CDNs' pages: raw text, and markup escaped as any article has it.
        let article = "<html><head><title>Why scrapers see &lt;title&gt;Just a moment...&lt;/title&gt;</title></head><body><p>The challenge defines window._cf_chl_opt and once said Checking your browser before accessing; Akamai answers Access Denied with a Reference&#32;&#35;18 number, Imperva with Request unsuccessful. Incapsula incident ID, and CloudFront with Request blocked. Sorry, you have been blocked.</p></body></html>";
        assert_eq!(cdn(200, &CLOUDFLARE, article), None);

        let akamai = [("server", "AkamaiGHost")];
        assert_eq!(
            cdn(
                200,
                &akamai,
                "<html><head><title>Example Store</title></head></html>"
            ),
            None
        );
        // Apache's own 403 has the words Censored Planet's x_on_this_server matches, but not Akamai's reference.
        let apache = "<HTML><HEAD><TITLE>403 Forbidden</TITLE></HEAD><BODY><H1>Forbidden</H1>\nYou don't have permission to access /admin\non this server.<P>\n</BODY></HTML>";
        assert_eq!(cdn(403, &[("server", "Apache")], apache), None);
        // Nor is any other "Access Denied" page (a vague blocking word in Censored
        // Planet's blockpage list, f_gen_access_denied) Akamai's.
        let filter = "<html><head><title>Access Denied</title></head><body><H1>Access Denied</H1><p>This site is blocked by order of the regulator.</p></body></html>";
        assert_eq!(cdn(403, &[], filter), None);

        // Imperva's script is on every page it serves (Censored Planet's x_incapsula).
        let imperva = r#"<html><head><title>Example Bank</title><script type="text/javascript" src="/_Incapsula_Resource?SWJIYLWA=719d34d31c8e3a6e6fffd425f7e032f3"></script></head><body><h1>Welcome</h1></body></html>"#;
        let incap = [
            ("x-iinfo", "9-12345678-0 NNNN CT(0 0 0)"),
            ("x-cdn", "Imperva"),
        ];
        assert_eq!(cdn(200, &incap, imperva), None);

        let sucuri = [
            ("server", "Sucuri/Cloudproxy"),
            ("x-sucuri-id", "19002"),
            ("x-sucuri-cache", "HIT"),
        ];
        assert_eq!(
            cdn(200, &sucuri, "<html><title>Example Shop</title></html>"),
            None
        );

        let hit = [
            ("x-cache", "Hit from cloudfront"),
            (
                "via",
                "1.1 51c76241371dfc20d25094a51b4759eb.cloudfront.net (CloudFront)",
            ),
        ];
        assert_eq!(
            cdn(200, &hit, "<html><title>Example App</title></html>"),
            None
        );
        // CloudFront calls the origin's own 404 an "Error" too.
        let miss = [("x-cache", "Error from cloudfront")];
        assert_eq!(
            cdn(404, &miss, "<html><body><h1>Not Found</h1></body></html>"),
            None
        );

        // Censored Planet's a_prod_ddos_guard ("DDOS-GUARD") matches this ordinary page.
        let ordinary_ddg = r#"<!doctype html><html><head><title>Anna’s Archive</title></head><body><script>function f(){ // "text/css" for DDOS-GUARD caching. fetch('/dyn/recent_downloads/'); }</script><main><a href="/md5/abc123">a record</a></main></body></html>"#;
        assert_eq!(cdn(200, &[("server", "ddos-guard")], ordinary_ddg), None);
    }

    #[test]
    fn a_blockpage_is_not_a_cdn_page() {
        let iran = r#"<html><head><title>M1-6</title></head><body><iframe src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy " style="width: 100%"></iframe></body></html>"#;
        let iran = hop(200, &[], iran);
        assert!(http_blockpage(&iran).unwrap().contains("Iran"));
        assert_eq!(cdn_page(&iran), None);
    }

    /// Each entry matches a response made of its own signs alone, under its own name:
    /// no earlier entry hides it, and an entry that needs nothing more matches a 200.
    #[test]
    fn every_cdn_fingerprint_is_reachable() {
        for f in CDN {
            let mut headers = Vec::new();
            let mut body = String::new();
            let mut add = |found_in: &Where, pattern: &'static str| match found_in {
                Where::Body => body.push_str(pattern),
                Where::Header(name) => headers.push((*name, pattern)),
            };
            add(&f.found_in, f.pattern);
            let status = match &f.also {
                Also::Nothing => 200,
                Also::Status(codes) => codes[0],
                Also::Pattern(found_in, pattern) => {
                    add(found_in, pattern);
                    200
                }
            };
            assert_eq!(cdn(status, &headers, &body), Some(f.name), "{}", f.pattern);
            assert!(!f.source.is_empty(), "{}", f.name);
        }
    }
}
