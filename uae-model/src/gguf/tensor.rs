//! Tensor descriptions from a GGUF header, and dequantised tensors.

use anyhow::{Result, anyhow};

use super::ggml_type::GgmlType;

/// One tensor's entry in a GGUF header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Dimensions as GGUF stores them (ggml's `ne`): fastest-varying first.
    pub dims: Vec<u64>,
    /// Byte offset of the data from the start of the file's data section.
    pub offset: u64,
}

impl TensorInfo {
    /// The shape in PyTorch (row-major) order: `dims` reversed. GGUF's
    /// `token_embd.weight` with `dims` [576, 49152] has shape [49152, 576].
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Number of values (1 for a scalar with no dims).
    pub fn n_elements(&self) -> Result<u64> {
        self.dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .ok_or_else(|| anyhow!("tensor `{}`: dims {:?} overflow a 64-bit count", self.name, self.dims))
    }

    /// Bytes of data, or an error when the row length is not a whole number
    /// of blocks of the tensor's type.
    pub fn n_bytes(&self) -> Result<u64> {
        let row = self.dims.first().copied().unwrap_or(1);
        let block = self.ggml_type.block_size() as u64;
        if row % block != 0 {
            return Err(anyhow!(
                "tensor `{}`: rows of {row} values are not a whole number of {} blocks of {block}",
                self.name,
                self.ggml_type
            ));
        }
        self.ggml_type.n_bytes(self.n_elements()?).map_err(|e| anyhow!("tensor `{}`: {e}", self.name))
    }
}

/// A tensor dequantised to f32.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorF32 {
    /// Values in row-major order.
    pub data: Vec<f32>,
    /// Shape in PyTorch (row-major) order, see [`TensorInfo::shape`].
    pub shape: Vec<usize>,
}
