//! Runs a program where the kernel forbids reading and writing other processes'
//! memory, as a container's seccomp profile may: `no_single_copy PROGRAM ARGS...`
//! installs a seccomp filter that fails `process_vm_readv` and `process_vm_writev`
//! with EPERM, then executes the program in its place.

use std::os::unix::process::CommandExt;

/// The architecture the filter's system call numbers belong to (`AUDIT_ARCH_*`).
#[cfg(target_arch = "x86_64")]
const ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const ARCH: u32 = 0xc000_00b7;

// Classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
const LOAD_WORD: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JUMP_IF_EQUAL: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const RETURN: u16 = 0x06; // BPF_RET | BPF_K
const ALLOW: u32 = 0x7fff_0000;
const FAIL_WITH: u32 = 0x0005_0000; // SECCOMP_RET_ERRNO, the errno in the low bits

fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let program = args.next().expect("usage: no_single_copy PROGRAM ARGS...");
    // seccomp_data: the call's number at offset 0, the architecture at 4. A jump skips
    // that many instructions after the next one.
    let mut filter = [
        op(LOAD_WORD, 0, 0, 4),
        op(JUMP_IF_EQUAL, 0, 3, ARCH),
        op(LOAD_WORD, 0, 0, 0),
        op(JUMP_IF_EQUAL, 2, 0, libc::SYS_process_vm_readv as u32),
        op(JUMP_IF_EQUAL, 1, 0, libc::SYS_process_vm_writev as u32),
        op(RETURN, 0, 0, ALLOW),
        op(RETURN, 0, 0, FAIL_WITH | libc::EPERM as u32),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: prctl with these options takes integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(
        rc,
        0,
        "PR_SET_NO_NEW_PRIVS: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `prog` points at `filter`, both alive for the call; the kernel copies
    // the program.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    assert_eq!(rc, 0, "PR_SET_SECCOMP: {}", std::io::Error::last_os_error());
    let err = std::process::Command::new(&program).args(args).exec();
    panic!("cannot run {program:?}: {err}");
}
