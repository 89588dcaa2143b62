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
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::elf::{self, Elf};

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
    /// A binary the kernel does not run: an ELF file for another machine or one
    /// that is no program (an object file, a core dump), or a
    /// file that is neither ELF nor a script (a NUL byte in its first line, as a
    /// shell tells).
    ExecFormat { program: OsString },
    /// A script whose `#!` interpreter, or an ELF program whose loader, is missing
    /// or cannot be run.
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
            NotRunnable::PermissionDenied { .. } | NotRunnable::ExecFormat { .. } => 126,
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
            NotRunnable::ExecFormat { program } => write!(
                f,
                "cannot run '{}': a binary this machine does not run (exec format error)",
                program.to_string_lossy()
            ),
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
/// interpreter and an ELF program's loader must be runnable too (a relative one from
/// `cwd`, as the kernel finds it), and a binary must be one this machine runs.
pub fn resolve(
    program: &OsStr,
    path_var: Option<&OsStr>,
    cwd: &Path,
) -> Result<PathBuf, NotRunnable> {
    let path = find(program, path_var, cwd)?;
    let interpreter = match needs(&path) {
        Needs::Nothing => return Ok(path),
        Needs::Interpreter(interpreter) => interpreter,
        Needs::Foreign => {
            return Err(NotRunnable::ExecFormat {
                program: program.to_owned(),
            });
        }
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

/// What running a file needs besides the file itself.
enum Needs {
    Nothing,
    /// A script's `#!` interpreter or an ELF program's loader.
    Interpreter(OsString),
    /// Nothing can run it here: the kernel refuses the exec (`ENOEXEC`), and the
    /// ranks' `execvp` would then feed the binary to `/bin/sh`.
    Foreign,
}

/// What the head of `path` says it needs: the interpreter a `#!` line names, read
/// as the kernel reads it (after blanks, up to the next space, tab or newline; a
/// carriage return, from a script saved with CRLF line ends, is part of the name),
/// or what [`elf::read`] finds. A file with neither runs under `/bin/sh` (as from a
/// shell), unless its first line holds a NUL byte: a binary, which a shell refuses.
fn needs(path: &Path) -> Needs {
    let Ok(file) = std::fs::File::open(path) else {
        return Needs::Nothing;
    };
    let mut head = [0u8; 256];
    let n = file.read_at(&mut head, 0).unwrap_or(0);
    if let Some(line) = head[..n].strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        return match line
            .split(|&b| b == b' ' || b == b'\t')
            .find(|w| !w.is_empty())
        {
            Some(word) => Needs::Interpreter(OsStr::from_bytes(word).to_owned()),
            None => Needs::Nothing,
        };
    }
    match elf::read(&file) {
        Elf::Foreign => Needs::Foreign,
        Elf::Native(Some(loader)) => Needs::Interpreter(loader),
        Elf::Native(None) => Needs::Nothing,
        // As bash: a NUL in the first line (within 80 bytes) marks a binary.
        Elf::No
            if head[..n.min(80)]
                .split(|&b| b == b'\n')
                .next()
                .is_some_and(|line| line.contains(&0)) =>
        {
            Needs::Foreign
        }
        Elf::No => Needs::Nothing,
    }
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

    #[test]
    fn a_binary_is_run_only_if_this_machine_runs_it() {
        let d = scratch("binary");
        let write = |name: &str, bytes: &[u8]| {
            let p = d.join(name);
            fs::write(&p, bytes).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        };
        // Neither ELF nor a script, with a NUL in its first line: /bin/sh would get it.
        write("data", b"\x01\x00\x02 not text\necho hi\n");
        let err = resolve(OsStr::new("./data"), None, &d).unwrap_err();
        assert_eq!(err.exit_code(), 126);
        assert_eq!(
            err.to_string(),
            "cannot run './data': a binary this machine does not run (exec format error)"
        );
        // A NUL after the first line: a script without #!, for /bin/sh as from a shell.
        write("text", b"echo hi\n\x00");
        assert!(resolve(OsStr::new("./text"), None, &d).is_ok());
        // This machine's own programs run.
        write(
            "native",
            &fs::read(std::env::current_exe().unwrap()).unwrap(),
        );
        assert!(resolve(OsStr::new("./native"), None, &d).is_ok());
        fs::remove_dir_all(d).unwrap();
    }
}
