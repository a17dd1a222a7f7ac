//! Address scrubbing of free text, as OONI does with error strings it cannot map: an
//! OS or library error message can carry the probe's own address, and no file, log
//! line or published measurement may.

use std::net::{IpAddr, SocketAddr};

/// What an address in free text is replaced with (OONI's marker).
pub const SCRUBBED: &str = "[scrubbed]";

/// Replaces every IPv4 and IPv6 address, with or without a port, in free text with
/// `[scrubbed]`, as OONI does with error strings it cannot map: an OS error message can
/// carry the probe's own address, and a published measurement must not.
///
/// Over-scrubbing is the safe side: anything that parses as an address goes, as long
/// as it has a decimal digit (every public address has one; `hyper::Error` is spared).
pub fn scrub_addresses(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_address_char) {
        out.push_str(&rest[..start]);
        let run = &rest[start..];
        let len = run.find(|c| !is_address_char(c)).unwrap_or(run.len());
        scrub_run(&run[..len], &mut out);
        rest = &run[len..];
    }
    out.push_str(rest);
    out
}

fn is_address_char(c: char) -> bool {
    c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')
}

/// Scrubs a run of address characters (all ASCII): from each position, the longest
/// address starting there, so `[::1]:53:` loses `[::1]:53` and keeps its colon.
fn scrub_run(run: &str, out: &mut String) {
    let mut i = 0;
    while i < run.len() {
        match (i + 1..=run.len()).rev().find(|&j| is_address(&run[i..j])) {
            Some(j) => {
                out.push_str(SCRUBBED);
                i = j;
            }
            None => {
                out.push_str(&run[i..=i]);
                i += 1;
            }
        }
    }
}

fn is_address(s: &str) -> bool {
    s.contains(|c: char| c.is_ascii_digit())
        && (s.parse::<IpAddr>().is_ok() || s.parse::<SocketAddr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_text_are_scrubbed() {
        let cases = [
            (
                "bind 192.168.1.23:50512: address in use",
                "bind [scrubbed]: address in use",
            ),
            (
                "dial tcp [2001:db8::7]:443: connect: refused",
                "dial tcp [scrubbed]: connect: refused",
            ),
            (
                "from 2001:db8:0:1::5 and 10.0.0.1.",
                "from [scrubbed] and [scrubbed].",
            ),
            ("via fe80::1%eth0", "via [scrubbed]%eth0"),
            ("::ffff:198.51.100.7 said no", "[scrubbed] said no"),
            (
                "hyper::Error(Io, os error 104) at 0xdeadbeef",
                "hyper::Error(Io, os error 104) at 0xdeadbeef",
            ),
            ("dns rcode FormErr", "dns rcode FormErr"),
            ("version 1.2.3 is old", "version 1.2.3 is old"),
        ];
        for (text, scrubbed) in cases {
            assert_eq!(scrub_addresses(text), scrubbed, "{text}");
        }
    }
}
