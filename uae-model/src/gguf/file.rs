//! A memory-mapped GGUF file: its header, and its tensors' bytes and values.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use memmap2::Mmap;

use super::dequant::dequantize;
use super::header::{self, Header};
use super::metadata::Metadata;
use super::tensor::{TensorF32, TensorInfo};

/// An open GGUF file (versions 2 and 3). The header is parsed and every
/// tensor's byte range checked on open; tensor data is read from the memory
/// map on demand.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    header: Header,
    index: HashMap<String, usize>,
}

impl GgufFile {
    /// Opens and memory-maps `path`, parses its header and checks that every
    /// tensor lies inside the file (an error names the first that does not).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).with_context(|| format!("cannot open GGUF file {}", path.display()))?;
        // SAFETY: the map is read-only and private to this struct; as with
        // every memory-mapped model loader, the file must not be truncated
        // or rewritten by another process while it is open.
        let mmap = unsafe { Mmap::map(&file) }.with_context(|| format!("cannot memory-map {}", path.display()))?;
        let source = path.display().to_string();
        let header = header::parse(&mmap, &source)?;
        let index = header.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        let gguf = Self { path, mmap, header, index };
        for info in &gguf.header.tensors {
            gguf.byte_range(info)?;
        }
        Ok(gguf)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// Data alignment in bytes (`general.alignment`, 32 by default).
    pub fn alignment(&self) -> u64 {
        self.header.alignment
    }

    /// All metadata, with typed getters (`get_u32`, `get_str`, ...) that name
    /// the file and key in their errors.
    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    /// Shorthand for `metadata().get_u32(key)`.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.metadata().get_u32(key)
    }

    /// Shorthand for `metadata().get_f32(key)`.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.metadata().get_f32(key)
    }

    /// Shorthand for `metadata().get_str(key)`.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.metadata().get_str(key)
    }

    /// Shorthand for `metadata().get_u32_opt(key)`.
    pub fn get_u32_opt(&self, key: &str) -> Result<Option<u32>> {
        self.metadata().get_u32_opt(key)
    }

    /// Shorthand for `metadata().get_f32_opt(key)`.
    pub fn get_f32_opt(&self, key: &str) -> Result<Option<f32>> {
        self.metadata().get_f32_opt(key)
    }

    /// Shorthand for `metadata().get_str_opt(key)`.
    pub fn get_str_opt(&self, key: &str) -> Result<Option<&str>> {
        self.metadata().get_str_opt(key)
    }

    /// `general.architecture`, e.g. `llama`; metadata keys of the model
    /// start with it (`llama.block_count`).
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// Tensor names, in file order.
    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.header.tensors.iter().map(|t| t.name.as_str())
    }

    /// Whether the file has a tensor `name`.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The info of tensor `name`, or an error naming it and the file.
    pub fn tensor_info(&self, name: &str) -> Result<&TensorInfo> {
        self.index
            .get(name)
            .map(|&i| &self.header.tensors[i])
            .ok_or_else(|| anyhow!("{}: no tensor `{name}`", self.path.display()))
    }

    /// The raw (quantised) bytes of tensor `name`.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let info = self.tensor_info(name)?;
        let (start, end) = self.byte_range(info)?;
        Ok(&self.mmap[start..end])
    }

    /// Tensor `name` dequantised to f32, with its shape in PyTorch order.
    pub fn tensor_f32(&self, name: &str) -> Result<TensorF32> {
        let info = self.tensor_info(name)?;
        let data = dequantize(info.ggml_type, self.tensor_bytes(name)?)
            .with_context(|| format!("{}: tensor `{name}`", self.path.display()))?;
        Ok(TensorF32 { data, shape: info.shape() })
    }

    /// Start and end of `info`'s data in the file, checked against its length.
    fn byte_range(&self, info: &TensorInfo) -> Result<(usize, usize)> {
        let file = self.path.display();
        let n_bytes = info.n_bytes().with_context(|| file.to_string())?;
        if info.offset % self.header.alignment != 0 {
            bail!(
                "{file}: tensor `{}` starts at data offset {}, not a multiple of the alignment {}",
                info.name,
                info.offset,
                self.header.alignment
            );
        }
        let start = self.header.data_offset.checked_add(info.offset);
        let end = start.and_then(|s| s.checked_add(n_bytes));
        match (start, end) {
            (Some(start), Some(end)) if end <= self.mmap.len() as u64 => Ok((start as usize, end as usize)),
            _ => bail!(
                "{file}: tensor `{}` ({}, {n_bytes} bytes at data offset {}) ends past the end of the file \
                 ({} bytes): the file is truncated or corrupt",
                info.name,
                info.ggml_type,
                info.offset,
                self.mmap.len()
            ),
        }
    }
}
