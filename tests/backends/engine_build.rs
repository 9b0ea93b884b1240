//! The device-independent half of the TensorRT backend, on the real bundle: engine/manifest
//! checks, engine cache keys and lookups, and the trtexec command lines per
//! TensorRT version. Runs in the default `cargo test` (no CUDA, no TensorRT needed).

use crate::common;

use dvt_edge::bundle::{Bundle, DType, Dim, Manifest};
use dvt_edge::engine_build::build::{
    parse_nvidia_smi, parse_trtexec_version, plan, run_step, source_onnx, BuildError, Target,
};
use dvt_edge::engine_build::cache::{lookup, store_key, CacheError};
use dvt_edge::engine_build::trtexec::default_fp32_layers;
use dvt_edge::engine_build::{
    check_engine_io, trtexec_command, BatchProfile, EngineKey, IoMode, IoTensor, PlanError,
    Precision, TrtVersion, TrtexecJob,
};
use std::path::PathBuf;

fn bundle() -> Bundle {
    Bundle::load_unchecked(common::bundle_dir()).expect("bundled cascade loads")
}

fn manifest() -> Manifest {
    bundle().manifest
}

fn key() -> EngineKey {
    EngineKey {
        tensorrt: TrtVersion::from_code(100300).unwrap(),
        gpu_name: "Orin".into(),
        compute_capability: (8, 7),
        onnx_sha256: "ab".repeat(32),
        precision: Precision::Fp16,
        batch: BatchProfile::new(1, 8, 32).unwrap(),
        version_compatible: false,
    }
}

/// The engine I/O TensorRT would report for a stage built from the manifest (dynamic batch).
fn io_of(m: &Manifest, stage: usize) -> Vec<IoTensor> {
    let s = &m.stages[stage];
    let conv = |mode| {
        move |t: &dvt_edge::bundle::TensorSpec| IoTensor {
            name: t.name.clone(),
            mode,
            dtype: Some(t.dtype),
            dims: t
                .shape
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n as i64,
                    Dim::Symbol(_) => -1,
                })
                .collect(),
        }
    };
    s.inputs
        .iter()
        .map(conv(IoMode::Input))
        .chain(s.outputs.iter().map(conv(IoMode::Output)))
        .collect()
}

#[test]
fn engine_io_must_match_the_manifest() {
    let m = manifest();
    for k in 0..m.stages.len() {
        check_engine_io(&m.stages[k], &io_of(&m, k), 8).unwrap();
    }
    let s = &m.stages[1];
    let mut io = io_of(&m, 1);
    io[1].name = "features".into();
    assert!(check_engine_io(s, &io, 8)
        .unwrap_err()
        .to_string()
        .contains("no tensor 'feat_in'"));

    let mut io = io_of(&m, 1);
    io[0].dtype = Some(DType::F16);
    assert!(check_engine_io(s, &io, 8)
        .unwrap_err()
        .to_string()
        .contains("f16"));

    let mut io = io_of(&m, 1);
    let last = io.len() - 1;
    io[last].dims[1] += 1;
    assert!(matches!(
        check_engine_io(s, &io, 8),
        Err(PlanError::EngineMismatch { .. })
    ));

    // A fixed batch other than the profile's is a mismatch; equal to it is fine.
    let mut io = io_of(&m, 1);
    io[0].dims[0] = 8;
    check_engine_io(s, &io, 8).unwrap();
    assert!(check_engine_io(s, &io, 4).is_err());

    let mut io = io_of(&m, 1);
    io[0].mode = IoMode::Output;
    assert!(check_engine_io(s, &io, 8).is_err());

    let mut io = io_of(&m, 1);
    io.push(IoTensor {
        name: "extra".into(),
        mode: IoMode::Output,
        dtype: Some(DType::F32),
        dims: vec![-1, 3],
    });
    assert!(check_engine_io(s, &io, 8)
        .unwrap_err()
        .to_string()
        .contains("extra"));
}

