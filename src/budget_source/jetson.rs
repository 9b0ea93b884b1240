//! Jetson power rails from sysfs (docs/ARCHITECTURE.md, "Platform notes"), found by label, never by a
//! fixed `hwmonN` path:
//!
//! - JetPack 5/6 (and 7's INA3221): `bus/i2c/devices/<bus>-00<4x>/hwmon/hwmon<N>/` (also
//!   `class/hwmon/hwmon<N>` with `name` = `ina3221`): `in<k>_label`, `in<k>_input` (mV),
//!   `curr<k>_input` (mA); P (mW) = mV x mA / 1000.
//! - JetPack 4: `bus/i2c/drivers/ina3221x/<bus>-00<4x>/iio:device<N>/`: `rail_name_<k>`,
//!   `in_power<k>_input` (mW), else `in_voltage<k>_input` (mV) x `in_current<k>_input` (mA).
//! - INA238 board monitor (Thor carrier): hwmon `name` = `ina238`, `power1_input` in µW.
//!
//! Labels `NC` and "sum of shunt" channels are skipped. The total is `VDD_IN` or `POM_5V_IN`
//! when present, else the INA238 `VIN`, else the sum of all rails (flagged partial: AGX Orin
//! has no module-input rail).

use super::{BudgetSource, Reading, SourceError};
use crate::policy::Budget;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// How a rail's power is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RailFiles {
    /// Bus voltage (mV) and current (mA) files.
    MilliVoltsMilliAmps(PathBuf, PathBuf),
    /// A power file in mW (JetPack 4 iio).
    MilliWatts(PathBuf),
    /// A power file in µW (INA238 hwmon).
    MicroWatts(PathBuf),
}

/// One power rail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rail {
    /// Label, e.g. `VDD_IN`.
    pub label: String,
    /// Where its power is read.
    pub files: RailFiles,
}

impl Rail {
    /// Reads the rail's power, watts.
    pub fn read_watts(&self) -> Result<f64, SourceError> {
        match &self.files {
            RailFiles::MilliVoltsMilliAmps(v, i) => Ok(read_num(v)? * read_num(i)? / 1e6),
            RailFiles::MilliWatts(p) => Ok(read_num(p)? / 1e3),
            RailFiles::MicroWatts(p) => Ok(read_num(p)? / 1e6),
        }
    }
}

fn read_num(p: &Path) -> Result<f64, SourceError> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| SourceError::Missing(format!("{}: {e}", p.display())))?;
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| {
            SourceError::Invalid(format!("{}: not a reading: {:?}", p.display(), text.trim()))
        })
}

