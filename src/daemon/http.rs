//! Loopback HTTP for scrapers: `GET /metrics` (Prometheus text) and `GET /healthz` (200 "ok"
//! or 503 with the reason). Not a frame path.

use super::Shared;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Serves until the process exits.
pub fn serve(listener: TcpListener, shared: Arc<Shared>) {
    for s in listener.incoming().flatten() {
        let sh = shared.clone();
        let _ = std::thread::Builder::new()
            .name("dvtd-http-conn".into())
            .spawn(move || answer(s, &sh));
    }
}

fn answer(s: TcpStream, shared: &Shared) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut r = BufReader::new(&s);
    let mut line = String::new();
    if r.by_ref().take(8192).read_line(&mut line).is_err() {
        return;
    }
    // Skip the request headers.
    let mut h = String::new();
    while r.by_ref().take(8192).read_line(&mut h).is_ok_and(|n| n > 2) {
        h.clear();
    }
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let (code, body, ctype) = match path {
        "/metrics" => (200, shared.metrics_text(), "text/plain; version=0.0.4"),
        "/healthz" => {
            let (ok, why) = shared.health();
            (if ok { 200 } else { 503 }, format!("{why}\n"), "text/plain")
        }
        _ => (404, "try /metrics or /healthz\n".into(), "text/plain"),
    };
    let reason = match code {
        200 => "OK",
        503 => "Service Unavailable",
        _ => "Not Found",
    };
    let _ = (&s).write_all(
        format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}
