//! `--device` / `BURN_DEVICE`: which Burn backend runs the work, chosen at run
//! time among the backends this binary was built with.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// The devices this binary can run on, for help and error messages.
pub const DEVICE_HELP: &str = "cpu (the pure-Rust flex backend), vulkan, metal, wgpu, cuda; a GPU index may follow a colon, as in cuda:1 or vulkan:0";

/// Parses a device name: `cpu`/`flex`, `vulkan[:N]`, `metal[:N]`, `wgpu[:N]`,
/// `cuda[:N]`. Naming a backend this binary was built without is an error that
/// says which Cargo feature to build with.
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    let (name, index) = match spec.split_once(':') {
        Some((name, index)) => {
            let Ok(index) = index.parse::<usize>() else {
                bail!("device {spec:?}: the part after ':' must be a device index such as 0");
            };
            (name, Some(index))
        }
        None => (spec.as_str(), None),
    };
    match name {
        "cpu" | "flex" => {
            if index.is_some() {
                bail!("device {spec:?}: the CPU device takes no index");
            }
            cpu()
        }
        "vulkan" => vulkan(index),
        "metal" => metal(index),
        "wgpu" => wgpu(index),
        "cuda" => cuda(index),
        other => bail!("unknown device {other:?}; expected one of: {DEVICE_HELP}"),
    }
}

fn not_built(device: &str, feature: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "this uae binary was built without the {device} backend; rebuild it with `cargo build --release -p uae-cli --features {feature}`"
    )
}

#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
fn kind(index: Option<usize>) -> burn::tensor::DeviceKind {
    index.map_or(burn::tensor::DeviceKind::DefaultDevice, burn::tensor::DeviceKind::DiscreteGpu)
}

fn cpu() -> Result<Device> {
    #[cfg(feature = "flex")]
    return Ok(Device::flex());
    #[cfg(not(feature = "flex"))]
    Err(not_built("cpu", "flex"))
}

#[allow(unused_variables)]
fn vulkan(index: Option<usize>) -> Result<Device> {
    #[cfg(feature = "vulkan")]
    return Ok(Device::vulkan(kind(index)));
    #[cfg(not(feature = "vulkan"))]
    Err(not_built("vulkan", "vulkan"))
}

#[allow(unused_variables)]
fn metal(index: Option<usize>) -> Result<Device> {
    #[cfg(feature = "metal")]
    return Ok(Device::metal(kind(index)));
    #[cfg(not(feature = "metal"))]
    Err(not_built("metal", "metal"))
}

#[allow(unused_variables)]
fn wgpu(index: Option<usize>) -> Result<Device> {
    #[cfg(feature = "wgpu")]
    return Ok(Device::wgpu(kind(index)));
    #[cfg(not(feature = "wgpu"))]
    Err(not_built("wgpu", "wgpu"))
}

#[allow(unused_variables)]
fn cuda(index: Option<usize>) -> Result<Device> {
    #[cfg(feature = "cuda")]
    return Ok(Device::cuda(index.unwrap_or(0)));
    #[cfg(not(feature = "cuda"))]
    Err(not_built("cuda", "cuda"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_malformed_devices_are_clear_errors() {
        assert!(parse_device("tpu").unwrap_err().to_string().contains("unknown device"));
        assert!(parse_device("cuda:x").unwrap_err().to_string().contains("device index"));
        assert!(parse_device("cpu:1").unwrap_err().to_string().contains("no index"));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_backend_not_built_names_its_feature() {
        let err = parse_device("cuda:0").unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }

    #[cfg(feature = "flex")]
    #[test]
    fn cpu_is_flex() {
        assert!(parse_device("CPU").is_ok());
    }
}
