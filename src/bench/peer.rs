//! The peer: the same stage ONNX files timed on ONNX Runtime's CPU execution provider.
//!
//! ONNX Runtime is driven through the Python `onnxruntime` wheel (tools/requirements.txt) in a
//! child process running `tools/ort_bench.py` (embedded in the binary, so no checkout is
//! needed). One long-lived child serves the whole run, so our timings and ORT's can alternate
//! within seconds of each other on a noisy machine. The `ort` crate would avoid the Python
//! call overhead (tens of microseconds per `session.run`, counted against ORT here), but it
//! needs rustc 1.92 while the crate stays at 1.91, and its runtime library would come from the
//! same wheel anyway.

use crate::backend::HostTensor;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The peer script, embedded.
const SCRIPT: &str = include_str!("../../tools/ort_bench.py");

/// Why the peer could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The interpreter could not be started.
    #[error("cannot start {python}: {source}")]
    Spawn {
        /// Interpreter path.
        python: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Writing the script, the inputs or a request failed.
    #[error("peer I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The child said no (missing onnxruntime, bad model, ...).
    #[error("onnxruntime peer: {0}")]
    Refused(String),
    /// The child answered something that is not the protocol (or nothing: it died).
    #[error("onnxruntime peer: bad answer: {0}")]
    Protocol(String),
}

#[derive(Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    samples_ms: Vec<f64>,
    #[serde(default)]
    out0: Vec<f32>,
}

/// One timed series from ONNX Runtime.
#[derive(Debug, Clone)]
pub struct PeerTiming {
    /// Wall time of each `session.run`, milliseconds.
    pub samples_ms: Vec<f64>,
    /// The first output (logits) of the last run, flattened.
    pub out0: Vec<f32>,
}

/// A running ONNX Runtime peer.
pub struct OrtPeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    dir: PathBuf,
    /// Input specs already written to files, by key: a series alternates with ours in
    /// several rounds, and the inputs need writing (and reading in the child) once.
    written: HashMap<String, Vec<serde_json::Value>>,
    /// ONNX Runtime version reported by the child.
    pub version: String,
}

/// The interpreter to use: `$DVT_PYTHON`, else `.venv/bin/python` under the current directory
/// (tools/setup.sh creates it), else `python3` from `PATH`.
pub fn default_python() -> PathBuf {
    if let Some(p) = std::env::var_os("DVT_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(".venv/bin/python");
    if venv.exists() {
        return venv.to_path_buf();
    }
    PathBuf::from("python3")
}

impl OrtPeer {
    /// Starts the peer with `python`, ORT using `threads` intra-op threads.
    pub fn start(python: &Path, threads: usize) -> Result<Self, PeerError> {
        let dir = std::env::temp_dir().join(format!("dvt-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let script = dir.join("ort_bench.py");
        std::fs::write(&script, SCRIPT)?;
        let mut child = Command::new(python)
            .arg(&script)
            .arg(threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| {
                // No child, so no Drop to clean up after us.
                let _ = std::fs::remove_dir_all(&dir);
                PeerError::Spawn {
                    python: python.to_path_buf(),
                    source,
                }
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
            return Err(PeerError::Protocol("no pipes to the child".into()));
        };
        let mut peer = Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            dir,
            written: HashMap::new(),
            version: String::new(),
        };
        let hello = peer.read_answer()?;
        peer.version = hello.version.unwrap_or_else(|| "unknown".into());
        Ok(peer)
    }

    fn read_answer(&mut self) -> Result<Answer, PeerError> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(PeerError::Protocol("the child exited".into()));
        }
        let a: Answer = serde_json::from_str(&line)
            .map_err(|e| PeerError::Protocol(format!("{e}: {}", line.trim())))?;
        if !a.ok {
            return Err(PeerError::Refused(a.error.unwrap_or_default()));
        }
        Ok(a)
    }

    fn request(&mut self, req: serde_json::Value) -> Result<Answer, PeerError> {
        writeln!(self.stdin, "{req}")?;
        self.stdin.flush()?;
        self.read_answer()
    }

    /// Creates a session for `onnx` under the name `id`.
    pub fn load(&mut self, id: &str, onnx: &Path) -> Result<(), PeerError> {
        self.request(serde_json::json!({"op": "load", "id": id, "onnx": onnx}))
            .map(|_| ())
    }

    /// Times session `id` on `inputs` (name, tensor): `warmup` untimed runs, then `iters`
    /// timed ones. `key` names the input set: a later call with the same key reuses it
    /// without sending it again.
    pub fn time(
        &mut self,
        id: &str,
        key: &str,
        inputs: &[(String, HostTensor)],
        warmup: usize,
        iters: usize,
    ) -> Result<PeerTiming, PeerError> {
        if !self.written.contains_key(key) {
            let mut specs = Vec::with_capacity(inputs.len());
            for (name, t) in inputs {
                let file = self
                    .dir
                    .join(format!("in{}-{}.f32", self.written.len(), specs.len()));
                let bytes: Vec<u8> = t.iter().flat_map(|v| v.to_le_bytes()).collect();
                std::fs::write(&file, bytes)?;
                specs.push(serde_json::json!({"name": name, "shape": t.shape(), "file": file}));
            }
            self.written.insert(key.to_string(), specs);
        }
        let specs = &self.written[key];
        let a = self.request(serde_json::json!({
            "op": "time", "id": id, "key": key, "inputs": specs, "warmup": warmup, "iters": iters
        }))?;
        Ok(PeerTiming {
            samples_ms: a.samples_ms,
            out0: a.out0,
        })
    }
}

impl Drop for OrtPeer {
    fn drop(&mut self) {
        // Ask politely; a child that does not answer is killed (it is ours).
        if writeln!(self.stdin, "{}", serde_json::json!({"op": "quit"})).is_err()
            || self.stdin.flush().is_err()
        {
            let _ = self.child.kill();
        }
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if !matches!(self.child.try_wait(), Ok(Some(_))) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
