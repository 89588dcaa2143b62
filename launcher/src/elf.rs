//! What the head of an ELF file says about running it here: whether this machine's
//! kernel takes it, and which loader (`PT_INTERP`) it asks for.
//!
//! Checked before any rank starts (`program::resolve`) because the exec itself would
//! say it badly: the kernel refuses a foreign file with `ENOEXEC`, on which the
//! `execvp` that starts a rank runs the file as a shell script (a page of syntax
//! errors, exit status 2); and a missing loader fails the exec with `ENOENT`, as if
//! the program itself were missing, after oxrun has found it.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;

/// `\x7fELF`.
const MAGIC: &[u8; 4] = b"\x7fELF";
/// `e_ident[EI_CLASS]`: 32 or 64 bits.
const CLASS_32: u8 = 1;
const CLASS_64: u8 = 2;
/// `e_ident[EI_DATA]`: little-endian.
const DATA_LSB: u8 = 1;
/// `e_type` of the files the kernel runs: a fixed-address or a position-independent
/// executable (not an object file, `ET_REL`, nor a core dump, `ET_CORE`).
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
/// `p_type` of the program header naming the loader.
const PT_INTERP: u32 = 3;
/// The longest loader path read (the kernel takes up to a page).
const MAX_INTERP: u64 = 4096;

/// The ELF files this machine's kernel runs: (class, `e_machine`); `None` where this
/// build does not know (every ELF file with a whole header is then taken for
/// runnable).
fn native() -> Option<&'static [(u8, u16)]> {
    // x86-64 and i386 (x32, class 32 with machine 62, is off in most kernels);
    // AArch64 and 32-bit Arm.
    if cfg!(target_arch = "x86_64") {
        Some(&[(CLASS_64, 62), (CLASS_32, 3)])
    } else if cfg!(target_arch = "aarch64") {
        Some(&[(CLASS_64, 183), (CLASS_32, 40)])
    } else {
        None
    }
}

/// What an ELF file's head says.
#[derive(Debug, PartialEq, Eq)]
pub enum Elf {
    /// Not an ELF file.
    No,
    /// Built for another machine (or byte order), no program (an object file, a
    /// core dump), or cut short or malformed: the kernel refuses it.
    Foreign,
    /// This machine runs it, with the loader it names, if any.
    Native(Option<OsString>),
}

/// Reads the head of `file`. A file that starts as ELF files do is a binary from
/// there on: whatever in it the kernel would refuse makes it [`Elf::Foreign`], so
/// that no shell is ever handed it (a shell takes bytes of the header for commands
/// and redirections, and creates files).
pub fn read(file: &File) -> Elf {
    let mut head = [0u8; 64];
    let Ok(n) = file.read_at(&mut head, 0) else {
        return Elf::No;
    };
    if n < MAGIC.len() || &head[..MAGIC.len()] != MAGIC {
        return Elf::No;
    }
    let class = head[4];
    let whole = match class {
        CLASS_64 => 64,
        CLASS_32 => 52,
        _ => return Elf::Foreign,
    };
    if n < whole {
        return Elf::Foreign;
    }
    let Some(native) = native() else {
        return Elf::Native(None);
    };
    // Every machine this build knows is little-endian.
    let kind = u16::from_le_bytes([head[16], head[17]]);
    let machine = u16::from_le_bytes([head[18], head[19]]);
    if head[5] != DATA_LSB
        || !native.contains(&(class, machine))
        || (kind != ET_EXEC && kind != ET_DYN)
    {
        return Elf::Foreign;
    }
    match interpreter(file, &head[..n], class) {
        Some(loader) => Elf::Native(loader),
        None => Elf::Foreign,
    }
}

