"""ctypes wrappers for the Linux calls Python 3.11 lacks: unshare, mount, pivot_root, prctl, capset.

Every wrapper raises ``OSError`` with the errno on failure. Used only by the sandbox helper
process (``trustbuild.sandbox.helper``) and by the overlay probe.
"""

from __future__ import annotations

import ctypes
import os

__all__ = [
    "CLONE_NEWNS", "CLONE_NEWUTS", "CLONE_NEWIPC", "CLONE_NEWPID", "CLONE_NEWNET",
    "MS_RDONLY", "MS_NOSUID", "MS_NODEV", "MS_NOEXEC", "MS_REMOUNT", "MS_BIND", "MS_REC",
    "MS_PRIVATE", "MS_NOATIME", "MS_NODIRATIME", "MS_RELATIME", "MS_STRICTATIME",
    "MNT_DETACH", "unshare", "mount", "umount2", "pivot_root", "prctl",
    "clear_inheritable_caps", "last_cap", "CAPABILITIES", "load_seccomp_bpf",
    "default_signal_action",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

# Capability numbers from linux/capability.h.
CAPABILITIES = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
    "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
    "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
    "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
    "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
    "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}

try:
    _libc = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # not glibc: ask the loader (slower: runs ldconfig)
    import ctypes.util  # ~10 ms to import: only here, not in every RUN step's helper

    _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.unshare.argtypes = (ctypes.c_int,)
_libc.sethostname.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
_libc.mount.argtypes = (
    ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.prctl.argtypes = (
    ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
)
_libc.syscall.restype = ctypes.c_long

# pivot_root has no glibc wrapper; its number differs per architecture.
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "s390x": 217, "ppc64le": 203}
_CAPGET = {"x86_64": 125, "aarch64": 90, "riscv64": 90, "s390x": 184, "ppc64le": 183}
_CAPSET = {"x86_64": 126, "aarch64": 91, "riscv64": 91, "s390x": 185, "ppc64le": 184}
_RT_SIGACTION = {"x86_64": 13, "aarch64": 134, "riscv64": 134, "s390x": 174, "ppc64le": 173}


def _check(res: int, what: str, path: str | None = None) -> None:
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def sethostname(name: str) -> None:
    """sethostname(2) (what socket.sethostname does, without importing socket)."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2)."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
           f"mount {fstype or 'bind'} on", target)


def mount_overlay(target: str, options: str, flags: int = 0, *, volatile: bool = True,
                  busy_wait: float = 5.0) -> str:
    """mount(2) of an overlay; returns the options it was mounted with.

    ``volatile`` (Linux 5.10+, left out where the kernel refuses it with EINVAL): unmounting
    does not syncfs the host filesystem, ~0.2 s each time; every overlay of a build is
    scratch, never reused after a crash.

    EBUSY ("lowerdir is in-use as upperdir/workdir of another mount") is retried every 20 ms
    for up to ``busy_wait`` seconds: a stage overlay the builder unmounted can still have a
    copy in the mount namespace of a RUN step that just ended, which the kernel releases a
    moment after that step's last process exits; until then the stage's upper stays "in use"
    and an indexed overlay refuses it.
    """
    import errno
    import time

    deadline = time.monotonic() + busy_wait
    candidates = [options + ",volatile", options] if volatile else [options]
    for i, opts in enumerate(candidates):
        while True:
            try:
                mount("overlay", target, "overlay", flags, opts)
                return opts
            except OSError as exc:
                if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                if exc.errno == errno.EINVAL and i + 1 < len(candidates):
                    break  # a kernel without volatile
                raise
    raise AssertionError("unreachable")


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_b(target), flags), "umount", target)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2) through syscall(2)."""
    nr = _PIVOT_ROOT[os.uname().machine]
    _check(_libc.syscall(ctypes.c_long(nr), _b(new_root), _b(put_old)), "pivot_root", new_root)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2)."""
    res = _libc.prctl(option, arg2, arg3, arg4, arg5)
    _check(res, f"prctl({option})")
    return int(res)


def default_signal_action(sig: int) -> None:
    """rt_sigaction(2) to SIG_DFL straight to the kernel, for the signals glibc keeps to itself.

    glibc's ``sigaction`` refuses 32 and 33 (its thread-cancel and setxid signals), yet an
    ignored disposition for them survives exec. A zeroed kernel ``sigaction`` (handler NULL =
    SIG_DFL, no flags, empty mask) has the same meaning on every architecture.
    """
    act = ctypes.create_string_buffer(64)
    nr = _RT_SIGACTION[os.uname().machine]
    _check(_libc.syscall(ctypes.c_long(nr), ctypes.c_long(sig), act, None, ctypes.c_long(8)),
           f"rt_sigaction({sig})")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def clear_inheritable_caps() -> None:
    """Empty the inheritable set (so exec gives root exactly the bounding set)."""
    machine = os.uname().machine
    hdr = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    _check(_libc.syscall(ctypes.c_long(_CAPGET[machine]), ctypes.byref(hdr), data), "capget")
    for d in data:
        d.inheritable = 0
    _check(_libc.syscall(ctypes.c_long(_CAPSET[machine]), ctypes.byref(hdr), data), "capset")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_seccomp_bpf(program: bytes) -> None:
    """Install a raw BPF seccomp filter (``struct sock_filter[]``) on the calling thread."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0),
           "prctl(PR_SET_SECCOMP)")


def last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read().strip())
    except OSError:
        return max(CAPABILITIES.values())
