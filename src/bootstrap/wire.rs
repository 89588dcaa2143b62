//! The PMI-1 wire format: one command per line, `key=value` pairs separated by spaces,
//! the first pair always `cmd=NAME`.
//!
//! Shared by the client in [`crate::bootstrap`] and the server in `oxrun`, so both sides
//! parse and print lines the same way. Values may not contain spaces, `=` or newlines
//! (the protocol has no quoting); [`Line::push`] refuses them instead of sending a line
//! the peer would misread.
//!
//! One exception, read but never built: the text of an `abort` (its `message=`, or the
//! older `msg=`) runs to the end of the line, spaces and `=` included, because MPICH's
//! PMI-1 client (4.1 and later) copies `PMI_Abort`'s message into the line as it is.
//! A backslash there escapes the character after it, as MPICH's own parser reads it.
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
    ///
    /// // An abort's message is free text to the end of the line (MPICH 4.1 and later).
    /// let abort = Line::parse("cmd=abort exitcode=3 message=MPI_Abort(comm, 3) - process 0\n")?;
    /// assert_eq!(abort.get("exitcode"), Some("3"));
    /// assert_eq!(abort.get("message"), Some("MPI_Abort(comm, 3) - process 0"));
    /// # Ok::<(), WireError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Line, WireError> {
        if text.len() > MAX_LINE {
            return Err(WireError::TooLong);
        }
        let body = text.trim_end_matches(['\n', '\r']).trim_start_matches(' ');
        let (first, mut rest) = body.split_once(' ').unwrap_or((body, ""));
        let cmd = first
            .strip_prefix("cmd=")
            .ok_or_else(|| WireError::NoCmd(text.to_owned()))?;
        let mut line = Line::new(cmd);
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                return Ok(line);
            }
            let (word, after) = rest.split_once(' ').unwrap_or((rest, ""));
            let (k, v) = word
                .split_once('=')
                .ok_or_else(|| WireError::BadPair(word.to_owned()))?;
            if is_free_text(cmd, k) {
                let text = unescape(&rest[k.len() + 1..]);
                line.pairs.push((k.to_owned(), text));
                return Ok(line);
            }
            line.pairs.push((k.to_owned(), v.to_owned()));
            rest = after;
        }
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

/// Whether the value of `key` in a `cmd` line is free text that runs to the end of the
/// line (see the module's comment).
fn is_free_text(cmd: &str, key: &str) -> bool {
    cmd == "abort" && (key == "message" || key == "msg")
}

/// `text` with each backslash escape (`\c`) replaced by the character it escapes; a
/// backslash at the very end stays.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().unwrap_or('\\')),
            c => out.push(c),
        }
    }
    out
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
    fn abort_text_runs_to_the_end_of_the_line() {
        let mpich = "cmd=abort exitcode=3 message=application called \
                     MPI_Abort(MPI_COMM_WORLD, 3) - process 0\n";
        let l = Line::parse(mpich).unwrap();
        assert_eq!(l.get("exitcode"), Some("3"));
        assert_eq!(
            l.get("message"),
            Some("application called MPI_Abort(MPI_COMM_WORLD, 3) - process 0")
        );
        // Printed back as it came.
        assert_eq!(l.to_string(), mpich);
        let l = Line::parse("cmd=abort exitcode=7 msg=a=b  c\\ d\\\\e\\\r\n").unwrap();
        assert_eq!(l.get("msg"), Some("a=b  c d\\e\\"));
        assert_eq!(Line::parse("cmd=abort msg=").unwrap().get("msg"), Some(""));
        // Only an abort's text is free: elsewhere a bare word is still refused.
        assert!(matches!(
            Line::parse("cmd=put message=a b"),
            Err(WireError::BadPair(_))
        ));
        assert!(matches!(
            Line::parse("cmd=abort exitcode=3 oops message=x y"),
            Err(WireError::BadPair(_))
        ));
    }

    #[test]
    fn empty_value_and_extra_spaces() {
        let l = Line::parse("cmd=barrier_out  rc=0 msg=\n").unwrap();
        assert_eq!(l.get("rc"), Some("0"));
        assert_eq!(l.get("msg"), Some(""));
    }
}
