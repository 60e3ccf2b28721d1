//! GGUF metadata: the typed key/value pairs in a file's header, and getters
//! that name the key (and the file) when it is missing or of the wrong type.

use std::collections::HashMap;
use std::fmt;

use anyhow::{Result, anyhow, bail};

/// The type tag of a metadata value, with its id in a GGUF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// `uint8` (0).
    U8,
    /// `int8` (1).
    I8,
    /// `uint16` (2).
    U16,
    /// `int16` (3).
    I16,
    /// `uint32` (4).
    U32,
    /// `int32` (5).
    I32,
    /// `float32` (6).
    F32,
    /// `bool` (7), one byte, 0 or 1.
    Bool,
    /// `string` (8): u64 length and UTF-8 bytes.
    String,
    /// `array` (9): element type, u64 count, elements.
    Array,
    /// `uint64` (10).
    U64,
    /// `int64` (11).
    I64,
    /// `float64` (12).
    F64,
}

impl ValueType {
    const ALL: [ValueType; 13] = [
        ValueType::U8,
        ValueType::I8,
        ValueType::U16,
        ValueType::I16,
        ValueType::U32,
        ValueType::I32,
        ValueType::F32,
        ValueType::Bool,
        ValueType::String,
        ValueType::Array,
        ValueType::U64,
        ValueType::I64,
        ValueType::F64,
    ];

    /// The type with GGUF id `id`, or an error for an unknown id.
    pub fn from_id(id: u32) -> Result<Self> {
        Self::ALL.get(id as usize).copied().ok_or_else(|| anyhow!("unknown metadata value type id {id}"))
    }

    /// The type's id in a GGUF file.
    pub fn id(self) -> u32 {
        Self::ALL.iter().position(|t| *t == self).unwrap_or_default() as u32
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    /// `uint8`.
    U8(u8),
    /// `int8`.
    I8(i8),
    /// `uint16`.
    U16(u16),
    /// `int16`.
    I16(i16),
    /// `uint32`.
    U32(u32),
    /// `int32`.
    I32(i32),
    /// `float32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// `string`.
    String(String),
    /// `array`: the element type (kept so that empty arrays round-trip) and
    /// the elements, which may themselves be arrays.
    Array(ValueType, Vec<MetadataValue>),
    /// `uint64`.
    U64(u64),
    /// `int64`.
    I64(i64),
    /// `float64`.
    F64(f64),
}

impl MetadataValue {
    /// The value's type tag.
    pub fn value_type(&self) -> ValueType {
        match self {
            Self::U8(_) => ValueType::U8,
            Self::I8(_) => ValueType::I8,
            Self::U16(_) => ValueType::U16,
            Self::I16(_) => ValueType::I16,
            Self::U32(_) => ValueType::U32,
            Self::I32(_) => ValueType::I32,
            Self::F32(_) => ValueType::F32,
            Self::Bool(_) => ValueType::Bool,
            Self::String(_) => ValueType::String,
            Self::Array(..) => ValueType::Array,
            Self::U64(_) => ValueType::U64,
            Self::I64(_) => ValueType::I64,
            Self::F64(_) => ValueType::F64,
        }
    }

    /// Any integer value widened to `i128` (every GGUF integer fits).
    fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Self::U8(v) => v.into(),
            Self::I8(v) => v.into(),
            Self::U16(v) => v.into(),
            Self::I16(v) => v.into(),
            Self::U32(v) => v.into(),
            Self::I32(v) => v.into(),
            Self::U64(v) => v.into(),
            Self::I64(v) => v.into(),
            _ => return None,
        })
    }
}

impl fmt::Display for MetadataValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => write!(f, "string {s:?}"),
            Self::Array(t, items) => write!(f, "array of {} {t:?}", items.len()),
            other => write!(f, "{other:?}"),
        }
    }
}

/// A Rust type a metadata value can be read as, with [`Metadata::get`].
///
/// Integers convert between GGUF's integer types when the value fits (files
/// disagree on, say, u32 vs i32 for token ids); floats accept f32 and f64.
pub trait FromMetadata<'a>: Sized {
    /// What the caller asked for, for error messages ("u32", "array of string").
    fn expected() -> String;
    /// The value as `Self`, or `None` when its type does not convert.
    fn from_metadata(value: &'a MetadataValue) -> Option<Self>;
}

macro_rules! integer_from_metadata {
    ($($t:ty),*) => {$(
        impl<'a> FromMetadata<'a> for $t {
            fn expected() -> String {
                stringify!($t).to_string()
            }
            fn from_metadata(value: &'a MetadataValue) -> Option<Self> {
                value.as_integer().and_then(|v| <$t>::try_from(v).ok())
            }
        }
    )*};
}
integer_from_metadata!(u8, i8, u16, i16, u32, i32, u64, i64, usize);

