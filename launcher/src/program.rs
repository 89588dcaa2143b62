//! Finding PROGRAM before anything starts, the way `execvp` would from the ranks'
//! working directory.
//!
//! Invariant: a resolved path is absolute and was executable when checked, so a
//! missing or non-executable program is reported once, by oxrun, with exit status 127
//! or 126, before any rank exists.

use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why PROGRAM cannot be run.
#[derive(Debug, PartialEq, Eq)]
pub enum NotRunnable {
    /// No such file (with a `/`), or not in any `PATH` directory (without).
    NotFound {
        program: OsString,
        searched_path: bool,
    },
    /// The file exists but is not executable (or is a directory, a FIFO, a device).
    PermissionDenied {
        program: OsString,
        why: &'static str,
    },
    /// A script whose `#!` interpreter is missing or cannot be run.
    Interpreter {
        program: OsString,
        interpreter: OsString,
        why: &'static str,
        missing: bool,
    },
}

impl NotRunnable {
    /// The exit status oxrun uses, as a shell would: 127 or 126.
    pub fn exit_code(&self) -> i32 {
        match self {
            NotRunnable::NotFound { .. } => 127,
            NotRunnable::PermissionDenied { .. } => 126,
            NotRunnable::Interpreter { missing, .. } => {
                if *missing {
                    127
                } else {
                    126
                }
            }
        }
    }
}

impl fmt::Display for NotRunnable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotRunnable::NotFound {
                program,
                searched_path: true,
            } => write!(
                f,
                "cannot run '{}': not found in PATH",
                program.to_string_lossy()
            ),
            NotRunnable::NotFound { program, .. } => write!(
                f,
                "cannot run '{}': no such file or directory",
                program.to_string_lossy()
            ),
            NotRunnable::PermissionDenied { program, why } => {
                write!(f, "cannot run '{}': {why}", program.to_string_lossy())
            }
            NotRunnable::Interpreter {
                program,
                interpreter,
                why,
                ..
            } => write!(
                f,
                "cannot run '{}': its interpreter '{}': {why}",
                program.to_string_lossy(),
                // A stray carriage return shows as `\r`.
                interpreter.to_string_lossy().escape_debug()
            ),
        }
    }
}

/// Resolves `program` to an absolute path: through `path_var` when it has no `/`,
/// otherwise relative to `cwd` (the ranks' working directory). A script's `#!`
/// interpreter must be runnable too (a relative one from `cwd`, as the kernel finds
/// it).
pub fn resolve(
    program: &OsStr,
    path_var: Option<&OsStr>,
    cwd: &Path,
) -> Result<PathBuf, NotRunnable> {
    let path = find(program, path_var, cwd)?;
    let Some(interpreter) = interpreter_of(&path) else {
        return Ok(path);
    };
    let (why, missing) = match check(&cwd.join(&interpreter)) {
        Check::Runnable => return Ok(path),
        Check::Missing => ("no such file or directory", true),
        Check::Denied(why) => (why, false),
    };
    Err(NotRunnable::Interpreter {
        program: program.to_owned(),
        interpreter,
        why,
        missing,
    })
}

/// The interpreter a `#!` line at the start of `path` names, read as the kernel
/// reads it: after blanks, up to the next space, tab or newline. A carriage return
/// (a script saved with CRLF line ends) is part of the name, and no such file exists.
fn interpreter_of(path: &Path) -> Option<OsString> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let word = line
        .split(|&b| b == b' ' || b == b'\t')
        .find(|w| !w.is_empty())?;
    Some(OsStr::from_bytes(word).to_owned())
}

/// [`resolve`] without the interpreter check.
fn find(program: &OsStr, path_var: Option<&OsStr>, cwd: &Path) -> Result<PathBuf, NotRunnable> {
    if program.is_empty() {
        return Err(NotRunnable::NotFound {
            program: program.to_owned(),
            searched_path: false,
        });
    }
    if program.as_bytes().contains(&b'/') {
        let path = cwd.join(program);
        return match check(&path) {
            Check::Runnable => Ok(path),
            Check::Missing => Err(NotRunnable::NotFound {
                program: program.to_owned(),
                searched_path: false,
            }),
            Check::Denied(why) => Err(NotRunnable::PermissionDenied {
                program: program.to_owned(),
                why,
            }),
        };
    }
    // As execvp: PATH unset means the default search path; an empty entry means ".".
    let path_var = path_var.unwrap_or(OsStr::new("/usr/local/bin:/bin:/usr/bin"));
    let mut denied = None;
    for dir in path_var.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let path = cwd.join(dir).join(program);
        match check(&path) {
            Check::Runnable => return Ok(path),
            Check::Missing => {}
            Check::Denied(why) => denied = denied.or(Some(why)),
        }
    }
    Err(match denied {
        Some(why) => NotRunnable::PermissionDenied {
            program: program.to_owned(),
            why,
        },
        None => NotRunnable::NotFound {
            program: program.to_owned(),
            searched_path: true,
        },
    })
}

