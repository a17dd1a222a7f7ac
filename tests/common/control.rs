//! A real `censorprobe control serve` process for a test, killed when dropped.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

pub struct ControlServer {
    pub child: Child,
    /// The base URL it announced, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    pub address: SocketAddr,
    /// What it printed: `listening on URL`.
    pub announced: String,
    /// Held open, so that the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl ControlServer {
    /// Starts `control serve --listen 127.0.0.1:0 <args>` and waits for its
    /// "listening on URL" line.
    pub async fn spawn(args: &[&str]) -> ControlServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_censorprobe"))
            .args(["control", "serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(20), stdout.read_line(&mut line))
            .await
            .expect("the control server did not announce itself within 20 s")
            .unwrap();
        let announced = line.trim_end().to_string();
        let url = announced
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!("unexpected first line from the control server: {announced:?}")
            })
            .to_string();
        let address = url.split_once("://").unwrap().1.parse().unwrap();
        ControlServer {
            child,
            url,
            address,
            announced,
            _stdout: stdout,
        }
    }
}
