//! Reading the `OXMPI_*` variables that tune a rank. Invariant: a variable that is
//! set is either understood or an [`Error::Config`] naming it; a value that is not
//! UTF-8 is never taken for unset.

use std::ffi::OsString;

use crate::error::{Error, Result};

/// The value of `var`; `None` when unset.
pub(crate) fn text(var: &str) -> Result<Option<String>> {
    utf8(var, std::env::var_os(var))
}

fn utf8(var: &str, value: Option<OsString>) -> Result<Option<String>> {
    match value {
        None => Ok(None),
        Some(v) => v
            .into_string()
            .map(Some)
            .map_err(|v| Error::config(var, v.to_string_lossy(), "text (this value is not UTF-8)")),
    }
}

/// A non-negative integer; `None` when unset.
pub(crate) fn number(var: &str) -> Result<Option<u64>> {
    integer(var, text(var)?)
}

fn integer(var: &str, value: Option<String>) -> Result<Option<u64>> {
    match value {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::config(var, v, "a non-negative integer")),
    }
}

/// A non-negative integer of at most `max`; `None` when unset.
pub(crate) fn number_up_to(var: &str, max: u64) -> Result<Option<u64>> {
    match number(var)? {
        Some(n) if n > max => Err(Error::config(
            var,
            n.to_string(),
            format!("a non-negative integer of at most {max}"),
        )),
        n => Ok(n),
    }
}

/// An on/off switch: unset, empty or `1` is on, `0` off.
pub(crate) fn switch(var: &str) -> Result<bool> {
    match text(var)?.as_deref() {
        None | Some("1" | "") => Ok(true),
        Some("0") => Ok(false),
        Some(other) => Err(Error::config(var, other, "0 or 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn integers_are_checked() {
        let some = |v: &str| Some(v.to_string());
        assert_eq!(integer("V", some(" 42 ")).ok(), Some(Some(42)));
        assert_eq!(integer("V", None).ok(), Some(None));
        for bad in ["-5", "", "4k", "18446744073709551616"] {
            assert!(integer("V", some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_value_that_is_not_utf8_is_an_error_not_unset() {
        let bad = std::ffi::OsStr::from_bytes(b"tc\xffp").to_owned();
        let err = utf8("OXMPI_X", Some(bad)).unwrap_err().to_string();
        assert!(err.contains("OXMPI_X") && err.contains("UTF-8"), "{err}");
        assert_eq!(utf8("OXMPI_X", None).ok(), Some(None));
    }
}