enum Check {
    Runnable,
    Missing,
    Denied(&'static str),
}

fn check(path: &Path) -> Check {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Check::Denied("permission denied"),
        Err(_) => Check::Missing,
        Ok(meta) if meta.is_dir() => Check::Denied("is a directory"),
        // exec refuses it too; and reading its `#!` line could block (a FIFO).
        Ok(meta) if !meta.is_file() => Check::Denied("not a regular file"),
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => Check::Denied("permission denied"),
        Ok(_) => {
            let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
                return Check::Missing;
            };
            // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
            if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
                Check::Runnable
            } else {
                Check::Denied("permission denied")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("oxrun-program-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn path_search_skips_non_executable_and_reports_it() {
        let d = scratch("path");
        let a = d.join("a");
        let b = d.join("b");
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        file(&a, "tool", 0o644);
        let path = format!("{}:{}", a.display(), b.display());
        let err = resolve(OsStr::new("tool"), Some(OsStr::new(&path)), &d).unwrap_err();
        assert_eq!(err.exit_code(), 126);
        assert_eq!(err.to_string(), "cannot run 'tool': permission denied");
        let exe = file(&b, "tool", 0o755);
        assert_eq!(
            resolve(OsStr::new("tool"), Some(OsStr::new(&path)), &d),
            Ok(exe)
        );
        let err = resolve(OsStr::new("nope"), Some(OsStr::new(&path)), &d).unwrap_err();
        assert_eq!(err.to_string(), "cannot run 'nope': not found in PATH");
        assert_eq!(err.exit_code(), 127);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn relative_paths_are_relative_to_cwd() {
        let d = scratch("rel");
        let exe = file(&d, "prog", 0o755);
        assert_eq!(
            resolve(OsStr::new("./prog"), None, &d),
            Ok(d.join("./prog"))
        );
        assert!(exe.exists());
        let err = resolve(OsStr::new("./missing"), None, &d).unwrap_err();
        assert_eq!(err.exit_code(), 127);
        let err = resolve(OsStr::new(d.to_str().unwrap()), None, &d).unwrap_err();
        assert_eq!(err.exit_code(), 126);
        // An executable FIFO is refused without being opened (which would block).
        let fifo = CString::new(d.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo only reads the NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o755) }, 0);
        fs::set_permissions(d.join("fifo"), fs::Permissions::from_mode(0o755)).unwrap();
        let err = resolve(OsStr::new("./fifo"), None, &d).unwrap_err();
        assert_eq!(err.exit_code(), 126);
        assert_eq!(err.to_string(), "cannot run './fifo': not a regular file");
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_script_needs_a_runnable_interpreter() {
        let d = scratch("interp");
        let script = |name: &str, line: &str| {
            let p = d.join(name);
            fs::write(&p, format!("{line}\necho hi\n")).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        };
        script("missing", "#!/nonexistent/interp -x");
        fs::write(d.join("not-executable"), "").unwrap();
        script(
            "denied",
            &format!("#! {}", d.join("not-executable").display()),
        );
        script("fine", "#!/bin/sh");
        script("plain", "echo no shebang");
        script("crlf", "#!/bin/sh\r");
        script("relative", "#!sh-nowhere");
        fs::copy("/bin/sh", d.join("local-sh")).unwrap();
        script("relative-fine", "#!local-sh");
        let err = resolve(OsStr::new("./missing"), None, &d).unwrap_err();
        assert_eq!(err.exit_code(), 127);
        assert_eq!(
            err.to_string(),
            "cannot run './missing': its interpreter '/nonexistent/interp': no such file or directory"
        );
        let err = resolve(OsStr::new("./denied"), None, &d).unwrap_err();
        assert_eq!(err.exit_code(), 126, "{err}");
        assert!(resolve(OsStr::new("./fine"), None, &d).is_ok());
        assert!(resolve(OsStr::new("./plain"), None, &d).is_ok());
        let err = resolve(OsStr::new("./crlf"), None, &d).unwrap_err();
        assert_eq!(err.exit_code(), 127);
        assert!(err.to_string().contains("'/bin/sh\\r'"), "{err}");
        let err = resolve(OsStr::new("./relative"), None, &d).unwrap_err();
        assert_eq!(err.exit_code(), 127, "{err}");
        assert!(resolve(OsStr::new("./relative-fine"), None, &d).is_ok());
        fs::remove_dir_all(d).unwrap();
    }
}