impl<'a> FromMetadata<'a> for f32 {
    fn expected() -> String {
        "f32".to_string()
    }
    fn from_metadata(value: &'a MetadataValue) -> Option<Self> {
        match *value {
            MetadataValue::F32(v) => Some(v),
            MetadataValue::F64(v) => Some(v as f32),
            _ => None,
        }
    }
}

impl<'a> FromMetadata<'a> for f64 {
    fn expected() -> String {
        "f64".to_string()
    }
    fn from_metadata(value: &'a MetadataValue) -> Option<Self> {
        match *value {
            MetadataValue::F32(v) => Some(v.into()),
            MetadataValue::F64(v) => Some(v),
            _ => None,
        }
    }
}

impl<'a> FromMetadata<'a> for bool {
    fn expected() -> String {
        "bool".to_string()
    }
    fn from_metadata(value: &'a MetadataValue) -> Option<Self> {
        match *value {
            MetadataValue::Bool(v) => Some(v),
            _ => None,
        }
    }
}

impl<'a> FromMetadata<'a> for &'a str {
    fn expected() -> String {
        "string".to_string()
    }
    fn from_metadata(value: &'a MetadataValue) -> Option<Self> {
        match value {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Arrays read element by element: `Vec<&str>`, `Vec<i32>`, `Vec<f32>`, ...
impl<'a, T: FromMetadata<'a>> FromMetadata<'a> for Vec<T> {
    fn expected() -> String {
        format!("array of {}", T::expected())
    }
    fn from_metadata(value: &'a MetadataValue) -> Option<Self> {
        match value {
            MetadataValue::Array(_, items) => items.iter().map(T::from_metadata).collect(),
            _ => None,
        }
    }
}

/// A file's metadata, in file order, with lookup by key.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    source: String,
    entries: Vec<(String, MetadataValue)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// Empty metadata; `source` (a file name) prefixes every error message.
    pub fn new(source: impl Into<String>) -> Self {
        Self { source: source.into(), ..Self::default() }
    }

    /// Adds `key`; a key already present is an error (GGUF keys are unique).
    pub fn insert(&mut self, key: String, value: MetadataValue) -> Result<()> {
        if self.index.contains_key(&key) {
            bail!("{}: metadata key `{key}` appears twice", self.source);
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        Ok(())
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[(String, MetadataValue)] {
        &self.entries
    }

    /// The raw value of `key`, if present.
    pub fn value(&self, key: &str) -> Option<&MetadataValue> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// `key` read as `T`; an error names the file and the key when it is
    /// missing or cannot be read as `T`.
    pub fn get<'a, T: FromMetadata<'a>>(&'a self, key: &str) -> Result<T> {
        self.get_opt(key)?.ok_or_else(|| anyhow!("{}: metadata key `{key}` is missing", self.source))
    }

    /// `key` read as `T`, `None` when it is absent; a present value of the
    /// wrong type is still an error naming the key.
    pub fn get_opt<'a, T: FromMetadata<'a>>(&'a self, key: &str) -> Result<Option<T>> {
        match self.value(key) {
            None => Ok(None),
            Some(value) => T::from_metadata(value)
                .map(Some)
                .ok_or_else(|| anyhow!("{}: metadata key `{key}` is {value}, expected {}", self.source, T::expected())),
        }
    }

    /// `key` as a u32 (e.g. `llama.block_count`).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get(key)
    }

    /// `key` as a u64.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get(key)
    }

    /// `key` as an i32.
    pub fn get_i32(&self, key: &str) -> Result<i32> {
        self.get(key)
    }

    /// `key` as an f32 (e.g. `llama.rope.freq_base`).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.get(key)
    }

    /// `key` as a bool.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.get(key)
    }

    /// `key` as a string (e.g. `general.architecture`).
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.get(key)
    }

    /// `key` as an array of strings (e.g. `tokenizer.ggml.tokens`).
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.get(key)
    }

    /// `key` as an array of i32 (e.g. `tokenizer.ggml.token_type`).
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        self.get(key)
    }

    /// `key` as an array of f32 (e.g. `tokenizer.ggml.scores`).
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.get(key)
    }

    /// `key` as a u32, `None` when absent.
    pub fn get_u32_opt(&self, key: &str) -> Result<Option<u32>> {
        self.get_opt(key)
    }

    /// `key` as an f32, `None` when absent.
    pub fn get_f32_opt(&self, key: &str) -> Result<Option<f32>> {
        self.get_opt(key)
    }

    /// `key` as a bool, `None` when absent.
    pub fn get_bool_opt(&self, key: &str) -> Result<Option<bool>> {
        self.get_opt(key)
    }

    /// `key` as a string, `None` when absent.
    pub fn get_str_opt(&self, key: &str) -> Result<Option<&str>> {
        self.get_opt(key)
    }
}
