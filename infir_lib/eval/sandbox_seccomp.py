"""A seccomp filter for the sandbox: refuse the kernel interfaces a test program has no business with.

Why: bubblewrap's namespaces hide files, processes and the network, but every system call still reaches
the host kernel. Keyrings (``keyctl``: the host's session keyring), new namespaces (``unshare``,
``setns``, ``clone`` with ``CLONE_NEW*``), ``ptrace`` / ``process_vm_readv`` (reading another process,
e.g. the judge), ``mount`` and the new mount API, ``bpf``, ``perf_event_open``, ``userfaultfd``,
``io_uring``, module loading, ``kexec``, ``reboot``, clock setting and the like are refused with
``EPERM``; ``clone3`` answers ``ENOSYS`` so that glibc falls back to ``clone``, whose flags the filter
can inspect (the same choice Docker's default profile makes). A call from another ABI (32-bit
``int 0x80``, x32) kills the process, since the numbers below would not apply.

The program is the classic BPF ``struct sock_filter`` array that bubblewrap loads with ``--seccomp FD``,
written out here (no libseccomp needed). Only x86-64 is covered; elsewhere :func:`filter_bytes`
returns ``None`` and the verdict lists seccomp as a missing protection.
"""

from __future__ import annotations

import errno
import platform
import struct

# linux/filter.h, linux/seccomp.h, linux/audit.h
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
RET_ALLOW, RET_KILL_PROCESS, RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
AUDIT_ARCH_X86_64 = 0xC000003E
X32_BIT = 0x40000000
OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16
CLONE_NEW = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080

# x86-64 numbers (arch/x86/entry/syscalls/syscall_64.tbl)
DENIED_X86_64 = {
    "ptrace": 101, "syslog": 103, "personality": 135, "adjtimex": 159, "chroot": 161, "acct": 163,
    "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
    "iopl": 172, "ioperm": 173, "init_module": 175, "delete_module": 176, "quotactl": 179,
    "lookup_dcookie": 212, "clock_settime": 227, "kexec_load": 246, "add_key": 248, "request_key": 249,
    "keyctl": 250, "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313,
    "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "pidfd_getfd": 438, "mount_setattr": 442,
}
CLONE_X86_64, CLONE3_X86_64 = 56, 435


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def build_x86_64() -> bytes:
    """The filter: check the ABI, refuse the listed calls, refuse clone with namespace flags, allow the rest."""
    eperm, enosys = RET_ERRNO | errno.EPERM, RET_ERRNO | errno.ENOSYS
    prog = [_ins(_LD_W_ABS, OFF_ARCH),
            _ins(_JEQ_K, AUDIT_ARCH_X86_64, jt=1, jf=0),
            _ins(_RET_K, RET_KILL_PROCESS),
            _ins(_LD_W_ABS, OFF_NR),
            _ins(_JGE_K, X32_BIT, jt=0, jf=1),
            _ins(_RET_K, RET_KILL_PROCESS)]
    for nr in sorted(DENIED_X86_64.values()):
        prog += [_ins(_JEQ_K, nr, jt=0, jf=1), _ins(_RET_K, eperm)]
    prog += [_ins(_JEQ_K, CLONE3_X86_64, jt=0, jf=1), _ins(_RET_K, enosys),
             _ins(_JEQ_K, CLONE_X86_64, jt=0, jf=3),
             _ins(_LD_W_ABS, OFF_ARG0),          # the low 32 bits of clone's flags hold every CLONE_NEW*
             _ins(_JSET_K, CLONE_NEW, jt=0, jf=1),
             _ins(_RET_K, eperm),
             _ins(_RET_K, RET_ALLOW)]
    return b"".join(prog)


def filter_bytes() -> bytes | None:
    """The compiled filter for this machine, or ``None`` where no filter is written for its architecture."""
    if platform.machine() in ("x86_64", "AMD64", "amd64"):
        return build_x86_64()
    return None
