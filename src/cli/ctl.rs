//! `dvt ctl`: sends one control command to a running `dvtd` and prints the answer.

use crate::client::{Client, ClientError};
use crate::daemon::config::Config;
use crate::policy::Budget;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Arguments of `dvt ctl`.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The daemon's socket (default: the daemon's default path).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// Control commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CtlCommand {
    /// Bundle, budget, operating point, fps, queue.
    Status,
    /// Frames, exits per stage, latencies, errors by kind.
    Stats,
    /// Override the budget source: e.g. `10w`, `0.004gflops`, `30ips`, `5ms`; `auto` hands
    /// control back to the configured source.
    SetBudget {
        /// The budget, or `auto`.
        budget: String,
    },
    /// Re-read the configuration and the bundle (refused, keeping the old, if bad).
    Reload,
    /// Stop accepting, answer every accepted frame, exit.
    Drain,
    /// Prometheus text exposition.
    Metrics,
    /// Worker alive and serving?
    Health,
    /// Classify image files (binary PGM/PPM, any size) through the frame protocol.
    Classify {
        /// Image files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `dvt ctl` failures.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Could not talk to the daemon.
    #[error("{socket}: {source} (is dvtd running? pass --socket)")]
    Client {
        /// Socket path.
        socket: PathBuf,
        /// Cause.
        source: ClientError,
    },
    /// A bad argument.
    #[error("{0}")]
    Usage(String),
    /// The daemon refused.
    #[error("dvtd: {0}")]
    Refused(String),
}

/// The control line for a command.
pub fn command_json(c: &CtlCommand) -> Result<Value, CtlError> {
    Ok(match c {
        CtlCommand::Status => json!({"cmd": "status"}),
        CtlCommand::Stats => json!({"cmd": "stats"}),
        CtlCommand::Reload => json!({"cmd": "reload"}),
        CtlCommand::Drain => json!({"cmd": "drain"}),
        CtlCommand::Metrics => json!({"cmd": "metrics"}),
        CtlCommand::Health => json!({"cmd": "health"}),
        CtlCommand::Classify { .. } => {
            return Err(CtlError::Usage(
                "classify sends frames, not a control line".into(),
            ))
        }
        CtlCommand::SetBudget { budget } if budget == "auto" => {
            json!({"cmd": "set-budget", "kind": "auto"})
        }
        CtlCommand::SetBudget { budget } => {
            let b: Budget = budget
                .parse()
                .map_err(|e| CtlError::Usage(format!("{e}")))?;
            let mut v = crate::protocol::control::budget_json(&b);
            v["cmd"] = json!("set-budget");
            v
        }
    })
}

/// Runs `dvt ctl`; prints the reply (pretty JSON, or the metrics text).
pub fn run(args: &CtlArgs) -> Result<(), CtlError> {
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| Config::default().socket_path());
    if let CtlCommand::Classify { files } = &args.command {
        return classify(&socket, files);
    }
    let line = command_json(&args.command)?;
    let reply = Client::connect(&socket)
        .and_then(|mut c| c.command(&line))
        .map_err(|source| CtlError::Client {
            socket: socket.clone(),
            source,
        })?;
    if reply["ok"] != json!(true) {
        let why = reply["error"]
            .as_str()
            .or(reply["health"].as_str())
            .unwrap_or("refused");
        return Err(CtlError::Refused(why.to_string()));
    }
    match (&args.command, reply["text"].as_str()) {
        (CtlCommand::Metrics, Some(text)) => print!("{text}"),
        _ => println!(
            "{}",
            serde_json::to_string_pretty(&reply).unwrap_or_default()
        ),
    }
    Ok(())
}

/// A binary PGM (P5) or PPM (P6) image with 8-bit samples: (height, width, channels, pixels).
pub fn read_pnm(bytes: &[u8]) -> Result<(u16, u16, u16, Vec<u8>), String> {
    let channels = match bytes.get(..2) {
        Some(b"P5") => 1,
        Some(b"P6") => 3,
        _ => return Err("not a binary PGM/PPM (P5/P6) file".into()),
    };
    let (mut fields, mut pos) = (Vec::new(), 2);
    while fields.len() < 3 {
        while bytes.get(pos).is_some_and(|b| b.is_ascii_whitespace()) {
            pos += 1;
        }
        if bytes.get(pos) == Some(&b'#') {
            while bytes.get(pos).is_some_and(|&b| b != b'\n') {
                pos += 1;
            }
            continue;
        }
        let start = pos;
        while bytes.get(pos).is_some_and(|b| b.is_ascii_digit()) {
            pos += 1;
        }
        let v: u32 = std::str::from_utf8(&bytes[start..pos])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("bad PNM header")?;
        fields.push(v);
    }
    let (w, h, maxval) = (fields[0], fields[1], fields[2]);
    if maxval == 0 || maxval > 255 {
        return Err(format!("maxval {maxval}: only 8-bit PNM is supported"));
    }
    let (h16, w16) = (
        u16::try_from(h).map_err(|_| "image too tall")?,
        u16::try_from(w).map_err(|_| "image too wide")?,
    );
    let n = h as usize * w as usize * channels;
    let px = bytes
        .get(pos + 1..pos + 1 + n)
        .ok_or("file shorter than its header says")?;
    Ok((h16, w16, channels as u16, px.to_vec()))
}

fn classify(socket: &std::path::Path, files: &[PathBuf]) -> Result<(), CtlError> {
    let fail = |source| CtlError::Client {
        socket: socket.to_path_buf(),
        source,
    };
    let mut c = Client::connect(socket).map_err(fail)?;
    for f in files {
        let img = std::fs::read(f)
            .map_err(|e| e.to_string())
            .and_then(|b| read_pnm(&b))
            .map_err(|e| CtlError::Usage(format!("{}: {e}", f.display())))?;
        let (h, w, ch, px) = img;
        let r = c
            .classify(&crate::client::Image::u8_hwc(h, w, ch, &px))
            .map_err(fail)?;
        if r.status == crate::protocol::Status::Ok {
            println!(
                "{}: {} (class {}, confidence {:.3}, stage {}, {:.5} GFLOPs, {} us)",
                f.display(),
                r.text,
                r.class,
                r.confidence,
                r.exit_stage,
                r.gflops,
                r.latency_us
            );
        } else {
            println!("{}: {:?}: {}", f.display(), r.status, r.text);
        }
    }
    Ok(())
}