fn read_text(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn skip_label(label: &str) -> bool {
    label.is_empty()
        || label.eq_ignore_ascii_case("NC")
        || label.to_ascii_lowercase().contains("sum of shunt")
}

fn subdirs(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// Rails of one hwmon folder (JetPack 5+, INA238).
fn hwmon_rails(dir: &Path) -> Vec<Rail> {
    let name = read_text(&dir.join("name")).unwrap_or_default();
    let mut rails = Vec::new();
    if name.contains("ina238") {
        let p = dir.join("power1_input");
        if p.exists() {
            let label = read_text(&dir.join("power1_label"))
                .or_else(|| read_text(&dir.join("in1_label")))
                .unwrap_or_else(|| "VIN".into());
            if !skip_label(&label) {
                rails.push(Rail {
                    label,
                    files: RailFiles::MicroWatts(p),
                });
            }
        }
        return rails;
    }
    for k in 1..=8 {
        let Some(label) = read_text(&dir.join(format!("in{k}_label"))) else {
            continue;
        };
        if skip_label(&label) {
            continue;
        }
        rails.push(Rail {
            label,
            files: RailFiles::MilliVoltsMilliAmps(
                dir.join(format!("in{k}_input")),
                dir.join(format!("curr{k}_input")),
            ),
        });
    }
    rails
}

/// Rails of one iio folder (JetPack 4, `ina3221x`).
fn iio_rails(dir: &Path) -> Vec<Rail> {
    let mut rails = Vec::new();
    for k in 0..8 {
        let Some(label) = read_text(&dir.join(format!("rail_name_{k}"))) else {
            continue;
        };
        if skip_label(&label) {
            continue;
        }
        let p = dir.join(format!("in_power{k}_input"));
        let files = if p.exists() {
            RailFiles::MilliWatts(p)
        } else {
            RailFiles::MilliVoltsMilliAmps(
                dir.join(format!("in_voltage{k}_input")),
                dir.join(format!("in_current{k}_input")),
            )
        };
        rails.push(Rail { label, files });
    }
    rails
}

fn is_monitor_name(name: &str) -> bool {
    name.contains("ina3221") || name.contains("ina238")
}

/// Every rail of every INA3221/INA238 under `sysfs` (e.g. `/sys`), in a stable order.
pub fn discover(sysfs: &Path) -> Vec<Rail> {
    let mut devices: Vec<PathBuf> = Vec::new();
    for d in subdirs(&sysfs.join("bus/i2c/devices"), "") {
        if read_text(&d.join("name")).is_some_and(|n| is_monitor_name(&n)) {
            devices.push(d);
        }
    }
    for driver in ["ina3221x", "ina3221", "ina238"] {
        for d in subdirs(&sysfs.join("bus/i2c/drivers").join(driver), "") {
            if d.file_name()
                .is_some_and(|n| n.to_string_lossy().contains('-'))
            {
                devices.push(d);
            }
        }
    }
    for d in subdirs(&sysfs.join("class/hwmon"), "") {
        if read_text(&d.join("name")).is_some_and(|n| is_monitor_name(&n)) {
            devices.push(d);
        }
    }
    // Folders with the data: hwmon/hwmonN (JP5+), iio:deviceN (JP4), or the hwmon folder itself.
    let mut seen = BTreeSet::new();
    let mut rails = Vec::new();
    for dev in devices {
        let mut data: Vec<(PathBuf, bool)> = subdirs(&dev.join("hwmon"), "hwmon")
            .into_iter()
            .map(|p| (p, true))
            .collect();
        data.extend(subdirs(&dev, "iio:device").into_iter().map(|p| (p, false)));
        if data.is_empty() && dev.join("name").exists() {
            data.push((dev.clone(), true));
        }
        for (dir, hwmon) in data {
            let key = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
            if !seen.insert(key) {
                continue;
            }
            rails.extend(if hwmon {
                hwmon_rails(&dir)
            } else {
                iio_rails(&dir)
            });
        }
    }
    rails
}

/// The rails whose power is the tracked signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Rails summed (one, unless the total had to be summed).
    pub rails: Vec<Rail>,
    /// True when the total is a sum of rails (no module or board input rail).
    pub partial: bool,
}

impl Choice {
    /// Name for logs and metrics (`VDD_IN`, or `sum(A+B+C)`).
    pub fn name(&self) -> String {
        if self.partial {
            let l: Vec<&str> = self.rails.iter().map(|r| r.label.as_str()).collect();
            format!("sum({})", l.join("+"))
        } else {
            self.rails[0].label.clone()
        }
    }

    /// Power now, watts.
    pub fn read_watts(&self) -> Result<f64, SourceError> {
        self.rails.iter().map(Rail::read_watts).sum()
    }
}

/// Picks `want` (a label, or `total`) among `rails`.
pub fn choose(rails: &[Rail], want: &str) -> Result<Choice, SourceError> {
    let one = |r: &Rail| Choice {
        rails: vec![r.clone()],
        partial: false,
    };
    if rails.is_empty() {
        return Err(SourceError::Missing(
            "no INA3221/INA238 power monitor found in sysfs".into(),
        ));
    }
    let find = |l: &str| rails.iter().find(|r| r.label.eq_ignore_ascii_case(l));
    if !want.eq_ignore_ascii_case("total") {
        return find(want).map(one).ok_or_else(|| {
            let have: Vec<&str> = rails.iter().map(|r| r.label.as_str()).collect();
            SourceError::Missing(format!(
                "no rail labelled {want} (have: {})",
                have.join(", ")
            ))
        });
    }
    if let Some(r) = find("VDD_IN")
        .or_else(|| find("POM_5V_IN"))
        .or_else(|| find("VIN"))
    {
        return Ok(one(r));
    }
    Ok(Choice {
        rails: rails.to_vec(),
        partial: true,
    })
}

/// The Jetson source: a watt budget tracked with the chosen rail's power. Rediscovers the
/// rails whenever a read fails, so a sensor that vanishes and returns is picked up again.
#[derive(Debug, Clone)]
pub struct JetsonSource {
    sysfs: PathBuf,
    want: String,
    target_watts: f64,
    choice: Option<Choice>,
}

impl JetsonSource {
    /// Tracks `want` (`total` or a label) under `sysfs` against `target_watts`.
    pub fn new(sysfs: PathBuf, want: String, target_watts: f64) -> Self {
        Self {
            sysfs,
            want,
            target_watts,
            choice: None,
        }
    }

    /// The rail(s) in use, once found.
    pub fn choice(&self) -> Option<&Choice> {
        self.choice.as_ref()
    }
}

impl BudgetSource for JetsonSource {
    fn describe(&self) -> String {
        match &self.choice {
            Some(c) => format!("jetson rail {} ({} W target)", c.name(), self.target_watts),
            None => format!(
                "jetson rail {} ({} W target, not found yet)",
                self.want, self.target_watts
            ),
        }
    }

    fn read(&mut self) -> Result<Reading, SourceError> {
        if self.choice.is_none() {
            self.choice = Some(choose(&discover(&self.sysfs), &self.want)?);
        }
        let c = self.choice.as_ref().expect("just set");
        match c.read_watts() {
            Ok(w) => Ok(Reading {
                budget: Some(Budget::Watts(self.target_watts)),
                power_watts: Some(w),
            }),
            Err(e) => {
                self.choice = None;
                Err(e)
            }
        }
    }
}
