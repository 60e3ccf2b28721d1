//! The wgpu path on a real device. In CI that is lavapipe, Mesa's CPU Vulkan
//! driver (Debian's mesa-vulkan-drivers), so the shapes are tiny; on a
//! machine with a GPU the same test runs there.
//!
//! It runs with the `wgpu` feature, whose WGSL kernels naga turns into SPIR-V
//! for Vulkan. The `vulkan` feature swaps in CubeCL's own SPIR-V compiler,
//! whose matmul kernel crashes Debian 12's lavapipe (Mesa 22.3) while the
//! pipeline is created, so it is checked on real GPUs only.
#![cfg(feature = "wgpu")]

use burn::tensor::{Device, DeviceKind};
use uae_model::encoder::{BiEncoder, EncoderOptions, TextRole};
use uae_test_support::tiny_bert::{TinyBertSpec, write_tiny_bert};

#[test]
fn tiny_encoder_on_wgpu_matches_cpu() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), &TinyBertSpec::default()).unwrap();
    let texts: Vec<String> = ["a", "what is the answer", "why does python code work so fast"].iter().map(|s| s.to_string()).collect();
    let embed = |device: Device| {
        let encoder = BiEncoder::load(dir.path().to_str().unwrap(), &device, &EncoderOptions::default()).unwrap();
        encoder.embed(&texts, TextRole::Passage, 64, |_| {}).unwrap().vectors
    };
    let cpu = embed(Device::flex());
    let gpu = embed(Device::wgpu(DeviceKind::DefaultDevice));
    let mut worst = 0f32;
    for (a, b) in cpu.iter().flatten().zip(gpu.iter().flatten()) {
        worst = worst.max((a - b).abs());
    }
    eprintln!("largest wgpu-vs-CPU difference: {worst:e}");
    assert!(worst <= 1e-4, "wgpu and CPU differ by {worst}");
}

