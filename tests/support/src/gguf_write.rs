//! A small GGUF writer (version 3, or 2 on request), for tests: metadata of
//! any type and tensors stored as F32, F16 or Q8_0 (quantised here), or as
//! raw blocks of any type.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result, bail};

use uae_model::gguf::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GgmlType, MAGIC, MetadataValue, ValueType};

use crate::quantize::{quantize_q8_0, to_f16_bytes};

/// A tensor waiting to be written.
struct PendingTensor {
    name: String,
    ggml_type: GgmlType,
    /// GGUF order (fastest-varying first).
    dims: Vec<u64>,
    bytes: Vec<u8>,
}

/// Builds a GGUF file in memory: add metadata and tensors, then
/// [`GgufWriter::to_bytes`] or [`GgufWriter::write`].
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, MetadataValue)>,
    tensors: Vec<PendingTensor>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self { version: 3, alignment: DEFAULT_ALIGNMENT, metadata: Vec::new(), tensors: Vec::new() }
    }
}

impl GgufWriter {
    /// An empty version-3 file with the default alignment (32).
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes GGUF version `version` (2 or 3; they differ only in what
    /// readers accept, not in layout).
    pub fn set_version(&mut self, version: u32) -> Result<&mut Self> {
        if !matches!(version, 2 | 3) {
            bail!("cannot write GGUF version {version} (only 2 and 3)");
        }
        self.version = version;
        Ok(self)
    }

    /// Aligns tensor data to `alignment` bytes (a power of two) and records
    /// it as `general.alignment`.
    pub fn set_alignment(&mut self, alignment: u32) -> Result<&mut Self> {
        if !alignment.is_power_of_two() {
            bail!("GGUF alignment {alignment} is not a power of two");
        }
        self.alignment = alignment.into();
        Ok(self.add(ALIGNMENT_KEY, MetadataValue::U32(alignment)))
    }

    /// Adds metadata `key` (a key added twice fails at write time).
    pub fn add(&mut self, key: &str, value: MetadataValue) -> &mut Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Adds a u32 value.
    pub fn add_u32(&mut self, key: &str, value: u32) -> &mut Self {
        self.add(key, MetadataValue::U32(value))
    }

    /// Adds an i32 value.
    pub fn add_i32(&mut self, key: &str, value: i32) -> &mut Self {
        self.add(key, MetadataValue::I32(value))
    }

    /// Adds an f32 value.
    pub fn add_f32(&mut self, key: &str, value: f32) -> &mut Self {
        self.add(key, MetadataValue::F32(value))
    }

    /// Adds a bool value.
    pub fn add_bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.add(key, MetadataValue::Bool(value))
    }

    /// Adds a string value.
    pub fn add_str(&mut self, key: &str, value: &str) -> &mut Self {
        self.add(key, MetadataValue::String(value.to_string()))
    }

    /// Adds an array of strings.
    pub fn add_str_array<S: AsRef<str>>(&mut self, key: &str, values: &[S]) -> &mut Self {
        let items = values.iter().map(|s| MetadataValue::String(s.as_ref().to_string())).collect();
        self.add(key, MetadataValue::Array(ValueType::String, items))
    }

    /// Adds an array of i32.
    pub fn add_i32_array(&mut self, key: &str, values: &[i32]) -> &mut Self {
        self.add(key, MetadataValue::Array(ValueType::I32, values.iter().map(|&v| MetadataValue::I32(v)).collect()))
    }

    /// Adds an array of f32.
    pub fn add_f32_array(&mut self, key: &str, values: &[f32]) -> &mut Self {
        self.add(key, MetadataValue::Array(ValueType::F32, values.iter().map(|&v| MetadataValue::F32(v)).collect()))
    }

    /// Adds tensor `name` of PyTorch-order `shape` from row-major `data`,
    /// stored as `ggml_type`: F32, F16 or Q8_0 (whose last dimension must be
    /// a multiple of 32).
    pub fn add_tensor(&mut self, name: &str, shape: &[usize], data: &[f32], ggml_type: GgmlType) -> Result<&mut Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            bail!("tensor `{name}`: shape {shape:?} holds {n} values, got {}", data.len());
        }
        let bytes = match ggml_type {
            GgmlType::F32 => data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            GgmlType::F16 => to_f16_bytes(data),
            GgmlType::Q8_0 => {
                if shape.last().is_some_and(|row| row % 32 != 0) {
                    bail!("tensor `{name}`: Q8_0 needs rows of a multiple of 32 values, shape is {shape:?}");
                }
                quantize_q8_0(data).with_context(|| format!("tensor `{name}`"))?
            }
            other => bail!("tensor `{name}`: writing {other} from f32 is not supported (F32, F16, Q8_0 are)"),
        };
        self.add_tensor_bytes(name, shape, ggml_type, bytes)
    }

    /// Adds tensor `name` of PyTorch-order `shape` from raw, already encoded
    /// blocks of `ggml_type`.
    pub fn add_tensor_bytes(
        &mut self,
        name: &str,
        shape: &[usize],
        ggml_type: GgmlType,
        bytes: Vec<u8>,
    ) -> Result<&mut Self> {
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        let n: u64 = dims.iter().product();
        let expected = ggml_type.n_bytes(n).with_context(|| format!("tensor `{name}`"))?;
        if expected != bytes.len() as u64 {
            bail!("tensor `{name}`: {n} values of {ggml_type} take {expected} bytes, got {}", bytes.len());
        }
        self.tensors.push(PendingTensor { name: name.to_string(), ggml_type, dims, bytes });
        Ok(self)
    }

    /// The whole file. Errors for a repeated metadata key or tensor name and
    /// for an array whose elements do not match its element type.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        let mut keys = HashSet::new();
        for (key, value) in &self.metadata {
            if !keys.insert(key) {
                bail!("metadata key `{key}` added twice");
            }
            put_string(&mut out, key);
            out.extend_from_slice(&value.value_type().id().to_le_bytes());
            put_value(&mut out, value).with_context(|| format!("metadata key `{key}`"))?;
        }
        let mut names = HashSet::new();
        let mut offset = 0u64;
        for t in &self.tensors {
            if !names.insert(&t.name) {
                bail!("tensor `{}` added twice", t.name);
            }
            put_string(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset = (offset + t.bytes.len() as u64).next_multiple_of(self.alignment);
        }
        for t in &self.tensors {
            out.resize((out.len() as u64).next_multiple_of(self.alignment) as usize, 0);
            out.extend_from_slice(&t.bytes);
        }
        Ok(out)
    }

    /// Writes the file to `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()?).with_context(|| format!("cannot write GGUF file {}", path.display()))
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &MetadataValue) -> Result<()> {
    match value {
        MetadataValue::U8(v) => out.push(*v),
        MetadataValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::Bool(v) => out.push(u8::from(*v)),
        MetadataValue::String(s) => put_string(out, s),
        MetadataValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::Array(element, items) => {
            out.extend_from_slice(&element.id().to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for (i, item) in items.iter().enumerate() {
                if item.value_type() != *element {
                    bail!("array of {element:?} has a {:?} at index {i}", item.value_type());
                }
                put_value(out, item)?;
            }
        }
    }
    Ok(())
}
