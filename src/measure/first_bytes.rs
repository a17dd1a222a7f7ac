//! The first-bytes probe's exchange: bytes that are neither TLS, HTTP nor DNS, sent on
//! a connection, and what came back (see [`FirstBytes`](crate::facts::FirstBytes)).
//!
//! A protocol filter (Iran's "protocol whitelister", FOCI '20; net4people/bbs#49) reads
//! the first data packets of a flow to ports 53, 80 and 443 and drops what follows
//! anything that does not start like DNS, HTTP or TLS, for a minute. The bytes are
//! shaped as an MTProto obfuscated handshake (Telegram's, which that filter catches):
//! 64 random bytes that the server tells from its other transports by what they are
//! not.

use std::time::Duration;

use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::facts::Reply;
use crate::facts::failure::Failure;

/// How many bytes are sent: an obfuscated handshake's length.
pub const LENGTH: usize = 64;

/// How long an answer is waited for, at most: a server that answers such bytes does so
/// within a round trip, and one that waits for more (an MTProto server) says nothing
/// however long it is given.
pub const WAIT: Duration = Duration::from_secs(1);

/// Random bytes that start like none of TLS (a handshake record, 0x16), HTTP (a method,
/// ASCII letters), a DNS message over TCP (a length that is the rest of the bytes), nor
/// MTProto's other transports (0xef; 0xeeeeeeee, 0xdddddddd; a zero second word), as
/// MTProto's obfuscated handshake is drawn.
pub fn obfuscated_handshake(rng: &mut impl RngCore) -> [u8; LENGTH] {
    let mut bytes = [0u8; LENGTH];
    loop {
        rng.fill_bytes(&mut bytes);
        if unlike_any_protocol(&bytes) {
            return bytes;
        }
    }
}

fn unlike_any_protocol(bytes: &[u8; LENGTH]) -> bool {
    let first = bytes[0];
    let dns_length = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
    let word = |i: usize| [bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]];
    first != 0x16
        && !first.is_ascii_alphabetic()
        && first != 0xef
        && dns_length != LENGTH - 2
        && !matches!(word(0), [0xee, 0xee, 0xee, 0xee] | [0xdd, 0xdd, 0xdd, 0xdd])
        && word(4) != [0, 0, 0, 0]
}

/// Sends `bytes` on `stream` and reads what comes back within `wait`: how the server
/// (or the path) took them, and how many bytes of an answer were read.
pub async fn exchange(stream: &mut TcpStream, bytes: &[u8], wait: Duration) -> (Reply, u64) {
    let mut answer = [0u8; 1024];
    let exchanged = tokio::time::timeout(wait, async {
        stream.write_all(bytes).await?;
        stream.read(&mut answer).await
    })
    .await;
    match exchanged {
        Err(_) => (Reply::Silent, 0),
        Ok(Ok(0)) => (Reply::Closed, 0),
        Ok(Ok(n)) => (Reply::Answered, n as u64),
        Ok(Err(e)) => match Failure::from_io(&e) {
            Failure::Eof => (Reply::Closed, 0),
            f if f.is_reset_or_eof() => (Reply::Reset, 0),
            Failure::GenericTimeout => (Reply::Silent, 0),
            _ => (Reply::Failed, 0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn the_bytes_start_like_no_protocol_the_filter_lets_through() {
        let mut rng = rand::rng();
        for _ in 0..10_000 {
            let bytes = obfuscated_handshake(&mut rng);
            assert!(unlike_any_protocol(&bytes));
            assert_ne!(bytes[0], 0x16, "a TLS record");
            assert!(!bytes[0].is_ascii_uppercase(), "an HTTP method");
        }
        let mut tls = [1u8; LENGTH];
        tls[0] = 0x16;
        assert!(!unlike_any_protocol(&tls));
        let mut dns = [1u8; LENGTH];
        dns[..2].copy_from_slice(&[0, 62]);
        assert!(!unlike_any_protocol(&dns));
    }

    /// A server that answers, one that closes, and one that waits.
    #[tokio::test]
    async fn the_reply_says_how_the_server_took_the_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for behaviour in ["answer", "close", "wait"] {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut got = [0u8; LENGTH];
                stream.read_exact(&mut got).await.unwrap();
                match behaviour {
                    "answer" => stream
                        .write_all(b"\x15\x03\x01\x00\x02\x02\x32")
                        .await
                        .unwrap(),
                    "close" => drop(stream),
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        });
        let bytes = obfuscated_handshake(&mut rand::rng());
        let wait = Duration::from_millis(200);
        let mut got = Vec::new();
        for _ in 0..3 {
            let mut stream = TcpStream::connect(address).await.unwrap();
            got.push(exchange(&mut stream, &bytes, wait).await);
        }
        assert_eq!(
            got,
            [(Reply::Answered, 7), (Reply::Closed, 0), (Reply::Silent, 0)]
        );
        server.await.unwrap();
    }
}