#[test]
fn engine_key_digest_covers_every_field() {
    let base = key();
    assert_eq!(base.digest(), key().digest());
    assert_eq!(base.digest().len(), 16);
    let variants: Vec<(&str, EngineKey)> = vec![
        (
            "tensorrt",
            EngineKey {
                tensorrt: TrtVersion::parse("10.3.1").unwrap(),
                ..key()
            },
        ),
        (
            "gpu_name",
            EngineKey {
                gpu_name: "RTX 4090".into(),
                ..key()
            },
        ),
        (
            "compute_capability",
            EngineKey {
                compute_capability: (8, 9),
                ..key()
            },
        ),
        (
            "onnx_sha256",
            EngineKey {
                onnx_sha256: "cd".repeat(32),
                ..key()
            },
        ),
        (
            "precision",
            EngineKey {
                precision: Precision::Fp32,
                ..key()
            },
        ),
        (
            "batch",
            EngineKey {
                batch: BatchProfile::new(1, 1, 32).unwrap(),
                ..key()
            },
        ),
        (
            "version_compatible",
            EngineKey {
                version_compatible: true,
                ..key()
            },
        ),
    ];
    for (field, v) in &variants {
        assert_ne!(v.digest(), base.digest(), "{field}");
        assert_eq!(v.check_matches(&base).unwrap_err().field, *field);
    }
    base.check_matches(&key()).unwrap();
    assert_eq!(EngineKey::from_json(&base.to_json()).unwrap(), base);
    // A sidecar written before `version_compatible` existed reads as a plain engine, and a
    // plain key's digest (so its engine's file name) is what it was before the field existed.
    let mut old: serde_json::Value = serde_json::from_str(&base.to_json()).unwrap();
    old.as_object_mut().unwrap().remove("version_compatible");
    assert_eq!(EngineKey::from_json(&old.to_string()).unwrap(), base);
    assert_eq!(base.digest(), "3722372cec4e1719");
    assert!(base.engine_file("stage2").starts_with("stage2.fp16."));
    assert!(BatchProfile::new(4, 2, 8).is_none());
    assert!(BatchProfile::new(0, 1, 1).is_none());
    assert_eq!(TrtVersion::from_code(110400), TrtVersion::parse("11.4.0"));
    assert_eq!(TrtVersion::from_code(0), None);
}

#[test]
fn cache_lookup_never_returns_a_stale_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let k = key();
    let e = lookup(tmp.path(), "stage1", &k).unwrap_err();
    assert!(matches!(e, CacheError::Missing(_)), "{e}");

    let path = dvt_edge::engine_build::cache::engine_path(tmp.path(), "stage1", &k);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"plan bytes").unwrap();
    // No sidecar: unusable.
    assert!(matches!(
        lookup(tmp.path(), "stage1", &k),
        Err(CacheError::Sidecar { .. })
    ));
    // A sidecar with another GPU (e.g. copied from another machine) is stale.
    store_key(
        &path,
        &EngineKey {
            gpu_name: "other".into(),
            ..key()
        },
    )
    .unwrap();
    let e = lookup(tmp.path(), "stage1", &k).unwrap_err();
    assert!(
        matches!(&e, CacheError::Stale { mismatch, .. } if mismatch.field == "gpu_name"),
        "{e}"
    );
    store_key(&path, &k).unwrap();
    assert_eq!(lookup(tmp.path(), "stage1", &k).unwrap(), path);
}

fn job<'a>(m: &'a Manifest, precision: Precision) -> TrtexecJob<'a> {
    TrtexecJob {
        stage: &m.stages[1],
        onnx: PathBuf::from("b/stage2.onnx"),
        engine: PathBuf::from("b/trt/stage2.plan"),
        timing_cache: PathBuf::from("b/trt/timing.cache"),
        precision,
        batch: BatchProfile::new(1, 8, 32).unwrap(),
        fp32_layers: default_fp32_layers(),
        version_compatible: false,
    }
}

