//! The PMI-1 wire format: one command per line, `key=value` pairs separated by spaces,
//! the first pair always `cmd=NAME`.
//!
//! Shared by the client in [`crate::bootstrap`] and the server in `oxrun`, so both sides
//! parse and print lines the same way. Values may not contain spaces, `=` or newlines
//! (the protocol has no quoting); [`Line::push`] refuses them instead of sending a line
//! the peer would misread.
//!
//! ```
//! use oxmpi::bootstrap::wire::Line;
//! let line = Line::parse("cmd=put kvsname=kvs_1 key=addr-0 value=127.0.0.1:4000").unwrap();
//! assert_eq!(line.cmd(), "put");
//! assert_eq!(line.get("key"), Some("addr-0"));
//!
//! let mut reply = Line::new("put_result");
//! reply.push("rc", "0").unwrap();
//! assert_eq!(reply.to_string(), "cmd=put_result rc=0\n");
//! ```

use std::fmt;

/// Longest line either side accepts, newline included (MPICH's limit is 1024).
pub const MAX_LINE: usize = 4096;

/// One parsed or to-be-sent PMI-1 line.
///
/// ```
/// use oxmpi::bootstrap::wire::Line;
/// let line = Line::parse("cmd=barrier_out\n").unwrap();
/// assert_eq!(line, Line::new("barrier_out"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    cmd: String,
    pairs: Vec<(String, String)>,
}

/// Why a line could not be parsed or built.
///
/// ```
/// use oxmpi::bootstrap::wire::{Line, WireError};
/// assert!(matches!(Line::parse("get key=x"), Err(WireError::NoCmd(_))));
/// assert!(matches!(Line::parse("cmd=get key"), Err(WireError::BadPair(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The line did not start with `cmd=`.
    #[error("PMI line does not start with cmd=: {0:?}")]
    NoCmd(String),
    /// A word had no `=`.
    #[error("PMI word without '=': {0:?}")]
    BadPair(String),
    /// A key or value held a space, `=` or a newline, or was empty where not allowed.
    #[error("PMI key or value not encodable: {0:?}")]
    BadToken(String),
    /// The line was longer than [`MAX_LINE`].
    #[error("PMI line longer than {MAX_LINE} bytes")]
    TooLong,
}

/// Whether `s` can be a key or value of a line (no space, `=`, tab or line break).
///
/// ```
/// use oxmpi::bootstrap::wire::valid_token;
/// assert!(valid_token("abc") && !valid_token("a\tb"));
/// ```
pub fn valid_token(s: &str) -> bool {
    !s.contains([' ', '=', '\n', '\r', '\t'])
}

impl Line {
    /// A line with `cmd=NAME` and no other pairs.
    ///
    /// ```
    /// use oxmpi::bootstrap::wire::Line;
    /// assert_eq!(Line::new("finalize").to_string(), "cmd=finalize\n");
    /// ```
    pub fn new(cmd: &str) -> Line {
        Line {
            cmd: cmd.to_owned(),
            pairs: Vec::new(),
        }
    }

    /// Parses one line (a trailing newline is allowed).
    ///
    /// ```
    /// use oxmpi::bootstrap::wire::{Line, MAX_LINE, WireError};
    /// let line = Line::parse("cmd=get_result rc=0 value=abc\n").unwrap();
    /// assert_eq!(line.get("value"), Some("abc"));
    /// let long = format!("cmd=put value={}", "x".repeat(MAX_LINE));
    /// assert_eq!(Line::parse(&long), Err(WireError::TooLong));
    /// ```
    pub fn parse(text: &str) -> Result<Line, WireError> {
        if text.len() > MAX_LINE {
            return Err(WireError::TooLong);
        }
        let mut words = text
            .trim_end_matches(['\n', '\r'])
            .split(' ')
            .filter(|w| !w.is_empty());
        let first = words.next().unwrap_or("");
        let cmd = first
            .strip_prefix("cmd=")
            .ok_or_else(|| WireError::NoCmd(text.to_owned()))?;
        let mut line = Line::new(cmd);
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| WireError::BadPair(w.to_owned()))?;
            line.pairs.push((k.to_owned(), v.to_owned()));
        }
        Ok(line)
    }

    /// Appends `key=value`; refuses tokens the protocol cannot carry.
    ///
    /// ```
    /// use oxmpi::bootstrap::wire::{Line, WireError};
    /// let mut line = Line::new("put");
    /// line.push("key", "a")?.push("value", "b")?;
    /// assert_eq!(line.to_string(), "cmd=put key=a value=b\n");
    /// assert!(matches!(line.push("value", "two words"), Err(WireError::BadToken(_))));
    /// # Ok::<(), WireError>(())
    /// ```
    pub fn push(&mut self, key: &str, value: &str) -> Result<&mut Line, WireError> {
        if key.is_empty() || !valid_token(key) {
            return Err(WireError::BadToken(key.to_owned()));
        }
        if !valid_token(value) {
            return Err(WireError::BadToken(value.to_owned()));
        }
        self.pairs.push((key.to_owned(), value.to_owned()));
        Ok(self)
    }

    /// The command name (the value of `cmd=`).
    ///
    /// ```
    /// use oxmpi::bootstrap::wire::Line;
    /// assert_eq!(Line::parse("cmd=init pmi_version=1").unwrap().cmd(), "init");
    /// ```
    pub fn cmd(&self) -> &str {
        &self.cmd
    }

    /// The value of the first pair named `key`.
    ///
    /// ```
    /// use oxmpi::bootstrap::wire::Line;
    /// let line = Line::parse("cmd=x a=1 a=2").unwrap();
    /// assert_eq!((line.get("a"), line.get("b")), (Some("1"), None));
    /// ```
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cmd={}", self.cmd)?;
        for (k, v) in &self.pairs {
            write!(f, " {k}={v}")?;
        }
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut l = Line::new("get_result");
        l.push("rc", "0")
            .unwrap()
            .push("value", "(vector,(0,4,1))")
            .unwrap();
        assert_eq!(Line::parse(&l.to_string()).unwrap(), l);
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(Line::parse("hello"), Err(WireError::NoCmd(_))));
        assert!(matches!(
            Line::parse("cmd=put key"),
            Err(WireError::BadPair(_))
        ));
        assert!(Line::new("x").push("k", "a b").is_err());
        assert!(Line::new("x").push("", "v").is_err());
        assert_eq!(
            Line::parse(&"x".repeat(MAX_LINE + 1)),
            Err(WireError::TooLong)
        );
    }

    #[test]
    fn empty_value_and_extra_spaces() {
        let l = Line::parse("cmd=barrier_out  rc=0 msg=\n").unwrap();
        assert_eq!(l.get("rc"), Some("0"));
        assert_eq!(l.get("msg"), Some(""));
    }
}
