//! The budget file source: re-read on change, comments skipped, missing/garbage/stale files
//! fall back to the safe budget; and the real daemon follows the file.

use crate::daemon_support;

use daemon_support::Daemon;
use dvt_edge::budget_source::file::FileSource;
use dvt_edge::budget_source::{BudgetSource, SourceError, Supervisor, Transition};
use dvt_edge::policy::Budget;
use serde_json::json;
use std::time::{Duration, Instant, SystemTime};

#[test]
fn the_file_is_reread_when_it_changes() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("budget");
    let mut s = FileSource::new(p.clone(), None);
    assert!(matches!(s.read(), Err(SourceError::Missing(_))));
    std::fs::write(&p, "# from the planner\n\n12w\n").unwrap();
    assert_eq!(s.read().unwrap().budget, Some(Budget::Watts(12.0)));
    std::fs::write(&p, "0.0035gflops\n").unwrap();
    assert_eq!(s.read().unwrap().budget, Some(Budget::Gflops(0.0035)));
    std::fs::write(&p, "lots\n").unwrap();
    let e = s.read().unwrap_err();
    assert!(
        matches!(e, SourceError::Invalid(_)) && e.to_string().contains("budget file"),
        "{e}"
    );
}

#[test]
fn missing_garbage_and_stale_files_use_the_safe_budget_once() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("budget");
    std::fs::write(&p, "30ips").unwrap();
    let safe = Budget::MsPerFrame(5.0);
    let mut sup = Supervisor::new(
        Box::new(FileSource::new(p.clone(), Some(Duration::from_secs(60)))),
        Some(safe),
        None,
    );
    let now = Instant::now();
    assert_eq!(sup.poll(now).0.budget, Some(Budget::ImagesPerSecond(30.0)));
    // Not rewritten for two minutes: stale.
    let f = std::fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(120))
        .unwrap();
    let (e, tr) = sup.poll(now);
    assert_eq!(e.budget, Some(safe));
    assert!(
        matches!(tr, Some(Transition::Degraded(ref m)) if m.contains("not rewritten")),
        "{tr:?}"
    );
    std::fs::remove_file(&p).unwrap();
    let (e, tr) = sup.poll(now);
    assert_eq!((e.budget, tr), (Some(safe), None));
    std::fs::write(&p, "40ips").unwrap();
    let (e, tr) = sup.poll(now);
    assert_eq!(
        (e.budget, tr),
        (
            Some(Budget::ImagesPerSecond(40.0)),
            Some(Transition::Recovered)
        )
    );
}

#[test]
fn the_daemon_follows_the_budget_file() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("budget");
    std::fs::write(&p, "0.004gflops\n").unwrap();
    let file = format!("budget.file={}", p.display());
    let d = Daemon::start(&[
        "--budget-source",
        "file",
        "--set",
        &file,
        "--set",
        "budget.poll_ms=20",
    ]);
    assert_eq!(
        d.ctl(json!({"cmd": "status"}))["budget"],
        json!({"kind": "gflops", "value": 0.004})
    );
    std::fs::write(&p, "0.01gflops\n").unwrap();
    let t0 = Instant::now();
    while d.ctl(json!({"cmd": "status"}))["budget"] != json!({"kind": "gflops", "value": 0.01}) {
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // A client override wins until `auto`.
    d.ctl(json!({"cmd": "set-budget", "kind": "ms", "value": 3.0}));
    assert_eq!(
        d.ctl(json!({"cmd": "status"}))["budget"],
        json!({"kind": "ms", "value": 3.0})
    );
    d.ctl(json!({"cmd": "set-budget", "kind": "auto"}));
    assert_eq!(
        d.ctl(json!({"cmd": "status"}))["budget"],
        json!({"kind": "gflops", "value": 0.01})
    );
}
