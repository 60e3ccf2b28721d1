//! The loss module's error type.

use std::fmt;

/// Why a loss could not be computed or a batch failed its guard.
#[derive(Debug, Clone, PartialEq)]
pub enum LossError {
    /// A configuration value is out of range, or an unknown loss name.
    InvalidConfig(String),
    /// The loss needs an input the batch does not carry.
    MissingInput(&'static str),
    /// Tensor shapes or lengths disagree.
    Shape(String),
    /// A gold positive index is outside the query's candidate pool.
    PositiveOutOfRange {
        /// The query row.
        row: usize,
        /// The offending index.
        positive: usize,
        /// The pool size `K`.
        candidates: usize,
    },
    /// A teacher utility is NaN or infinite.
    NonFiniteUtility {
        /// The query row.
        row: usize,
        /// The candidate column.
        column: usize,
        /// The value found.
        value: f32,
    },
    /// A query's loss is NaN or infinite.
    NonFiniteLoss {
        /// The query row.
        row: usize,
        /// The value found.
        value: f32,
    },
    /// A tensor could not be read back to the host.
    Read(String),
}

impl fmt::Display for LossError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossError::InvalidConfig(message) => write!(f, "invalid loss configuration: {message}"),
            LossError::MissingInput(what) => write!(f, "the loss needs {what}, which the batch lacks"),
            LossError::Shape(message) => write!(f, "loss input shapes: {message}"),
            LossError::PositiveOutOfRange {
                row,
                positive,
                candidates,
            } => write!(
                f,
                "query row {row}: positive index {positive} is outside its {candidates} candidates"
            ),
            LossError::NonFiniteUtility { row, column, value } => write!(
                f,
                "query row {row}: teacher utility of candidate {column} is {value}; \
                 the loss and every gradient would turn NaN"
            ),
            LossError::NonFiniteLoss { row, value } => write!(
                f,
                "query row {row}: loss is {value}; check that row's similarities and utilities"
            ),
            LossError::Read(message) => write!(f, "reading a loss tensor back: {message}"),
        }
    }
}

impl std::error::Error for LossError {}