/// The loader the program headers name, if any; `None` where the headers are not
/// whole or not as the kernel takes them (no program header, entries of the wrong
/// size, a table or loader path past the end of the file).
fn interpreter(file: &File, head: &[u8], class: u8) -> Option<Option<OsString>> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(head.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(head.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(head.get(at..at + 8)?.try_into().ok()?));
    // e_phoff, e_phentsize, e_phnum, and the entry size the kernel expects.
    let (phoff, phentsize, phnum, entry) = match class {
        CLASS_64 => (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?, 56),
        _ => (u64::from(u32_at(0x1c)?), u16_at(0x2a)?, u16_at(0x2c)?, 32),
    };
    if phentsize != entry || phnum == 0 {
        return None;
    }
    let mut table = vec![0u8; usize::from(phentsize) * usize::from(phnum)];
    file.read_exact_at(&mut table, phoff).ok()?;
    for ph in table.chunks_exact(usize::from(phentsize)) {
        let word = |at: usize| Some(u32::from_le_bytes(ph.get(at..at + 4)?.try_into().ok()?));
        if word(0)? != PT_INTERP {
            continue;
        }
        // p_offset and p_filesz.
        let (off, len) = match class {
            CLASS_64 => (
                u64::from_le_bytes(ph.get(8..16)?.try_into().ok()?),
                u64::from_le_bytes(ph.get(32..40)?.try_into().ok()?),
            ),
            _ => (u64::from(word(4)?), u64::from(word(16)?)),
        };
        let mut path = vec![0u8; len.min(MAX_INTERP) as usize];
        file.read_exact_at(&mut path, off).ok()?;
        // The path ends at its NUL.
        let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
        path.truncate(end);
        return Some(Some(OsString::from_vec(path)));
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(path: &str) -> Elf {
        read(&File::open(path).unwrap())
    }

    #[test]
    fn this_machines_programs_and_their_loader() {
        // The test binary itself is native and (built by cargo, dynamically linked)
        // names a loader that exists.
        let me = std::env::current_exe().unwrap();
        match read(&File::open(&me).unwrap()) {
            Elf::Native(Some(loader)) => assert!(std::path::Path::new(&loader).exists()),
            other => panic!("{other:?}"),
        }
        assert_eq!(head_of("/etc/passwd"), Elf::No);
    }

    #[test]
    fn another_machines_program_is_foreign() {
        if native().is_none() {
            eprintln!("not run: no list of native ELF files for this machine");
            return;
        }
        let mut bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // Another machine's e_machine: AArch64 here, x86-64 on AArch64.
        let foreign = if cfg!(target_arch = "aarch64") {
            62u16
        } else {
            183
        };
        bytes[18..20].copy_from_slice(&foreign.to_le_bytes());
        assert_eq!(read_patched(&bytes, "machine"), Elf::Foreign);
    }

    #[test]
    fn an_object_file_or_core_dump_is_no_program() {
        let mut bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // ET_REL (a `.o` file), then ET_CORE.
        for kind in [1u16, 4] {
            bytes[16..18].copy_from_slice(&kind.to_le_bytes());
            assert_eq!(read_patched(&bytes, "kind"), Elf::Foreign, "e_type {kind}");
        }
    }

    #[test]
    fn a_binary_cut_short_or_malformed_is_refused() {
        let whole = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // The magic alone, the header alone (the program headers past the end), the
        // magic and text.
        for (len, what) in [(4, "magic"), (64, "header")] {
            assert_eq!(read_patched(&whole[..len], what), Elf::Foreign, "{what}");
        }
        assert_eq!(read_patched(b"\x7fELF garbage\n", "text"), Elf::Foreign);
        // No program header; entries of another size.
        let mut bytes = whole.clone();
        bytes[0x38..0x3a].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(read_patched(&bytes, "phnum"), Elf::Foreign);
        let mut bytes = whole;
        bytes[0x36..0x38].copy_from_slice(&48u16.to_le_bytes());
        assert_eq!(read_patched(&bytes, "phentsize"), Elf::Foreign);
    }

    /// What [`read`] says of a file holding `bytes`.
    fn read_patched(bytes: &[u8], what: &str) -> Elf {
        let name = format!("oxrun-elf-{what}-{}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, bytes).unwrap();
        let got = read(&File::open(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        got
    }
}
