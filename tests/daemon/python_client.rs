//! The stdlib-only Python client and its folder-streaming example against the real daemon.

use crate::daemon_support;

use daemon_support::{bundle_dir, in_process, test_images, Daemon};
use std::path::Path;
use std::process::Command;

#[test]
fn python_example_streams_a_folder_of_images() {
    let d = Daemon::start(&["--max-batch", "1"]);
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/examples/stream_folder.py");
    let folder = d.dir.path().join("images");
    let run = |args: &[&str]| {
        let out = Command::new("python3")
            .arg(&example)
            .args(args)
            .output()
            .expect("python3 is installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let n = 40;
    run(&["--export-fmnist", &n.to_string(), folder.to_str().unwrap()]);
    // A garbage file is skipped with a message, not a crash.
    std::fs::write(folder.join("notes.txt"), "not an image").unwrap();
    let out = run(&[
        "--socket",
        d.socket.to_str().unwrap(),
        folder.to_str().unwrap(),
    ]);
    let data = test_images(n);
    let expected = in_process(&bundle_dir(), &data);
    let correct = expected
        .iter()
        .zip(&data.labels)
        .filter(|(e, l)| e.class == **l as usize)
        .count();
    let acc = format!("accuracy {:.1}%", 100.0 * correct as f64 / n as f64);
    assert!(
        out.contains(&format!("{n} images in")) && out.contains(&acc),
        "want {acc}:\n{out}"
    );
    let labels = dvt_edge::bundle::Bundle::load(bundle_dir())
        .unwrap()
        .manifest
        .model
        .classes;
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with("00000_") && first.contains(&labels[expected[0].class]),
        "{first}"
    );
}
