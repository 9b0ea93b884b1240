//! Starts the real `dvtd` binary on a socket in a temp dir and talks to it.
#![allow(dead_code)]

use dvt_edge::backend::cpu::{CpuBackend, CpuRuntime};
use dvt_edge::bundle::Bundle;
use dvt_edge::cascade::{Cascade, Decision};
use dvt_edge::client::Client;
use dvt_edge::data::preprocess::normalize_u8_hwc;
use dvt_edge::data::{fmnist, Dataset, Split};
use dvt_edge::policy::{Controller, ControllerConfig, OperatingTable};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The bundled cascade.
pub fn bundle_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("engines/fmnist-dvt")
}

/// The first `n` Fashion-MNIST test images (28x28 u8) and labels.
pub fn test_images(n: usize) -> Dataset {
    let mut d = Dataset::load(Path::new(fmnist::DEFAULT_DIR), Split::Test).expect("Fashion-MNIST");
    d.truncate(n);
    d
}

/// What an in-process cascade answers for the images with the thresholds the daemon uses
/// when it has no budget (the controller's most accurate point).
pub fn in_process(bundle: &Path, data: &Dataset) -> Vec<Decision> {
    let b = Bundle::load(bundle).unwrap();
    let table = OperatingTable::from_manifest(&b.manifest).unwrap();
    let thresholds = Controller::new(table, ControllerConfig::default()).thresholds();
    // The engine dvtd picks by default (auto), so both sides compute the same floats.
    let backend = CpuBackend::with_runtime(CpuRuntime::Auto, 1).unwrap();
    let mut c = Cascade::load(backend, &b).unwrap();
    (0..data.len())
        .map(|i| {
            let x = normalize_u8_hwc(data.pixels(i..i + 1), 1, &b.manifest.model.input).unwrap();
            c.classify(x, &thresholds).unwrap().decisions[0]
        })
        .collect()
}

/// CPU time of process `pid` (user + system), clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// A running daemon.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Starts `dvtd --bundle <bundled> --socket <tmp>/dvtd.sock ARGS` and waits until it
    /// answers `status`.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(&bundle_dir(), args, &[])
    }

    /// Like [`Daemon::start`] with a bundle and environment.
    pub fn start_with(bundle: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, bundle, args, env)
    }

    /// Starts in an existing temp dir.
    pub fn start_in(
        dir: tempfile::TempDir,
        bundle: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let socket = dir.path().join("dvtd.sock");
        let log = std::fs::File::create(dir.path().join("dvtd.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dvtd"));
        cmd.arg("--bundle")
            .arg(bundle)
            .arg("--socket")
            .arg(&socket)
            .args(["--threads", "1"])
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("dvtd starts");
        let mut d = Daemon {
            dir,
            socket,
            child: Some(child),
        };
        let t0 = Instant::now();
        loop {
            if let Ok(mut c) = Client::connect(&d.socket) {
                if c.command(&json!({"cmd": "status"})).is_ok() {
                    return d;
                }
            }
            if let Some(st) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("dvtd exited with {st} before serving:\n{}", d.log());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "dvtd did not come up:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// A new client.
    pub fn client(&self) -> Client {
        Client::connect(&self.socket).unwrap()
    }

    /// One control command on a fresh connection.
    pub fn ctl(&self, cmd: Value) -> Value {
        self.client().command(&cmd).unwrap()
    }

    /// The daemon's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dvtd.log")).unwrap_or_default()
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends a signal (`TERM`, `HUP`, ...).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// Waits for the exit (panics after `timeout`).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(t0.elapsed() < timeout, "dvtd did not exit:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
