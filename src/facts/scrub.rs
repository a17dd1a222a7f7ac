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
    scan(text, |piece| match piece {
        Piece::Text(text) => out.push_str(text),
        Piece::Address(_) => out.push_str(SCRUBBED),
    });
    out
}

/// Whether `text` names `ip` (with or without a port, in any of its spellings: an
/// IPv6 address compressed or not, an IPv4 address mapped into IPv6), as
/// [`scrub_addresses`] finds addresses: a collector refuses a run that names the
/// address it was uploaded from. `127.0.0.15` does not name `127.0.0.1`.
pub fn mentions(text: &str, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let mut found = false;
    scan(text, |piece| {
        if let Piece::Address(address) = piece {
            let named = address
                .parse::<IpAddr>()
                .or_else(|_| address.parse::<SocketAddr>().map(|a| a.ip()));
            found |= named.is_ok_and(|named| named.to_canonical() == ip);
        }
    });
    found
}

/// A piece of free text: text to keep, or an address.
enum Piece<'a> {
    Text(&'a str),
    Address(&'a str),
}

/// Hands each piece of `text` to `visit`, in order: the text between addresses, and
/// each address.
fn scan<'a>(text: &'a str, mut visit: impl FnMut(Piece<'a>)) {
    let mut rest = text;
    while let Some(start) = rest.find(is_address_char) {
        visit(Piece::Text(&rest[..start]));
        let run = &rest[start..];
        let len = run.find(|c| !is_address_char(c)).unwrap_or(run.len());
        // Every address has a dot or a colon: a run of hex digits alone (a hash, a long
        // number) is text, and need not be tried at every position.
        match run[..len].contains(['.', ':']) {
            true => scan_run(&run[..len], &mut visit),
            false => visit(Piece::Text(&run[..len])),
        }
        rest = &run[len..];
    }
    visit(Piece::Text(rest));
}

/// The longest text that can be an address: an IPv6 address in brackets, its last 32
/// bits in dotted form, with a port (`[ffff:...:255.255.255.255]:65535`, 53 bytes).
const MAX_ADDRESS_LEN: usize = 56;

fn is_address_char(c: char) -> bool {
    c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')
}

/// Scrubs a run of address characters (all ASCII): from each position, the longest
/// address starting there, so `[::1]:53:` loses `[::1]:53` and keeps its colon. No
/// address is longer than [`MAX_ADDRESS_LEN`], so a long run (a hex dump in an error
/// text, a hostile server's header) costs time in proportion to its length.
fn scan_run<'a>(run: &'a str, visit: &mut impl FnMut(Piece<'a>)) {
    let mut i = 0;
    while i < run.len() {
        let longest = run.len().min(i + MAX_ADDRESS_LEN);
        match (i + 1..=longest).rev().find(|&j| is_address(&run[i..j])) {
            Some(j) => {
                visit(Piece::Address(&run[i..j]));
                i = j;
            }
            None => {
                visit(Piece::Text(&run[i..=i]));
                i += 1;
            }
        }
    }
}

/// A writer of log lines that scrubs every address out of them before they go on:
/// a log line can quote any error text, a library's included, and logs get pasted
/// into bug reports. Each `write` is taken as whole lines, as `tracing`'s formatter
/// writes one event at a time.
pub struct Scrubbing<W>(pub W);

impl<W: std::io::Write> std::io::Write for Scrubbing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let scrubbed = scrub_addresses(&String::from_utf8_lossy(buf));
        self.0.write_all(scrubbed.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
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

    #[test]
    fn mentions_an_address_in_any_spelling_and_nothing_longer() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        for text in [
            "from 192.0.2.7",
            "to 192.0.2.7:443.",
            "[::ffff:192.0.2.7]:80",
        ] {
            assert!(mentions(text, v4), "{text}");
        }
        for text in ["192.0.2.70", "10.192.0.2.7x", "192.0.2.6", "no address"] {
            assert!(!mentions(text, v4), "{text}");
        }
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        assert!(mentions("at [2001:0db8:0:0::7]:443", v6));
        assert!(!mentions("at 2001:db8::77", v6));
    }

    #[test]
    fn log_lines_are_scrubbed_as_they_are_written() {
        use std::io::Write;
        let mut written = Vec::new();
        let mut log = Scrubbing(&mut written);
        let time = "2026-12-02T02:34:40.123456Z";
        writeln!(
            log,
            "{time}  WARN bind 192.0.2.7:5353; from [2001:db8::1]:443"
        )
        .unwrap();
        log.write_all(b"DEBUG no address here\n").unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            format!("{time}  WARN bind [scrubbed]; from [scrubbed]\nDEBUG no address here\n")
        );
    }

    #[test]
    fn long_runs_of_address_characters_take_linear_time() {
        // A hex dump in an error text, or a hostile server's header: every position
        // starts a run that is tried against the longest address only, not the run.
        let long = format!("{} 10.0.0.1 {}", "ab12".repeat(10_000), "1.".repeat(10_000));
        let started = std::time::Instant::now();
        let scrubbed = scrub_addresses(&long);
        assert!(
            scrubbed.contains(" [scrubbed] "),
            "the address in the middle"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
