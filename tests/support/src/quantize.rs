//! Quantisation from f32, for writing GGUF files in tests: Q8_0 bit-exact
//! with ggml's `quantize_row_q8_0_ref` (and gguf-py), and f16.

use anyhow::{Result, bail};
use half::f16;

/// Values per Q8_0 block.
const QK8_0: usize = 32;

/// Quantises `values` (a whole number of blocks of 32) to Q8_0 blocks: per
/// block d = max|x| / 127 stored as f16, and qs = round(x / d) as i8
/// (rounding half away from zero, as C's `roundf`).
pub fn quantize_q8_0(values: &[f32]) -> Result<Vec<u8>> {
    if values.len() % QK8_0 != 0 {
        bail!("Q8_0 needs a multiple of {QK8_0} values, got {}", values.len());
    }
    let mut out = Vec::with_capacity(values.len() / QK8_0 * (2 + QK8_0));
    for block in values.chunks_exact(QK8_0) {
        let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
        out.extend(block.iter().map(|x| (x * id).round() as i8 as u8));
    }
    Ok(out)
}

/// `values` as little-endian f16 (round to nearest even).
pub fn to_f16_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|&x| f16::from_f32(x).to_bits().to_le_bytes()).collect()
}
