//! Servers a test starts bind port 0 and say which port they got; a port found free first
//! and bound later may be taken by another process in between (tests run in parallel).

use std::io::{BufRead as _, BufReader, Read};
use std::sync::mpsc;
use std::time::Duration;

/// Reads `output` (a child's piped stdout or stderr) on a thread of its own until a line
/// containing `marker` followed by `host:port` (`marker` is the text before the port),
/// and returns the port; every later line goes to the returned receiver (and the pipe
/// keeps being drained, so the child never blocks on a full pipe).
pub(crate) fn port_after(output: impl Read + Send + 'static, marker: &str, what: &str) -> (u16, mpsc::Receiver<String>) {
    let (port_tx, port_rx) = mpsc::channel();
    let (lines_tx, lines_rx) = mpsc::channel();
    let marker = marker.to_owned();
    std::thread::spawn(move || {
        let mut port_tx = Some(port_tx);
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if port_tx.is_some()
                && let Some(rest) = line.split_once(marker.as_str()).map(|(_, rest)| rest)
            {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let (Some(tx), Ok(port)) = (port_tx.take(), digits.parse::<u16>()) {
                    let _ = tx.send(port);
                }
                continue;
            }
            let _ = lines_tx.send(line);
        }
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("{what} did not say which port it listens on within 120 s"));
    (port, lines_rx)
}
