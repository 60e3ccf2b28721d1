//! Dequantisation of ggml blocks to f32, bit for bit as ggml's
//! `dequantize_row_*` (ggml-quants.c) and gguf-py's `gguf.quants` compute it:
//! the same f32 operations in the same order, so results are identical.
//!
//! Work is split over rayon in chunks of whole blocks.

use anyhow::{Result, bail};
use half::{bf16, f16};
use rayon::prelude::*;

use super::ggml_type::{GgmlType, QK_K};

/// Values per rayon task (a multiple of every block size).
const CHUNK_VALUES: usize = 1 << 14;

/// Dequantises `bytes`, whole blocks of `ggml_type`, to f32 values.
///
/// Errors for a type without a dequantiser here (see
/// [`GgmlType::can_dequantize`]) and for a length that is not a whole number
/// of blocks.
pub fn dequantize(ggml_type: GgmlType, bytes: &[u8]) -> Result<Vec<f32>> {
    let kernel: fn(&[u8], &mut [f32]) = match ggml_type {
        GgmlType::F32 => f32_values,
        GgmlType::F16 => f16_values,
        GgmlType::BF16 => bf16_values,
        GgmlType::Q8_0 => q8_0,
        GgmlType::Q4_0 => q4_0,
        GgmlType::Q4_1 => q4_1,
        GgmlType::Q5_0 => q5_0,
        GgmlType::Q5_1 => q5_1,
        GgmlType::Q4_K => q4_k,
        GgmlType::Q5_K => q5_k,
        GgmlType::Q6_K => q6_k,
        other => bail!("dequantising {other} is not supported"),
    };
    let (block, size) = (ggml_type.block_size(), ggml_type.type_size());
    if bytes.len() % size != 0 {
        bail!("{} bytes are not a whole number of {ggml_type} blocks of {size} bytes", bytes.len());
    }
    let mut out = vec![0f32; bytes.len() / size * block];
    let blocks_per_chunk = CHUNK_VALUES / block;
    out.par_chunks_mut(blocks_per_chunk * block)
        .zip(bytes.par_chunks(blocks_per_chunk * size))
        .for_each(|(dst, src)| kernel(src, dst));
    Ok(out)
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

fn f32_values(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(4).zip(dst) {
        *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

fn f16_values(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(2).zip(dst) {
        *y = f16_at(b, 0);
    }
}

fn bf16_values(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(2).zip(dst) {
        *y = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
    }
}

/// `block_q8_0`: f16 d, 32 × i8 qs; y = qs·d.
fn q8_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(34).zip(dst.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        for (y, &q) in y.iter_mut().zip(&b[2..34]) {
            *y = f32::from(q as i8) * d;
        }
    }
}

/// `block_q4_0`: f16 d, 16 bytes of nibbles (low nibbles are values 0..16,
/// high nibbles 16..32); y = (q − 8)·d.
fn q4_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(18).zip(dst.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        let (lo, hi) = y.split_at_mut(16);
        for (j, &q) in b[2..18].iter().enumerate() {
            lo[j] = f32::from((q & 0x0F) as i8 - 8) * d;
            hi[j] = f32::from((q >> 4) as i8 - 8) * d;
        }
    }
}

/// `block_q4_1`: f16 d, f16 m, 16 bytes of nibbles; y = q·d + m.
fn q4_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(20).zip(dst.chunks_exact_mut(32)) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        let (lo, hi) = y.split_at_mut(16);
        for (j, &q) in b[4..20].iter().enumerate() {
            lo[j] = f32::from(q & 0x0F) * d + m;
            hi[j] = f32::from(q >> 4) * d + m;
        }
    }
}

/// The 5-bit values of a Q5 block: nibbles in `qs`, fifth bits in the u32 `qh`
/// (bit j for value j).
fn q5_values(qh: u32, qs: &[u8]) -> impl Iterator<Item = (usize, u8, u8)> + '_ {
    qs.iter().enumerate().map(move |(j, &q)| {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        (j, (q & 0x0F) | h0, (q >> 4) | h1)
    })
}

