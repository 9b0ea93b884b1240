//! Writing a model folder: the request checked in full first, then the bundle copied into
//! the version folder and the config written beside it.

use super::copy::{copy_dir, resolved};
use super::{
    io, DefaultMode, ModelParams, RepoConfig, TritonRepoArgs, TritonRepoError, DEFAULT_BUNDLE,
    VERSION,
};
use crate::backend::select::{batch_profile, BackendKind};
use crate::bundle::Bundle;
use std::path::PathBuf;

/// A model name Triton accepts and that is one folder (no separators, not `.` or `..`).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Writes the repository `args` ask for; returns the model folder.
pub fn write_repo(args: &TritonRepoArgs) -> Result<PathBuf, TritonRepoError> {
    let bundle = Bundle::load(&args.bundle).map_err(|e| TritonRepoError::Bundle {
        dir: args.bundle.clone(),
        source: Box::new(e),
    })?;
    let m = &bundle.manifest;
    let name = args.name.clone().unwrap_or_else(|| m.model.name.clone());
    if !valid_name(&name) {
        return Err(TritonRepoError::Invalid(format!(
            "model name '{name}': use letters, digits, '-', '_' and '.' (it is a folder name)"
        )));
    }
    if args.max_batch == 0 || args.instances == 0 {
        return Err(TritonRepoError::Invalid(
            "--max-batch and --instances must be at least 1 (the dynamic batcher needs \
             max_batch_size > 0)"
                .into(),
        ));
    }
    let profile =
        batch_profile(&args.batch_profile).map_err(|e| TritonRepoError::Invalid(e.to_string()))?;
    if args.backend != BackendKind::Cpu && args.max_batch > profile.max {
        return Err(TritonRepoError::Invalid(format!(
            "--max-batch {} is above the TensorRT batch profile's max {} (build the engines \
             with `dvt build --batch 1,1,{}` and pass the same --batch-profile)",
            args.max_batch, profile.max, args.max_batch
        )));
    }
    let default = match (&args.point, &args.budget) {
        (Some(p), _) => {
            let known = m
                .operating_points
                .iter()
                .chain(m.calibrations.iter().flat_map(|c| &c.operating_points))
                .any(|op| &op.name == p);
            if !known {
                let names: Vec<&str> = m.operating_points.iter().map(|p| p.name.as_str()).collect();
                return Err(TritonRepoError::Invalid(format!(
                    "no operating point '{p}' in bundle {} (have: {})",
                    args.bundle.display(),
                    names.join(", ")
                )));
            }
            DefaultMode::Point(p.clone())
        }
        (None, Some(b)) => DefaultMode::Budget(
            b.parse()
                .map_err(|e| TritonRepoError::Invalid(format!("--budget: {e}")))?,
        ),
        (None, None) => DefaultMode::MostAccurate,
    };
    let config = RepoConfig {
        name: name.clone(),
        max_batch: args.max_batch,
        queue_delay_us: args.queue_delay_us,
        instances: args.instances,
        params: ModelParams {
            bundle: PathBuf::from(DEFAULT_BUNDLE),
            backend: args.backend,
            cpu_runtime: args.cpu_runtime,
            threads: args.threads,
            precision: args.precision,
            batch_profile: profile,
            default,
        },
    };
    let model_dir = args.out.join(&name);
    let src = args.bundle.canonicalize().map_err(io(&args.bundle))?;
    // Checked before anything is created: copying a bundle into itself never ends.
    if resolved(&args.out).starts_with(&src) {
        return Err(TritonRepoError::Invalid(format!(
            "--out {} is inside the bundle {}: choose a folder outside it",
            args.out.display(),
            args.bundle.display()
        )));
    }
    std::fs::create_dir_all(&args.out).map_err(io(&args.out))?;
    if model_dir.exists() {
        if !args.force {
            return Err(TritonRepoError::Invalid(format!(
                "{} exists: pass --force to replace it",
                model_dir.display()
            )));
        }
        std::fs::remove_dir_all(&model_dir).map_err(io(&model_dir))?;
    }
    let bundle_dir = model_dir.join(VERSION).join(DEFAULT_BUNDLE);
    copy_dir(&src, &bundle_dir)?;
    let path = model_dir.join("config.pbtxt");
    std::fs::write(&path, config.to_pbtxt(&bundle)).map_err(io(&path))?;
    Ok(model_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuRuntime;
    use crate::engine_build::Precision;
    use std::path::Path;

    fn args(out: &Path) -> TritonRepoArgs {
        TritonRepoArgs {
            bundle: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/engines/fmnist-dvt")),
            out: out.to_path_buf(),
            name: None,
            backend: BackendKind::Cpu,
            cpu_runtime: CpuRuntime::Auto,
            threads: 2,
            precision: Precision::Fp16,
            batch_profile: vec![1, 1, 32],
            point: Some("frontier-05".into()),
            budget: None,
            max_batch: 32,
            queue_delay_us: 0,
            instances: 1,
            force: false,
        }
    }

    #[test]
    fn writes_a_model_folder_that_stands_on_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_repo(&args(tmp.path())).unwrap();
        assert_eq!(dir, tmp.path().join("fmnist-dvt"));
        let copy = Bundle::load(dir.join("1/bundle")).unwrap();
        assert_eq!(copy.manifest.model.name, "fmnist-dvt");
        let config = std::fs::read_to_string(dir.join("config.pbtxt")).unwrap();
        for want in [
            "backend: \"dvt\"",
            "max_batch_size: 32",
            "allow_ragged_batch: true",
            "{ name: \"LABEL\" data_type: TYPE_STRING dims: [ 1 ] }",
            "kind: KIND_CPU",
            "{ key: \"point\" value: { string_value: \"frontier-05\" } }",
            "{ key: \"threads\" value: { string_value: \"2\" } }",
        ] {
            assert!(config.contains(want), "{want} not in\n{config}");
        }
        // Again: refused without --force, replaced with it.
        let e = write_repo(&args(tmp.path())).unwrap_err().to_string();
        assert!(e.contains("--force"), "{e}");
        let mut a = args(tmp.path());
        a.force = true;
        a.backend = BackendKind::Tensorrt;
        write_repo(&a).unwrap();
        let config = std::fs::read_to_string(dir.join("config.pbtxt")).unwrap();
        assert!(config.contains("kind: KIND_GPU"), "{config}");
    }

    #[test]
    fn bad_requests_are_refused_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = args(tmp.path());
        a.point = Some("fastest".into());
        let e = write_repo(&a).unwrap_err().to_string();
        assert!(
            e.contains("no operating point 'fastest'") && e.contains("frontier-05"),
            "{e}"
        );
        let mut a = args(tmp.path());
        a.name = Some("../x".into());
        assert!(write_repo(&a)
            .unwrap_err()
            .to_string()
            .contains("model name"));
        let mut a = args(tmp.path());
        a.backend = BackendKind::Tensorrt;
        a.max_batch = 64;
        assert!(write_repo(&a)
            .unwrap_err()
            .to_string()
            .contains("batch profile"));
        assert!(!tmp.path().join("fmnist-dvt").exists());
        let mut a = args(&PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/engines/fmnist-dvt/triton"
        )));
        a.point = None;
        let e = write_repo(&a).unwrap_err().to_string();
        assert!(e.contains("inside the bundle"), "{e}");
    }
}
