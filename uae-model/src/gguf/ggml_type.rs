//! ggml tensor element types: their ids in a GGUF file and their block layout
//! (how many values one block holds and how many bytes it takes).

use std::fmt;

use anyhow::{Result, bail};

/// Values per block of the K-quants (ggml's `QK_K`).
pub const QK_K: usize = 256;

/// A ggml tensor type, as stored in a GGUF tensor info.
///
/// Every type ggml defines is listed, so that a file holding one this crate
/// cannot dequantise still opens (its other tensors stay readable); see
/// [`GgmlType::can_dequantize`].
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half float.
    F16,
    /// 4-bit, blocks of 32 with an f16 scale.
    Q4_0,
    /// 4-bit, blocks of 32 with an f16 scale and minimum.
    Q4_1,
    /// 5-bit, blocks of 32 with an f16 scale.
    Q5_0,
    /// 5-bit, blocks of 32 with an f16 scale and minimum.
    Q5_1,
    /// 8-bit, blocks of 32 with an f16 scale.
    Q8_0,
    /// 8-bit, blocks of 32 with f32 scale and sum (activations only).
    Q8_1,
    /// 2-bit K-quant.
    Q2_K,
    /// 3-bit K-quant.
    Q3_K,
    /// 4-bit K-quant: super-blocks of 256 with 6-bit sub-block scales and minima.
    Q4_K,
    /// 5-bit K-quant: as `Q4_K` plus one high bit per value.
    Q5_K,
    /// 6-bit K-quant: super-blocks of 256 with 8-bit sub-block scales.
    Q6_K,
    /// 8-bit K-quant (activations only).
    Q8_K,
    /// Importance-matrix 2.06 bpw.
    IQ2_XXS,
    /// Importance-matrix 2.31 bpw.
    IQ2_XS,
    /// Importance-matrix 3.06 bpw.
    IQ3_XXS,
    /// Importance-matrix 1.56 bpw.
    IQ1_S,
    /// Importance-matrix non-linear 4-bit, blocks of 32.
    IQ4_NL,
    /// Importance-matrix 3.44 bpw.
    IQ3_S,
    /// Importance-matrix 2.5 bpw.
    IQ2_S,
    /// Importance-matrix non-linear 4.25 bpw.
    IQ4_XS,
    /// 8-bit integer.
    I8,
    /// 16-bit integer.
    I16,
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 64-bit float.
    F64,
    /// Importance-matrix 1.75 bpw.
    IQ1_M,
    /// bfloat16.
    BF16,
    /// Ternary 1.69 bpw.
    TQ1_0,
    /// Ternary 2.06 bpw.
    TQ2_0,
    /// Microscaling FP4.
    MXFP4,
    /// NVIDIA FP4.
    NVFP4,
    /// 1-bit, blocks of 128.
    Q1_0,
}

/// Every type with its id, values per block and bytes per block (ggml's
/// `type_traits`, gguf-py's `GGML_QUANT_SIZES`).
const TABLE: &[(GgmlType, u32, usize, usize)] = {
    use GgmlType::*;
    &[
        (F32, 0, 1, 4),
        (F16, 1, 1, 2),
        (Q4_0, 2, 32, 2 + 16),
        (Q4_1, 3, 32, 2 + 2 + 16),
        (Q5_0, 6, 32, 2 + 4 + 16),
        (Q5_1, 7, 32, 2 + 2 + 4 + 16),
        (Q8_0, 8, 32, 2 + 32),
        (Q8_1, 9, 32, 4 + 4 + 32),
        (Q2_K, 10, QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
        (Q3_K, 11, QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
        (Q4_K, 12, QK_K, 2 + 2 + QK_K / 2 + 12),
        (Q5_K, 13, QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12),
        (Q6_K, 14, QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16),
        (Q8_K, 15, QK_K, 4 + QK_K + QK_K / 8),
        (IQ2_XXS, 16, QK_K, 2 + QK_K / 4),
        (IQ2_XS, 17, QK_K, 2 + QK_K / 4 + QK_K / 32),
        (IQ3_XXS, 18, QK_K, 2 + QK_K / 4 + QK_K / 8),
        (IQ1_S, 19, QK_K, 2 + QK_K / 8 + QK_K / 16),
        (IQ4_NL, 20, 32, 2 + 16),
        (IQ3_S, 21, QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4),
        (IQ2_S, 22, QK_K, 2 + QK_K / 4 + QK_K / 16),
        (IQ4_XS, 23, QK_K, 2 + 2 + QK_K / 2 + QK_K / 64),
        (I8, 24, 1, 1),
        (I16, 25, 1, 2),
        (I32, 26, 1, 4),
        (I64, 27, 1, 8),
        (F64, 28, 1, 8),
        (IQ1_M, 29, QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
        (BF16, 30, 1, 2),
        (TQ1_0, 34, QK_K, 2 + 4 * 13),
        (TQ2_0, 35, QK_K, 2 + 64),
        (MXFP4, 39, 32, 1 + 16),
        (NVFP4, 40, 64, 4 + 32),
        (Q1_0, 41, 128, 2 + 16),
    ]
};

impl GgmlType {
    /// The type with ggml id `id`, or an error for an id ggml does not define.
    pub fn from_id(id: u32) -> Result<Self> {
        match TABLE.iter().find(|row| row.1 == id) {
            Some(row) => Ok(row.0),
            None => bail!("unknown ggml tensor type id {id}"),
        }
    }

    fn row(self) -> &'static (GgmlType, u32, usize, usize) {
        TABLE.iter().find(|row| row.0 == self).expect("every GgmlType variant has a TABLE row")
    }

    /// The type's id in a GGUF file.
    pub fn id(self) -> u32 {
        self.row().1
    }

    /// Values per block (1 for plain element types).
    pub fn block_size(self) -> usize {
        self.row().2
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        self.row().3
    }

    /// Whether [`crate::gguf::dequant::dequantize`] handles this type.
    pub fn can_dequantize(self) -> bool {
        use GgmlType::*;
        matches!(self, F32 | F16 | BF16 | Q8_0 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q4_K | Q5_K | Q6_K)
    }

    /// Bytes taken by `n_elements` values, or an error when `n_elements` is
    /// not a whole number of blocks.
    pub fn n_bytes(self, n_elements: u64) -> Result<u64> {
        let block = self.block_size() as u64;
        if n_elements % block != 0 {
            bail!("{n_elements} values are not a whole number of {self} blocks of {block}");
        }
        (n_elements / block)
            .checked_mul(self.type_size() as u64)
            .ok_or_else(|| anyhow::anyhow!("{n_elements} values of {self} overflow a 64-bit size"))
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
