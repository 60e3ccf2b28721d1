//! The checks the model configurations share: a count that must be above
//! zero and a float that must be finite and above zero, with an error naming
//! the field as the file spells it.

use anyhow::{Result, bail};

/// An error naming `field` unless `value` is above zero.
pub(crate) fn positive(field: &str, value: usize) -> Result<()> {
    if value == 0 {
        bail!("{field} is 0; it must be at least 1");
    }
    Ok(())
}

/// An error naming `field` unless `value` is finite and above zero (an
/// epsilon, a rotary base or a scaling factor).
pub(crate) fn positive_finite(field: &str, value: f64) -> Result<()> {
    if !(value.is_finite() && value > 0.0) {
        bail!("{field} is {value}; it must be a finite number above 0");
    }
    Ok(())
}