#[test]
fn trtexec_flags_follow_the_tensorrt_version() {
    let m = manifest();
    let trt10 = TrtVersion::parse("10.3.0").unwrap();
    let trt11 = TrtVersion::parse("11.4.0").unwrap();
    let shapes = |b: usize| {
        m.stages[1]
            .inputs
            .iter()
            .map(|t| {
                format!(
                    "{}:{}",
                    t.name,
                    t.concrete_shape(b)
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("x")
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };

    let a = trtexec_command(&job(&m, Precision::Fp16), trt10);
    assert!(a.contains(&"--fp16".to_string()));
    assert!(a.contains(&"--precisionConstraints=obey".to_string()));
    let lp = a
        .iter()
        .find(|x| x.starts_with("--layerPrecisions="))
        .expect("layer precisions");
    assert_eq!(
        lp,
        "--layerPrecisions=*/LayerNormalization:fp32,*/Softmax:fp32"
    );
    assert!(!a.iter().any(|x| x == "--stronglyTyped"));
    assert!(a.contains(&format!("--minShapes={}", shapes(1))));
    assert!(a.contains(&format!("--optShapes={}", shapes(8))));
    assert!(a.contains(&format!("--maxShapes={}", shapes(32))));
    assert!(a.contains(&"--onnx=b/stage2.onnx".to_string()));
    assert!(a.contains(&"--saveEngine=b/trt/stage2.plan".to_string()));
    assert!(a.contains(&"--timingCacheFile=b/trt/timing.cache".to_string()));
    assert_eq!(
        shapes(1),
        "image:1x1x28x28,feat_in:1x17x64,attn_in:1x6x17x17"
    );

    let f32_10 = trtexec_command(&job(&m, Precision::Fp32), trt10);
    assert!(!f32_10
        .iter()
        .any(|x| x == "--fp16" || x.starts_with("--layerPrecisions")));

    for p in [Precision::Fp16, Precision::Fp32] {
        let b = trtexec_command(&job(&m, p), trt11);
        assert!(b.contains(&"--stronglyTyped".to_string()));
        assert!(!b.iter().any(|x| x == "--fp16"
            || x.starts_with("--layerPrecisions")
            || x.starts_with("--precisionConstraints")));
    }
    let mut vc = job(&m, Precision::Fp16);
    vc.version_compatible = true;
    assert!(trtexec_command(&vc, trt11).contains(&"--versionCompatible".to_string()));
}

#[test]
fn build_plan_uses_the_cache_and_the_right_onnx() {
    let tmp = tempfile::tempdir().unwrap();
    common::copy_dir(&common::bundle_dir(), tmp.path());
    let b = Bundle::load_unchecked(tmp.path()).unwrap();
    let batch = BatchProfile::new(1, 1, 8).unwrap();
    let t10 = Target {
        tensorrt: TrtVersion::parse("10.3.0").unwrap(),
        gpu_name: "Orin".into(),
        compute_capability: (8, 7),
        version_compatible: false,
    };
    let t11 = Target {
        tensorrt: TrtVersion::parse("11.4.0").unwrap(),
        ..t10.clone()
    };

    assert_eq!(
        source_onnx(tmp.path(), "stage1.onnx", Precision::Fp16, t11.tensorrt),
        tmp.path().join("fp16/stage1.onnx")
    );
    assert_eq!(
        source_onnx(tmp.path(), "stage1.onnx", Precision::Fp16, t10.tensorrt),
        tmp.path().join("stage1.onnx")
    );
    if !tmp.path().join("fp16").exists() {
        let e = plan(&b, &t11, Precision::Fp16, batch, false).unwrap_err();
        assert!(
            matches!(&e, BuildError::Source { .. }) && e.to_string().contains("--fp16"),
            "{e}"
        );
    }

    let steps = plan(&b, &t10, Precision::Fp16, batch, false).unwrap();
    assert_eq!(steps.len(), b.num_stages());
    assert!(steps.iter().all(|s| s.args.is_some()));
    // Pretend stage1's engine was built: the same plan then skips it, and --force rebuilds it.
    std::fs::create_dir_all(steps[0].engine.parent().unwrap()).unwrap();
    std::fs::write(&steps[0].engine, b"plan").unwrap();
    store_key(&steps[0].engine, &steps[0].key).unwrap();
    let again = plan(&b, &t10, Precision::Fp16, batch, false).unwrap();
    assert!(again[0].args.is_none() && again[1].args.is_some());
    assert!(plan(&b, &t10, Precision::Fp16, batch, true).unwrap()[0]
        .args
        .is_some());
    // Another GPU gets its own engine file.
    let other = Target {
        gpu_name: "RTX 4090".into(),
        compute_capability: (8, 9),
        ..t10.clone()
    };
    let o = plan(&b, &other, Precision::Fp16, batch, false).unwrap();
    assert!(o[0].args.is_some() && o[0].engine != steps[0].engine);
    // For the lean runtime: version-compatible engines, in their own files, and a plain engine
    // is not taken for one (the lean runtime would refuse to deserialize it).
    let lean = Target {
        version_compatible: true,
        ..t10.clone()
    };
    let vc = plan(&b, &lean, Precision::Fp16, batch, false).unwrap();
    let vc_args = vc[0]
        .args
        .as_ref()
        .expect("no version-compatible engine yet");
    assert!(
        vc_args.contains(&"--versionCompatible".to_string()),
        "{vc_args:?}"
    );
    assert!(!steps[1]
        .args
        .as_ref()
        .unwrap()
        .contains(&"--versionCompatible".to_string()));
    assert_ne!(vc[0].engine, steps[0].engine);
    match lookup(tmp.path(), "stage1", &vc[0].key) {
        Err(CacheError::Stale { mismatch, .. }) => {
            assert_eq!(mismatch.field, "version_compatible", "{mismatch}")
        }
        other => panic!("a plain engine offered to the lean runtime: {other:?}"),
    }

    // A missing trtexec is a clear error, not a panic.
    let e = run_step(&PathBuf::from("/nonexistent/trtexec"), &steps[1]).unwrap_err();
    assert!(e.to_string().contains("cannot run"), "{e}");
}

#[test]
fn parses_trtexec_and_nvidia_smi_output() {
    let banner = "&&&& RUNNING TensorRT.trtexec [TensorRT v100300] [b17] # trtexec --help";
    assert_eq!(parse_trtexec_version(banner), TrtVersion::parse("10.3.0"));
    assert_eq!(parse_trtexec_version("no banner"), None);
    assert_eq!(
        parse_nvidia_smi("NVIDIA H200, 9.0\n"),
        Some(("NVIDIA H200".into(), (9, 0)))
    );
    assert_eq!(parse_nvidia_smi("garbage"), None);
}
