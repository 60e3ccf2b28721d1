//! Parsing of a GGUF header (little-endian, versions 2 and 3): magic,
//! version, metadata key/values and tensor infos.
//!
//! Layout (<https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>):
//! `"GGUF"`, u32 version, u64 tensor count, u64 metadata count, the metadata
//! (string key, u32 value type, value), the tensor infos (string name, u32
//! dimension count, u64 dims, u32 ggml type, u64 offset), padding to the
//! alignment, then the tensor data. Strings are a u64 length and UTF-8 bytes.

use std::collections::HashSet;

use anyhow::{Context, Result, anyhow, bail};

use super::ggml_type::GgmlType;
use super::metadata::{Metadata, MetadataValue, ValueType};
use super::tensor::TensorInfo;

/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Metadata key that sets the data alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// The most dimensions a ggml tensor has.
const MAX_DIMS: u32 = 4;
/// Nesting limit for arrays of arrays (a guard against hostile files).
const MAX_ARRAY_DEPTH: usize = 8;

/// A parsed header.
pub struct Header {
    /// GGUF version (2 or 3).
    pub version: u32,
    /// All metadata.
    pub metadata: Metadata,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Data alignment in bytes.
    pub alignment: u64,
    /// Byte offset of the data section from the start of the file.
    pub data_offset: u64,
}

/// Parses the header at the start of `bytes`; `source` (the file name)
/// prefixes every error.
pub fn parse(bytes: &[u8], source: &str) -> Result<Header> {
    let mut cur = Cursor { bytes, pos: 0 };
    let magic = cur.take(4).with_context(|| format!("{source}: reading the magic"))?;
    if magic != MAGIC {
        bail!("{source}: not a GGUF file (starts with {magic:02x?}, not \"GGUF\")");
    }
    let version = cur.u32().with_context(|| format!("{source}: reading the version"))?;
    match version {
        2 | 3 => {}
        1 => bail!("{source}: GGUF version 1 is not supported (only 2 and 3)"),
        v if matches!(v.swap_bytes(), 2 | 3) => bail!("{source}: big-endian GGUF files are not supported"),
        v => bail!("{source}: unknown GGUF version {v} (only 2 and 3)"),
    }
    let n_tensors = cur.u64().with_context(|| format!("{source}: reading the tensor count"))?;
    let n_kv = cur.u64().with_context(|| format!("{source}: reading the metadata count"))?;

    let mut metadata = Metadata::new(source);
    for i in 0..n_kv {
        let key = cur.string().with_context(|| format!("{source}: reading the key of metadata entry {i}"))?;
        let value = cur
            .u32()
            .and_then(ValueType::from_id)
            .and_then(|t| cur.value(t, 0))
            .with_context(|| format!("{source}: reading metadata key `{key}`"))?;
        metadata.insert(key, value)?;
    }

    let mut tensors = Vec::with_capacity(cur.capacity_for(n_tensors, 24));
    let mut names = HashSet::new();
    for i in 0..n_tensors {
        let info = cur.tensor_info().with_context(|| format!("{source}: reading tensor info {i}"))?;
        if !names.insert(info.name.clone()) {
            bail!("{source}: tensor `{}` appears twice", info.name);
        }
        tensors.push(info);
    }

    let alignment = match metadata.get_opt::<u64>(ALIGNMENT_KEY)? {
        None => DEFAULT_ALIGNMENT,
        Some(a) if a.is_power_of_two() => a,
        Some(a) => bail!("{source}: metadata key `{ALIGNMENT_KEY}` is {a}, not a power of two"),
    };
    let data_offset = (cur.pos as u64).next_multiple_of(alignment);
    Ok(Header { version, metadata, tensors, alignment, data_offset })
}

/// A read position in the file's bytes; every read checks the length.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or_else(|| {
            anyhow!(
                "the file is truncated: {n} bytes needed at byte {}, but it has {} bytes",
                self.pos,
                self.bytes.len()
            )
        })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A `Vec` capacity for `count` items of at least `min_size` bytes each,
    /// bounded by the bytes left (a corrupt count must not allocate wildly).
    fn capacity_for(&self, count: u64, min_size: usize) -> usize {
        let left = (self.bytes.len() - self.pos) / min_size.max(1);
        usize::try_from(count).unwrap_or(usize::MAX).min(left)
    }

    fn string(&mut self) -> Result<String> {
        let len = self.u64()?;
        let len = usize::try_from(len).map_err(|_| anyhow!("string length {len} does not fit in memory"))?;
        let start = self.pos;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| anyhow!("the string at byte {start} is not UTF-8: {e}"))
    }

    fn value(&mut self, value_type: ValueType, depth: usize) -> Result<MetadataValue> {
        Ok(match value_type {
            ValueType::U8 => MetadataValue::U8(u8::from_le_bytes(self.array()?)),
            ValueType::I8 => MetadataValue::I8(i8::from_le_bytes(self.array()?)),
            ValueType::U16 => MetadataValue::U16(u16::from_le_bytes(self.array()?)),
            ValueType::I16 => MetadataValue::I16(i16::from_le_bytes(self.array()?)),
            ValueType::U32 => MetadataValue::U32(self.u32()?),
            ValueType::I32 => MetadataValue::I32(i32::from_le_bytes(self.array()?)),
            ValueType::F32 => MetadataValue::F32(f32::from_le_bytes(self.array()?)),
            ValueType::Bool => match self.array::<1>()?[0] {
                0 => MetadataValue::Bool(false),
                1 => MetadataValue::Bool(true),
                b => bail!("bool at byte {} is {b}, not 0 or 1", self.pos - 1),
            },
            ValueType::String => MetadataValue::String(self.string()?),
            ValueType::U64 => MetadataValue::U64(self.u64()?),
            ValueType::I64 => MetadataValue::I64(i64::from_le_bytes(self.array()?)),
            ValueType::F64 => MetadataValue::F64(f64::from_le_bytes(self.array()?)),
            ValueType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    bail!("arrays nested deeper than {MAX_ARRAY_DEPTH}");
                }
                let element = ValueType::from_id(self.u32()?)?;
                let count = self.u64()?;
                let mut items = Vec::with_capacity(self.capacity_for(count, 1));
                for i in 0..count {
                    items.push(self.value(element, depth + 1).with_context(|| format!("array element {i}"))?);
                }
                MetadataValue::Array(element, items)
            }
        })
    }

    fn tensor_info(&mut self) -> Result<TensorInfo> {
        let name = self.string()?;
        let read = |cur: &mut Self| -> Result<TensorInfo> {
            let n_dims = cur.u32()?;
            if n_dims > MAX_DIMS {
                bail!("{n_dims} dimensions, ggml allows at most {MAX_DIMS}");
            }
            let dims = (0..n_dims).map(|_| cur.u64()).collect::<Result<Vec<_>>>()?;
            let ggml_type = GgmlType::from_id(cur.u32()?)?;
            let offset = cur.u64()?;
            Ok(TensorInfo { name: String::new(), ggml_type, dims, offset })
        };
        let info = read(self).with_context(|| format!("tensor `{name}`"))?;
        Ok(TensorInfo { name, ..info })
    }
}
