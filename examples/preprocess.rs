//! What the model sees: image files through the bundle pre-processing of `dvt eval --data`
//! (decode, PIL channel conversion, torchvision `Resize` + `CenterCrop`, normalisation).
//!
//! ```text
//! cargo run --example preprocess -- RESIZE,HEIGHT,WIDTH,CHANNELS,FILTER OUT_DIR FILE...
//! ```
//!
//! Writes, per FILE, `OUT_DIR/<file name>.u8` (the cropped u8 pixels, HWC) and `.f32` (the
//! normalised CHW tensor, ImageNet mean/std for 3 channels, 0.5/0.5 for 1, little-endian), and
//! for one channel also `.fmode` (PIL mode "F": the decoded grey pixels as f32, resized in
//! floating point without the crop, little-endian, as the daemon's f32 frames are).
//! `tools/tests/test_image_preprocess.py` compares them with torchvision and PIL.

use dvt_edge::bundle::InputSpec;
use dvt_edge::data::image::{self, Interpolation, Picture};
use dvt_edge::data::preprocess::normalize_u8_hwc;
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() >= 3,
        "usage: preprocess RESIZE,HEIGHT,WIDTH,CHANNELS,FILTER OUT_DIR FILE..."
    );
    let parts: Vec<&str> = args[0].split(',').collect();
    anyhow::ensure!(
        parts.len() == 5,
        "spec is RESIZE,HEIGHT,WIDTH,CHANNELS,FILTER"
    );
    let channels: usize = parts[3].parse()?;
    let (mean, std) = if channels == 3 {
        (vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225])
    } else {
        (vec![0.5], vec![0.5])
    };
    let filter: Interpolation = serde_json::from_str(&format!("\"{}\"", parts[4]))?;
    let spec = InputSpec {
        height: parts[1].parse()?,
        width: parts[2].parse()?,
        channels,
        layout: "NCHW".into(),
        scale: 255.0,
        mean,
        std,
        resize: Some(parts[0].parse()?),
        interpolation: Some(filter),
    };
    let out = Path::new(&args[1]);
    std::fs::create_dir_all(out)?;
    for file in &args[2..] {
        let path = Path::new(file);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let px = image::load_for_model(path, &spec)?;
        std::fs::write(out.join(format!("{name}.u8")), &px)?;
        let x = normalize_u8_hwc(&px, 1, &spec)?;
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(out.join(format!("{name}.f32")), bytes)?;
        if channels == 1 {
            let grey = image::to_channels_u8(image::decode_file(path)?, 1)?;
            let f = Picture::new(
                grey.width,
                grey.height,
                1,
                grey.data.iter().map(|&v| f32::from(v)).collect(),
            )
            .expect("same geometry");
            let (w, h) = image::resized_size(f.width, f.height, spec.resize_shorter());
            let r = image::resize(&f, w, h, filter);
            let bytes: Vec<u8> = r.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(out.join(format!("{name}.fmode")), bytes)?;
        }
    }
    Ok(())
}