/// `block_q5_0`: f16 d, u32 qh, 16 bytes of nibbles; y = (q − 16)·d.
fn q5_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(22).zip(dst.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let (lo, hi) = y.split_at_mut(16);
        for (j, x0, x1) in q5_values(qh, &b[6..22]) {
            lo[j] = f32::from(x0 as i8 - 16) * d;
            hi[j] = f32::from(x1 as i8 - 16) * d;
        }
    }
}

/// `block_q5_1`: f16 d, f16 m, u32 qh, 16 bytes of nibbles; y = q·d + m.
fn q5_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(24).zip(dst.chunks_exact_mut(32)) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let (lo, hi) = y.split_at_mut(16);
        for (j, x0, x1) in q5_values(qh, &b[8..24]) {
            lo[j] = f32::from(x0) * d + m;
            hi[j] = f32::from(x1) * d + m;
        }
    }
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and minimum of sub-block `j`
/// (0..8) packed in the 12 bytes `q`.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// `block_q4_K` (144 bytes): f16 d, f16 dmin, 12 bytes of packed 6-bit
/// scales/minima, 128 bytes of nibbles. Each 64 values use 32 bytes: low
/// nibbles for the first 32 (sub-block 2i), high nibbles for the next 32
/// (sub-block 2i+1); y = (d·sc)·q − dmin·m.
fn q4_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(144).zip(dst.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let scales = &b[4..16];
        for (i, (y, qs)) in y.chunks_exact_mut(64).zip(b[16..144].chunks_exact(32)).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * i, scales);
            let (sc2, m2) = scale_min_k4(2 * i + 1, scales);
            let (d1, m1) = (d * f32::from(sc1), dmin * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), dmin * f32::from(m2));
            let (lo, hi) = y.split_at_mut(32);
            for (l, &q) in qs.iter().enumerate() {
                lo[l] = d1 * f32::from(q & 0x0F) - m1;
                hi[l] = d2 * f32::from(q >> 4) - m2;
            }
        }
    }
}

/// `block_q5_K` (176 bytes): f16 d, f16 dmin, 12 bytes of scales/minima,
/// 32 bytes `qh` (bit 2i / 2i+1 of byte l is the fifth bit of value l of
/// sub-block 2i / 2i+1), 128 bytes of nibbles laid out as in Q4_K.
fn q5_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(176).zip(dst.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let scales = &b[4..16];
        let qh = &b[16..48];
        for (i, (y, ql)) in y.chunks_exact_mut(64).zip(b[48..176].chunks_exact(32)).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * i, scales);
            let (sc2, m2) = scale_min_k4(2 * i + 1, scales);
            let (d1, m1) = (d * f32::from(sc1), dmin * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), dmin * f32::from(m2));
            let (u1, u2) = (1u8 << (2 * i), 2u8 << (2 * i));
            let (lo, hi) = y.split_at_mut(32);
            for (l, &q) in ql.iter().enumerate() {
                let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                lo[l] = d1 * f32::from((q & 0x0F) + h1) - m1;
                hi[l] = d2 * f32::from((q >> 4) + h2) - m2;
            }
        }
    }
}

/// `block_q6_K` (210 bytes): 128 bytes `ql` (low nibbles), 64 bytes `qh`
/// (2 high bits each), 16 × i8 scales, f16 d. Each half of 128 values uses
/// 64 bytes of `ql`, 32 of `qh` and 8 scales; y = (d·sc)·(q − 32).
fn q6_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(210).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 208);
        for (half, y) in y.chunks_exact_mut(128).enumerate() {
            let ql = &b[64 * half..64 * half + 64];
            let qh = &b[128 + 32 * half..128 + 32 * half + 32];
            let sc = &b[192 + 8 * half..192 + 8 * half + 8];
            let ds: [f32; 8] = std::array::from_fn(|k| d * f32::from(sc[k] as i8));
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i8 - 32;
                let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                y[l] = ds[is] * f32::from(q1);
                y[l + 32] = ds[is + 2] * f32::from(q2);
                y[l + 64] = ds[is + 4] * f32::from(q3);
                y[l + 96] = ds[is + 6] * f32::from(q4);
            }
        }
    }
}
