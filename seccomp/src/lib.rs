//! The seccomp filter that sends every execve/execveat to user space, and the listener fd
//! on which the supervisor receives and answers them.
//!
//! Why user notification (seccomp_unotify(2)) rather than ptrace or an LSM: the task that
//! calls execve stops inside the kernel until the supervisor answers, so the supervisor can
//! read the path and argv before anything runs, and answer either "continue" (the kernel
//! performs the syscall as if there had been no filter) or an errno. The answer is final;
//! nothing else about the task changes.
//!
//! Two facts shape the API:
//! - A notification can disappear between RECV and SEND: a signal interrupted the waiting
//!   task (Go runtimes do this constantly), or the task died. The kernel then answers RECV or
//!   SEND with ENOENT, which surfaces here as [`io::ErrorKind::NotFound`]: "withdrawn",
//!   worth a debug log, never counted as an exec. The same execve usually comes back as a
//!   new notification once the signal handler returns, so decisions must be idempotent.
//! - RECV blocks while nothing is pending: poll the fd for POLLIN first. POLLHUP means every
//!   task that the filter applied to has exited.
//!
//! The filter here is for processes that execguard starts itself (`execguard run`); in
//! containers runc installs an equivalent filter (the rules that the shim's SpecPatch adds)
//! and hands over the listener.
//!
//! Not here: what a notification means for the policy, and reading the stopped process
//! (`execguard-supervisor`); merging the filter's rules into a container's own profile
//! (the shim's spec patch, which takes its syscall names from [`SYSCALLS`]).
//!
//! The program is assembled here rather than with seccompiler: seccompiler has no
//! SECCOMP_RET_USER_NOTIF action, cannot install with SECCOMP_FILTER_FLAG_NEW_LISTENER (so
//! no listener fd comes back), and builds a filter for one architecture, while this one
//! must cover x86_64, x32 and i386 in one program. The tests run the assembled program
//! through a BPF interpreter for every ABI.
//!
//! The kernel interface's `unsafe` lives here: the notify ioctls (nix has no wrappers for
//! them), seccomp(2) itself, pidfd_open(2), and the fd-sending path, which must not
//! allocate between fork and exec. Everything else goes through nix.

#[cfg(not(target_arch = "x86_64"))]
compile_error!("the exec filter knows x86_64 (with its i386 and x32 ABIs) only");

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// `AUDIT_ARCH_X86_64` (linux/audit.h): EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
/// The x32 ABI reports this arch too and sets [`X32_SYSCALL_BIT`] in the syscall number.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386`: what a 32-bit program, or `int 0x80` from a 64-bit one, reports.
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: i32 = 0x4000_0000;

const X86_64_EXECVE: i32 = 59;
const X86_64_EXECVEAT: i32 = 322;
const X32_EXECVE: i32 = 520 | X32_SYSCALL_BIT;
const X32_EXECVEAT: i32 = 545 | X32_SYSCALL_BIT;
/// The x86_64 numbers with the x32 bit set: the x32 table maps them to ENOSYS today, but a
/// filter that lets them through unseen would depend on that staying true.
const X32_BIT_EXECVE: i32 = X86_64_EXECVE | X32_SYSCALL_BIT;
const X32_BIT_EXECVEAT: i32 = X86_64_EXECVEAT | X32_SYSCALL_BIT;
const I386_EXECVE: i32 = 11;
const I386_EXECVEAT: i32 = 358;

// The syscalls that can give a process another root or mount namespace: x86_64 and x32
// share these numbers ("common" in syscall_64.tbl), i386 has its own (syscall_32.tbl).
const X86_64_CHROOT: i32 = libc::SYS_chroot as i32;
const X86_64_PIVOT_ROOT: i32 = libc::SYS_pivot_root as i32;
const X86_64_SETNS: i32 = libc::SYS_setns as i32;
const X86_64_UNSHARE: i32 = libc::SYS_unshare as i32;
const X86_64_CLONE: i32 = libc::SYS_clone as i32;
const I386_CHROOT: i32 = 61;
const I386_PIVOT_ROOT: i32 = 217;
const I386_SETNS: i32 = 346;
const I386_UNSHARE: i32 = 310;
const I386_CLONE: i32 = 120;
/// The same number on every x86 ABI (syscalls added since Linux 5.1 are unified).
const CLONE3: i32 = libc::SYS_clone3 as i32;
const IO_URING_SETUP: i32 = libc::SYS_io_uring_setup as i32;

// The socket gate (see [`Gate`]): socket(2), whose family is its first argument, and
// i386's socketcall(2), whose first argument says which socket call it is (its real
// arguments are in memory, out of a filter's reach).
const X86_64_SOCKET: i32 = libc::SYS_socket as i32;
const I386_SOCKET: i32 = 359;
const I386_SOCKETCALL: i32 = 102;
const SOCKETCALL_SOCKET: u32 = 1;
/// The families that reach a network: what every network tool needs.
const NETWORK_FAMILIES: [u32; 3] = [libc::AF_INET as u32, libc::AF_INET6 as u32, libc::AF_PACKET as u32];

/// What the filter does with a syscall it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// execve, execveat: always sent to the supervisor.
    Exec,
    /// A syscall that gives a process another root or mount tree whatever its arguments:
    /// always sent.
    RootChange,
    /// unshare and clone: sent when their flags (the first argument) hold CLONE_NEWNS.
    NewMountNamespace,
    /// clone3: refused with ENOSYS, since its flags are in memory, out of a filter's reach.
    NoSuchSyscall,
    /// The gate: socket() of a network family (the first argument).
    NetworkSocket,
    /// The gate: i386's socketcall, whose first argument says which socket call it is.
    SocketCall,
    /// The gate, when it refuses io_uring: io_uring_setup is sent.
    IoUring,
}

/// A syscall the filter names: its name, which libseccomp resolves for every ABI of a
/// container's profile, and its numbers, which the `execguard run` program compares.
#[derive(Debug, Clone, Copy)]
pub struct Syscall {
    pub name: &'static str,
    pub treatment: Treatment,
    /// On x86_64, and with [`X32_SYSCALL_BIT`] set on x32 ("common" entries share it).
    x86_64: Option<i32>,
    /// x32's own number, where it has one (with the bit set).
    x32: Option<i32>,
    i386: Option<i32>,
}

/// The one list of what the filter acts on, in the order the program tests them. The
/// container rules (the shim's spec patch) take their names from it, the `execguard run`
/// program its numbers; `shim/tests/filter_agreement.rs` checks through libseccomp that
/// both say the same.
pub const SYSCALLS: [Syscall; 11] = [
    syscall("execve", Treatment::Exec, Some(X86_64_EXECVE), Some(X32_EXECVE), Some(I386_EXECVE)),
    syscall("execveat", Treatment::Exec, Some(X86_64_EXECVEAT), Some(X32_EXECVEAT), Some(I386_EXECVEAT)),
    syscall("chroot", Treatment::RootChange, Some(X86_64_CHROOT), None, Some(I386_CHROOT)),
    syscall("pivot_root", Treatment::RootChange, Some(X86_64_PIVOT_ROOT), None, Some(I386_PIVOT_ROOT)),
    syscall("setns", Treatment::RootChange, Some(X86_64_SETNS), None, Some(I386_SETNS)),
    syscall("unshare", Treatment::NewMountNamespace, Some(X86_64_UNSHARE), None, Some(I386_UNSHARE)),
    syscall("clone", Treatment::NewMountNamespace, Some(X86_64_CLONE), None, Some(I386_CLONE)),
    syscall("clone3", Treatment::NoSuchSyscall, Some(CLONE3), None, Some(CLONE3)),
    syscall("socket", Treatment::NetworkSocket, Some(X86_64_SOCKET), None, Some(I386_SOCKET)),
    syscall("socketcall", Treatment::SocketCall, None, None, Some(I386_SOCKETCALL)),
    syscall("io_uring_setup", Treatment::IoUring, Some(IO_URING_SETUP), None, Some(IO_URING_SETUP)),
];

const fn syscall(
    name: &'static str,
    treatment: Treatment,
    x86_64: Option<i32>,
    x32: Option<i32>,
    i386: Option<i32>,
) -> Syscall {
    Syscall { name, treatment, x86_64, x32, i386 }
}

/// The names of the syscalls treated so, in table order.
pub fn names(treatment: Treatment) -> Vec<&'static str> {
    SYSCALLS.iter().filter(|s| s.treatment == treatment).map(|s| s.name).collect()
}

/// Missing from libc (linux/seccomp.h, Linux 6.6): the notifying task blocks right after
/// waking the supervisor, so the kernel wakes it as a synchronous hand-off (WF_SYNC) and
/// the scheduler may run the supervisor on the same CPU.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: libc::c_ulong = 1;
/// Missing from libc (linux/seccomp.h, Linux 5.19).
const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: libc::c_ulong = 1 << 5;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Exec,
    /// chroot, pivot_root, setns, and unshare or clone with CLONE_NEWNS: they can change
    /// the root that paths resolve in, for the caller or, with pivot_root, for every
    /// process of its mount namespace.
    RootChange,
    /// A socket of a network family (the [`Gate`]).
    NetworkSocket,
    /// io_uring_setup (the [`Gate`], when it refuses io_uring).
    IoUring,
}

/// One stopped syscall (an execve or execveat, or another that the filter notifies), as
/// the kernel reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    /// The cookie that every later ioctl about this notification must quote.
    pub id: u64,
    /// The calling thread's id in the supervisor's pid namespace (a tid, not always the
    /// thread-group leader: /proc/TID works for it).
    pub pid: u32,
    pub nr: i32,
    pub arch: u32,
    /// Raw register values; [`Notification::exec_args`] decodes them.
    pub args: [u64; 6],
}

/// How wide the pointers of the executing ABI are (x86_64: 64, i386 and x32: 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointerWidth {
    Bits64,
    Bits32,
}

impl PointerWidth {
    pub fn bytes(self) -> usize {
        match self {
            PointerWidth::Bits64 => 8,
            PointerWidth::Bits32 => 4,
        }
    }

    /// The address the kernel will use for a pointer passed in a register.
    pub fn truncate(self, value: u64) -> u64 {
        match self {
            PointerWidth::Bits64 => value,
            PointerWidth::Bits32 => value & 0xffff_ffff,
        }
    }
}

/// The arguments of an execve or execveat, decoded for the caller's ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecArgs {
    /// execveat's dirfd, unless it is AT_FDCWD; always `None` for execve.
    pub dirfd: Option<i32>,
    pub path: u64,
    pub argv: u64,
    pub envp: u64,
    /// execveat with AT_EMPTY_PATH: with an empty path the file is dirfd itself.
    pub empty_path: bool,
    /// How wide the pointers in the argv and envp arrays are.
    pub pointer_width: PointerWidth,
}

impl Notification {
    /// What the notified syscall is.
    pub fn kind(&self) -> Kind {
        let nr = self.nr & !X32_SYSCALL_BIT;
        let socket = match self.arch {
            AUDIT_ARCH_X86_64 => nr == X86_64_SOCKET,
            AUDIT_ARCH_I386 => nr == I386_SOCKET || nr == I386_SOCKETCALL,
            _ => false,
        };
        if self.is_exec() {
            Kind::Exec
        } else if socket {
            Kind::NetworkSocket
        } else if nr == IO_URING_SETUP {
            Kind::IoUring
        } else {
            Kind::RootChange
        }
    }

    /// Whether a [`Kind::NetworkSocket`] notification is one the gate must check: a socket
    /// of a network family, or i386's socketcall(SOCKET), whose family is in memory. A
    /// container profile can send every socket (see the spec patch): the others pass.
    pub fn needs_the_gate(&self) -> bool {
        let nr = self.nr & !X32_SYSCALL_BIT;
        let first = self.args[0] as u32;
        match self.arch {
            AUDIT_ARCH_I386 if nr == I386_SOCKETCALL => first == SOCKETCALL_SOCKET,
            _ => NETWORK_FAMILIES.contains(&first),
        }
    }

    /// Whether the syscall is execve or execveat.
    pub fn is_exec(&self) -> bool {
        match self.arch {
            AUDIT_ARCH_X86_64 => matches!(self.nr, X86_64_EXECVE | X32_EXECVE | X32_BIT_EXECVE) || self.is_execveat(),
            AUDIT_ARCH_I386 => matches!(self.nr, I386_EXECVE | I386_EXECVEAT),
            _ => false,
        }
    }

    /// Whether the syscall is execveat (of an exec: see [`Notification::is_exec`]).
    pub fn is_execveat(&self) -> bool {
        match self.arch {
            AUDIT_ARCH_X86_64 => matches!(self.nr, X86_64_EXECVEAT | X32_EXECVEAT | X32_BIT_EXECVEAT),
            AUDIT_ARCH_I386 => self.nr == I386_EXECVEAT,
            _ => false,
        }
    }

    /// The pointer width of the caller's ABI: i386 and x32 programs pass 32-bit pointers.
    fn pointer_width(&self) -> PointerWidth {
        let x32 = self.arch == AUDIT_ARCH_X86_64 && self.nr & X32_SYSCALL_BIT != 0;
        if self.arch == AUDIT_ARCH_I386 || x32 {
            PointerWidth::Bits32
        } else {
            PointerWidth::Bits64
        }
    }

    /// Decodes the arguments as the kernel itself will use them. The compat entry points
    /// (i386, x32) use only the low 32 bits of each register, while the notification carries
    /// the whole register: a 64-bit program that issues `int 0x80` can leave garbage in the
    /// upper halves, and reading memory at the unmasked address would show the supervisor
    /// something else than what the kernel executes.
    pub fn exec_args(&self) -> ExecArgs {
        let width = self.pointer_width();
        let [a0, a1, a2, a3, a4, _] = self.args;
        if self.is_execveat() {
            // dirfd and flags are C ints: the kernel reads the low 32 bits as signed.
            let dirfd = a0 as u32 as i32;
            let flags = a4 as u32 as i32;
            ExecArgs {
                dirfd: (dirfd != libc::AT_FDCWD).then_some(dirfd),
                path: width.truncate(a1),
                argv: width.truncate(a2),
                envp: width.truncate(a3),
                empty_path: flags & libc::AT_EMPTY_PATH != 0,
                pointer_width: width,
            }
        } else {
            ExecArgs {
                dirfd: None,
                path: width.truncate(a0),
                argv: width.truncate(a1),
                envp: width.truncate(a2),
                empty_path: false,
                pointer_width: width,
            }
        }
    }
}

/// A seccomp user-notification listener.
#[derive(Debug)]
pub struct NotifyFd(OwnedFd);

impl NotifyFd {
    /// Wraps a listener fd, as returned by [`ExecFilter::install_in_child`] or sent by runc.
    pub fn from_owned(fd: OwnedFd) -> Self {
        NotifyFd(fd)
    }

    /// Receives the next pending notification. Blocks while none is pending: poll first.
    /// A notification withdrawn between poll and RECV gives kind `NotFound`.
    pub fn recv(&self) -> io::Result<Notification> {
        loop {
            // The kernel refuses a seccomp_notif that is not zeroed (EINVAL since Linux 5.5,
            // seccomp_unotify(2)): build a fresh zeroed one for every attempt.
            let mut raw = libc::seccomp_notif {
                id: 0,
                pid: 0,
                flags: 0,
                data: libc::seccomp_data { nr: 0, arch: 0, instruction_pointer: 0, args: [0; 6] },
            };
            // SAFETY: the fd is a listener we own, and `raw` is a writable seccomp_notif, the
            // exact type SECCOMP_IOCTL_NOTIF_RECV fills.
            let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut raw) };
            if rc == 0 {
                return Ok(Notification {
                    id: raw.id,
                    pid: raw.pid,
                    nr: raw.data.nr,
                    arch: raw.data.arch,
                    args: raw.data.args,
                });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Whether the notification is still pending, i.e. its task still waits in that
    /// syscall. After reading the task's memory or /proc, this is what proves that the
    /// pid was not reused in between (seccomp_unotify(2), "Caveats").
    pub fn id_valid(&self, id: u64) -> bool {
        // SAFETY: the fd is a listener we own; ID_VALID only reads the u64 behind the pointer.
        unsafe { libc::ioctl(self.0.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
    }

    /// Lets the syscall run as if no filter were there.
    pub fn respond_continue(&self, id: u64) -> io::Result<()> {
        self.send(libc::seccomp_notif_resp {
            id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        })
    }

    /// Fails the syscall with `errno` (e.g. `libc::EPERM`). Anything outside 1..=4095
    /// (MAX_ERRNO) is refused: an answer with error 0 and no CONTINUE flag would make the
    /// execve return 0 without executing anything, and other values are no errno.
    pub fn respond_errno(&self, id: u64, errno: i32) -> io::Result<()> {
        if !(1..=4095).contains(&errno) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("errno {errno} is no error: a blocked exec must fail"),
            ));
        }
        self.send(libc::seccomp_notif_resp { id, val: 0, error: -errno, flags: 0 })
    }

    /// ENOENT (kind `NotFound`) means the notification was withdrawn or its task is gone.
    fn send(&self, mut resp: libc::seccomp_notif_resp) -> io::Result<()> {
        loop {
            // SAFETY: the fd is a listener we own, and `resp` is the seccomp_notif_resp that
            // SECCOMP_IOCTL_NOTIF_SEND reads.
            let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
            if rc == 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Asks for synchronous wake-ups on this listener. On these machines the kernel's own
    /// round trip fell from about 9 to 3 us with it, but whole execs gained nothing
    /// reliable (shared/reference/performance-facts.md). EINVAL before Linux 6.6, which
    /// the caller may ignore.
    pub fn enable_sync_wakeup(&self) -> io::Result<()> {
        // SAFETY: the fd is a listener we own; SET_FLAGS takes its flags by value.
        let rc = unsafe {
            libc::ioctl(self.0.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl AsFd for NotifyFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for NotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

// Classic BPF as the seccomp filter sees it: `seccomp_data` starts with `int nr`, then
// `u32 arch`, the instruction pointer, and the six arguments as u64 (the low word of the
// first at offset 16: x86 is little-endian).
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARG0_LOW: u32 = 16;
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// A place in the program that jumps go to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    I386,
    Socket,
    SocketCall,
    NewMountNamespace,
    Notify,
    NoSuchSyscall,
    Kill,
}

/// One step of the program: an instruction, or the place of a label. Jumps name labels
/// instead of counting instructions, so inserting a step cannot send a jump astray.
#[derive(Clone, Copy)]
enum Step {
    Load(u32),
    /// To the label if the accumulator equals the value, else on.
    IfEq(u32, Label),
    /// To the label if the accumulator differs from the value, else on.
    IfNe(u32, Label),
    /// To the label if the accumulator has any bit of the value, else on.
    IfAnyBit(u32, Label),
    Return(u32),
    Here(Label),
}

/// What enforce mode adds to the filter: a second gate after the exec (THREAT_MODEL.md,
/// gap 1). An allowed exec is answered CONTINUE, and the kernel then looks up the path and
/// copies argv again: a racing thread can swap them in between. What a process runs can
/// be read race-free after the exec, and every network tool needs a network socket, whose
/// family is a register value: so socket() for AF_INET, AF_INET6 and AF_PACKET (and
/// i386's socketcall(SOCKET), whose family a filter cannot read) goes to the supervisor,
/// which checks what really runs. io_uring creates sockets without socket(): it is sent
/// too, to be refused and reported, unless the node lets workloads use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    pub io_uring: bool,
}

/// The program: execve and execveat of every x86 ABI go to the supervisor, and so does
/// every syscall that can give a process another root or mount namespace (what the
/// supervisor relies on to resolve paths in a root it opened once, see
/// [`Notification::kind`]). clone and unshare are notified only with CLONE_NEWNS
/// (forks are the commonest syscall after exec's own), clone3 is refused with ENOSYS (its
/// flags sit in memory that a filter cannot read; glibc then falls back to clone, as it
/// does under Docker's and containerd's default profiles), any other syscall runs, and an
/// unknown ABI is killed (it could reach execve unseen). With a [`Gate`], network sockets
/// (and io_uring_setup, when the gate refuses it) are notified too.
fn steps(gate: Option<Gate>) -> Vec<Step> {
    let named = || SYSCALLS.iter().filter(move |syscall| syscall.treatment.in_filter(gate));
    let mut steps = vec![Step::Load(OFFSET_ARCH), Step::IfNe(AUDIT_ARCH_X86_64, Label::I386), Step::Load(OFFSET_NR)];
    for syscall in named() {
        // The x86_64 number also with the x32 bit: x32 shares the "common" entries, and a
        // 64-bit-only number with the bit set is ENOSYS today, but a filter that let it
        // through unseen would depend on that staying true.
        let x32_bit = syscall.x86_64.map(|nr| nr | X32_SYSCALL_BIT);
        for nr in [syscall.x86_64, syscall.x32, x32_bit].into_iter().flatten() {
            steps.push(Step::IfEq(nr as u32, syscall.treatment.label()));
        }
    }
    steps.extend([
        Step::Return(libc::SECCOMP_RET_ALLOW),
        Step::Here(Label::I386),
        Step::IfNe(AUDIT_ARCH_I386, Label::Kill),
        Step::Load(OFFSET_NR),
    ]);
    for syscall in named() {
        if let Some(nr) = syscall.i386 {
            steps.push(Step::IfEq(nr as u32, syscall.treatment.label()));
        }
    }
    steps.extend([
        Step::Return(libc::SECCOMP_RET_ALLOW),
        Step::Here(Label::Kill),
        Step::Return(libc::SECCOMP_RET_KILL_PROCESS),
        // unshare's and clone's flags are their first argument on every x86 ABI (i386's
        // clone too: CONFIG_CLONE_BACKWARDS).
        Step::Here(Label::NewMountNamespace),
        Step::Load(OFFSET_ARG0_LOW),
        Step::IfAnyBit(libc::CLONE_NEWNS as u32, Label::Notify),
        Step::Return(libc::SECCOMP_RET_ALLOW),
        Step::Here(Label::NoSuchSyscall),
        Step::Return(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    ]);
    if gate.is_some() {
        steps.push(Step::Here(Label::Socket));
        steps.push(Step::Load(OFFSET_ARG0_LOW));
        steps.extend(NETWORK_FAMILIES.map(|family| Step::IfEq(family, Label::Notify)));
        steps.push(Step::Return(libc::SECCOMP_RET_ALLOW));
        steps.push(Step::Here(Label::SocketCall));
        steps.push(Step::Load(OFFSET_ARG0_LOW));
        steps.push(Step::IfEq(SOCKETCALL_SOCKET, Label::Notify));
        steps.push(Step::Return(libc::SECCOMP_RET_ALLOW));
    }
    steps.push(Step::Here(Label::Notify));
    steps.push(Step::Return(libc::SECCOMP_RET_USER_NOTIF));
    steps
}

impl Treatment {
    /// Whether a filter with this gate setting acts on the syscall.
    fn in_filter(self, gate: Option<Gate>) -> bool {
        match self {
            Treatment::NetworkSocket | Treatment::SocketCall => gate.is_some(),
            Treatment::IoUring => gate.is_some_and(|gate| gate.io_uring),
            _ => true,
        }
    }

    /// Where the program goes for such a syscall.
    fn label(self) -> Label {
        match self {
            Treatment::Exec | Treatment::RootChange | Treatment::IoUring => Label::Notify,
            Treatment::NewMountNamespace => Label::NewMountNamespace,
            Treatment::NoSuchSyscall => Label::NoSuchSyscall,
            Treatment::NetworkSocket => Label::Socket,
            Treatment::SocketCall => Label::SocketCall,
        }
    }
}

/// Where `label` stands, in instructions from the start.
fn position(steps: &[Step], label: Label) -> usize {
    let mut position = 0;
    for step in steps {
        match step {
            Step::Here(here) if *here == label => return position,
            Step::Here(_) => {}
            _ => position += 1,
        }
    }
    unreachable!("every label the program jumps to is in it (the seccomp tests assemble both programs)")
}

/// The offset a jump at `from` takes to reach `label`: BPF jumps only forward, by at most
/// 255 instructions (every program is shorter than that: a test checks it).
fn offset(steps: &[Step], from: usize, label: Label) -> u8 {
    let target = position(steps, label);
    u8::try_from(target.saturating_sub(from + 1)).unwrap_or(u8::MAX)
}

/// Assembles the program: jumps by label, so that inserting a step cannot send one astray.
fn assemble(steps: &[Step]) -> Vec<libc::sock_filter> {
    let mut program = Vec::with_capacity(steps.len());
    for step in steps {
        let pc = program.len();
        let instruction = match *step {
            Step::Here(_) => continue,
            Step::Load(offset) => libc::sock_filter { code: LD_W_ABS, jt: 0, jf: 0, k: offset },
            Step::IfEq(k, to) => libc::sock_filter { code: JEQ_K, jt: offset(steps, pc, to), jf: 0, k },
            Step::IfNe(k, to) => libc::sock_filter { code: JEQ_K, jt: 0, jf: offset(steps, pc, to), k },
            Step::IfAnyBit(k, to) => libc::sock_filter { code: JSET_K, jt: offset(steps, pc, to), jf: 0, k },
            Step::Return(action) => libc::sock_filter { code: RET_K, jt: 0, jf: 0, k: action },
        };
        program.push(instruction);
    }
    program
}

/// The filter that notifies execve and execveat for every ABI of x86_64, the syscalls
/// that change roots, and, with a [`Gate`], network sockets (the program is spelled out in
/// this module's `steps`).
///
/// Built in the parent before fork: installing it must not allocate (see
/// [`ExecFilter::install_in_child`]).
pub struct ExecFilter {
    program: Vec<libc::sock_filter>,
}

impl ExecFilter {
    pub fn new(gate: Option<Gate>) -> Self {
        ExecFilter { program: assemble(&steps(gate)) }
    }

    /// The program's instructions, for the test that holds it against what libseccomp
    /// compiles from the container rules.
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.program
    }

    /// Installs the filter on the calling process and returns the listener (close-on-exec,
    /// as the kernel creates it).
    ///
    /// seccomp(2) allows SECCOMP_SET_MODE_FILTER only to a caller that has CAP_SYS_ADMIN in
    /// its user namespace or has set no_new_privs; pass `set_no_new_privs = true` unless
    /// [`holds_cap_sys_admin`] said otherwise in the parent. no_new_privs also makes set-uid
    /// binaries run without their privileges, which is why it is not set unconditionally.
    ///
    /// Async-signal-safe (no allocation, no lock): it is meant for a `pre_exec` closure,
    /// which runs between fork and exec in the child of a possibly multi-threaded parent.
    ///
    /// # Safety
    ///
    /// Call it only in a child that is about to exec and whose listener will reach a
    /// supervisor (e.g. with [`send_fd`]). The filter can never be removed: from then on
    /// every execve of the process and its descendants waits for an answer on the
    /// listener, and fails with ENOSYS once the listener is closed. Installed in the
    /// supervisor itself, its own execs would wait for answers that only it could give.
    pub unsafe fn install_in_child(&self, set_no_new_privs: bool) -> io::Result<OwnedFd> {
        if set_no_new_privs {
            // One prctl, no allocation: safe between fork and exec.
            nix::sys::prctl::set_no_new_privs()?;
        }
        let prog = libc::sock_fprog {
            len: self.program.len() as libc::c_ushort,
            // The kernel copies the program and never writes through this pointer.
            filter: self.program.as_ptr().cast_mut(),
        };
        // WAIT_KILLABLE_RECV (Linux 5.19): once the supervisor has received a notification,
        // only a fatal signal interrupts the waiting task. Without it, programs that signal
        // their own threads (Go's runtime does constantly) withdraw and re-send their
        // execve, and every withdrawal costs a wasted inspection. Older kernels refuse
        // the flag with EINVAL: then do without.
        let with_killable = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        let mut rc = -1;
        for flags in [with_killable, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER] {
            // SAFETY: `prog` points at the program's valid instructions, which outlive the call;
            // the kernel copies them before returning.
            rc = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, &prog) };
            if rc >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
                break;
            }
        }
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: on success the syscall returns a new fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
    }
}

/// A pidfd for process `pid` (pidfd_open(2), flags 0, Linux 5.3): it names that process
/// and no later one that reuses the number, and becomes readable when it exits. The
/// kernel refuses a tid that does not lead its thread group: EINVAL up to Linux 6.8,
/// ENOENT from 6.9 (kernel/pid.c, pidfd_prepare()); a pid that names nothing is ESRCH.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; it touches no
    // memory of ours. nix has no wrapper for it.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(rc).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the syscall just returned this fd, which nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether the calling thread has CAP_SYS_ADMIN in its effective set, which lets it install
/// a seccomp filter without no_new_privs (capabilities are per thread: capget(2) asks
/// about this one). A failure reads as "no", so the caller falls back to no_new_privs,
/// which always works.
pub fn holds_cap_sys_admin() -> bool {
    caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SYS_ADMIN).unwrap_or(false)
}

/// A msghdr over one iovec, with `control` as room for one fd of ancillary data. The
/// caller keeps both alive for as long as the msghdr is used.
fn one_fd_message(iov: &mut libc::iovec, control: &mut OneFdControl) -> libc::msghdr {
    // SAFETY: msghdr is plain data, for which all zeroes (null pointers, zero lengths) is
    // a valid value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ptr::addr_of_mut!(*control).cast();
    msg.msg_controllen = ONE_FD_SPACE as _;
    msg
}

/// Room for one SCM_RIGHTS message carrying one fd, aligned for `cmsghdr`.
#[repr(C)]
union OneFdControl {
    bytes: [u8; ONE_FD_SPACE],
    _align: libc::cmsghdr,
}

// SAFETY: CMSG_SPACE is arithmetic on its argument.
const ONE_FD_SPACE: usize = unsafe { libc::CMSG_SPACE(mem::size_of::<RawFd>() as u32) } as usize;

/// Sends `fd` over the unix socket `sock` (SCM_RIGHTS, with one dummy byte: a stream
/// socket carries no ancillary data without at least one byte of payload, unix(7)).
///
/// Async-signal-safe (stack buffers only, `sendmsg`), so a `pre_exec` closure can use it to
/// hand the listener to the supervising parent.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    send_with_fd(sock, &[0], fd)
}

/// Sends `bytes` (at least one) with `fd` in one message, as runc sends its state and the
/// seccomp listener. Async-signal-safe like [`send_fd`]; a short write is an error.
///
/// By hand rather than through nix's `sendmsg`, which allocates its control buffer: this
/// runs between fork and exec, where allocating can deadlock on a lock another thread of
/// the parent held at fork.
pub fn send_with_fd(sock: BorrowedFd<'_>, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
    // sendmsg only reads through iov_base; the pointer is mut by the C declaration.
    let mut iov = libc::iovec { iov_base: bytes.as_ptr().cast_mut().cast(), iov_len: bytes.len() };
    let mut control = OneFdControl { bytes: [0; ONE_FD_SPACE] };
    let msg = one_fd_message(&mut iov, &mut control);
    // SAFETY: msg_control points at ONE_FD_SPACE bytes aligned for cmsghdr, enough for the
    // header and one fd, so the first header and its data lie inside the buffer.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<RawFd>() as u32) as _;
        ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd.as_raw_fd());
    }
    loop {
        // SAFETY: `msg` and everything it points to live until the call returns.
        let sent = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        match sent {
            n if n >= 0 && n as usize == bytes.len() => return Ok(()),
            // io::Error::from(kind) does not allocate, unlike io::Error::new.
            n if n >= 0 => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

/// Receives one fd sent by [`send_fd`], close-on-exec from the start (MSG_CMSG_CLOEXEC), so
/// no concurrent fork+exec in the supervisor can leak it.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let (received, fd) = recv_with_fd(sock, &mut [0u8; 1])?;
    match fd {
        Some(fd) => Ok(fd),
        None if received == 0 => {
            Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the socket closed before a file descriptor arrived"))
        }
        None => Err(io::Error::new(io::ErrorKind::InvalidData, "a message arrived without a file descriptor")),
    }
}

/// Receives bytes into `buffer` and, if the message carries one, a file descriptor
/// (SCM_RIGHTS, close-on-exec). Returns how many bytes arrived (0: the peer closed).
pub fn recv_with_fd(sock: BorrowedFd<'_>, buffer: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    // Room for one fd: the kernel closes any more it could not fit (and sets MSG_CTRUNC).
    let mut control = nix::cmsg_space!(RawFd);
    let mut iov = [io::IoSliceMut::new(buffer)];
    let message = loop {
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut control), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(Errno::EINTR) => continue,
            result => break result?,
        }
    };
    let received = message.bytes;
    let mut fds = Vec::new();
    for control in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(rights) = control {
            // SAFETY: the kernel installed these fds in our table for this message alone,
            // and nothing else has seen them.
            fds.extend(rights.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok((received, fds.into_iter().next()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;
    use std::time::{Duration, Instant};

    /// Every wait in these tests gives up after this long, so a bug fails instead of hanging.
    const TIMEOUT: Duration = Duration::from_secs(5);
    /// A child exits with 100 + errno when its syscall failed, and 99 when the filter could
    /// not be set up.
    const SETUP_FAILED: i32 = 99;

    /// A forked child, killed and reaped on drop.
    struct Child {
        pid: libc::pid_t,
        reaped: bool,
    }

    impl Child {
        /// The exit code, or None if it died from a signal.
        fn wait(&mut self) -> Option<i32> {
            let deadline = Instant::now() + TIMEOUT;
            let mut status = 0;
            loop {
                // SAFETY: waitpid on our own child with a valid status pointer.
                let rc = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
                assert!(rc >= 0, "waitpid: {}", io::Error::last_os_error());
                if rc == self.pid {
                    self.reaped = true;
                    return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
                }
                assert!(Instant::now() < deadline, "child {} did not exit", self.pid);
                std::thread::sleep(Duration::from_millis(5));
            }
        }

        fn kill(&mut self) {
            // SAFETY: signalling our own, not yet reaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            assert_eq!(self.wait(), None);
        }
    }

    impl Drop for Child {
        fn drop(&mut self) {
            if !self.reaped {
                // SAFETY: as in kill(); the blocking waitpid returns once SIGKILL lands.
                unsafe {
                    libc::kill(self.pid, libc::SIGKILL);
                    libc::waitpid(self.pid, std::ptr::null_mut(), 0);
                }
            }
        }
    }

    /// Up to `len` bytes at `addr` in the stopped process's memory.
    fn read_memory(pid: u32, addr: u64, len: usize) -> Vec<u8> {
        let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
        let mut bytes = vec![0; len];
        let n = mem.read_at(&mut bytes, addr).unwrap();
        bytes.truncate(n);
        bytes
    }

    /// The NUL-terminated string at `addr` in the stopped process (at most 4096 bytes).
    fn read_string(pid: u32, addr: u64) -> Vec<u8> {
        let mut bytes = read_memory(pid, addr, 4096);
        bytes.truncate(bytes.iter().position(|&b| b == 0).expect("a NUL within 4096 bytes"));
        bytes
    }

    /// The 64-bit pointer at `addr` in the stopped process.
    fn read_pointer(pid: u32, addr: u64) -> u64 {
        let word: [u8; 8] = read_memory(pid, addr, 8).try_into().expect("8 readable bytes");
        u64::from_le_bytes(word)
    }

    fn socketpair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two fds socketpair writes.
        let rc =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
        assert_eq!(rc, 0, "socketpair: {}", io::Error::last_os_error());
        // SAFETY: both fds are new and ours alone.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    /// poll(2) for `events` on `fd`, up to TIMEOUT; returns the revents.
    fn poll(fd: BorrowedFd<'_>, events: libc::c_short) -> libc::c_short {
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, TIMEOUT.as_millis() as libc::c_int) };
        assert!(rc >= 0, "poll: {}", io::Error::last_os_error());
        pfd.revents
    }

    fn errno() -> i32 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// Forks a child that installs the filter, sends the listener to us, and then runs
    /// `syscall` (which must be async-signal-safe: the test harness is multi-threaded) and
    /// exits with 100 + errno if it returns -1, or 0.
    fn fork_filtered(syscall: impl FnOnce() -> libc::c_long) -> (Child, NotifyFd) {
        let filter = ExecFilter::new(None);
        let set_no_new_privs = !holds_cap_sys_admin();
        let (ours, theirs) = socketpair();
        // SAFETY: the child only makes async-signal-safe calls and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: we are the forked child, about to run `syscall` under supervision.
            let code = match unsafe { filter.install_in_child(set_no_new_privs) } {
                Ok(listener) if send_fd(theirs.as_fd(), listener.as_fd()).is_ok() => {
                    drop(listener);
                    if syscall() == -1 {
                        100 + errno()
                    } else {
                        0
                    }
                }
                _ => SETUP_FAILED,
            };
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        let child = Child { pid, reaped: false };
        drop(theirs);
        assert_ne!(poll(ours.as_fd(), libc::POLLIN) & libc::POLLIN, 0, "no listener arrived");
        let notify = NotifyFd::from_owned(recv_fd(ours.as_fd()).unwrap());
        (child, notify)
    }

    fn next_notification(notify: &NotifyFd) -> Notification {
        assert_ne!(poll(notify.as_fd(), libc::POLLIN) & libc::POLLIN, 0, "no notification");
        notify.recv().unwrap()
    }

    fn execve_true() -> impl FnOnce() -> libc::c_long {
        let path = CString::new("/bin/true").unwrap();
        move || {
            let argv = [path.as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null()];
            // SAFETY: NUL-terminated path and NULL-terminated arrays, alive for the call.
            unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) as libc::c_long }
        }
    }

    #[test]
    fn continue_runs_the_exec() {
        let (mut child, notify) = fork_filtered(execve_true());
        let n = next_notification(&notify);
        assert_eq!(n.pid, child.pid as u32);
        assert_eq!((n.arch, n.nr), (AUDIT_ARCH_X86_64, X86_64_EXECVE));
        assert!(n.is_exec() && !n.is_execveat());
        let args = n.exec_args();
        assert_eq!(args.dirfd, None);
        assert_eq!(args.pointer_width, PointerWidth::Bits64);
        assert_eq!(read_string(n.pid, args.path), b"/bin/true");
        let argv0 = read_pointer(n.pid, args.argv);
        assert_eq!(read_string(n.pid, argv0), b"/bin/true");
        assert_eq!(read_pointer(n.pid, args.argv + 8), 0, "argv ends after one argument");
        assert!(notify.id_valid(n.id));
        notify.respond_continue(n.id).unwrap();
        assert_eq!(child.wait(), Some(0));
    }

    #[test]
    fn errno_fails_the_exec() {
        let (mut child, notify) = fork_filtered(execve_true());
        let n = next_notification(&notify);
        notify.respond_errno(n.id, libc::EPERM).unwrap();
        assert_eq!(child.wait(), Some(100 + libc::EPERM));
    }

    #[test]
    fn errno_zero_is_refused() {
        let (mut child, notify) = fork_filtered(execve_true());
        let n = next_notification(&notify);
        let err = notify.respond_errno(n.id, 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(notify.id_valid(n.id), "a refused answer must leave the exec waiting");
        child.kill();
    }

    #[test]
    fn id_is_invalid_once_the_task_is_gone() {
        let (mut child, notify) = fork_filtered(execve_true());
        let n = next_notification(&notify);
        assert!(notify.id_valid(n.id));
        child.kill();
        assert!(!notify.id_valid(n.id));
    }

    #[test]
    fn answering_a_killed_task_is_not_found() {
        let (mut child, notify) = fork_filtered(execve_true());
        let n = next_notification(&notify);
        child.kill();
        let err = notify.respond_continue(n.id).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        // The last task of the filter is gone: the listener hangs up.
        assert_ne!(poll(notify.as_fd(), libc::POLLIN) & libc::POLLHUP, 0);
    }

    #[test]
    fn sync_wakeup_is_accepted() {
        let (mut child, notify) = fork_filtered(execve_true());
        notify.enable_sync_wakeup().unwrap();
        let n = next_notification(&notify);
        notify.respond_continue(n.id).unwrap();
        assert_eq!(child.wait(), Some(0));
    }

    #[test]
    fn execveat_is_notified_with_its_dirfd_and_flags() {
        let path = CString::new("true").unwrap();
        let (mut child, notify) = fork_filtered(move || {
            let argv = [path.as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null::<libc::c_char>()];
            // SAFETY: NUL-terminated path, NULL-terminated arrays; fd 987654 does not exist,
            // which does not matter to the filter.
            unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    987654,
                    path.as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                    libc::AT_EMPTY_PATH,
                )
            }
        });
        let n = next_notification(&notify);
        assert_eq!(n.nr, X86_64_EXECVEAT);
        assert!(n.is_execveat());
        let args = n.exec_args();
        assert_eq!(args.dirfd, Some(987654));
        assert!(args.empty_path);
        assert_eq!(read_string(n.pid, args.path), b"true");
        notify.respond_errno(n.id, libc::ENOTNAM).unwrap();
        assert_eq!(child.wait(), Some(100 + libc::ENOTNAM));
    }

    /// x32 execve: the x86_64 arch with the x32 bit in the number, 32-bit pointers.
    #[test]
    fn x32_execve_is_notified_and_its_pointers_truncated() {
        let (mut child, notify) = fork_filtered(|| {
            // SAFETY: the filter stops this syscall before the kernel looks at the
            // (deliberately invalid) pointers, and the test answers it with an errno.
            unsafe { libc::syscall(X32_EXECVE as libc::c_long, 0xdead_0000_0000_1000_u64, 0x2000, 0) }
        });
        let n = next_notification(&notify);
        assert_eq!((n.arch, n.nr), (AUDIT_ARCH_X86_64, X32_EXECVE));
        assert!(!n.is_execveat());
        assert_eq!(n.args[0], 0xdead_0000_0000_1000);
        let args = n.exec_args();
        assert_eq!((args.path, args.argv), (0x1000, 0x2000));
        assert_eq!(args.pointer_width, PointerWidth::Bits32);
        notify.respond_errno(n.id, libc::ENOTNAM).unwrap();
        assert_eq!(child.wait(), Some(100 + libc::ENOTNAM));
    }

    /// i386 execve through `int 0x80`, which a 64-bit program can issue too.
    #[test]
    fn i386_execve_is_notified() {
        let (mut child, notify) = fork_filtered(|| {
            let ret: u64;
            // SAFETY: int 0x80 enters the i386 syscall table; the filter stops execve (11)
            // before its null path is used. rbx cannot be named as an operand, so it is
            // swapped in and out.
            unsafe {
                std::arch::asm!(
                    "xchg {path}, rbx",
                    "int 0x80",
                    "xchg {path}, rbx",
                    path = inout(reg) 0u64 => _,
                    inlateout("rax") u64::from(I386_EXECVE as u32) => ret,
                    in("rcx") 0xdead_0000_0000_2000_u64,
                    in("rdx") 0u64,
                    lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
                );
            }
            // The i386 ABI returns -errno in eax.
            let ret = ret as u32 as i32;
            if ret < 0 {
                // SAFETY: errno is thread-local; setting it is how syscall() reports too.
                unsafe { *libc::__errno_location() = -ret };
                -1
            } else {
                0
            }
        });
        let n = next_notification(&notify);
        assert_eq!((n.arch, n.nr), (AUDIT_ARCH_I386, I386_EXECVE));
        assert!(!n.is_execveat());
        let args = n.exec_args();
        assert_eq!(args.pointer_width, PointerWidth::Bits32);
        // The notification carries the whole register, upper half included; the kernel's
        // compat execve will use only the low half.
        assert_eq!(n.args[1], 0xdead_0000_0000_2000);
        assert_eq!(args.argv, 0x2000);
        notify.respond_errno(n.id, libc::ENOTNAM).unwrap();
        assert_eq!(child.wait(), Some(100 + libc::ENOTNAM));
    }

    /// The program as the kernel runs it, for the cases no real process here can produce.
    fn run_filter(nr: i32, arch: u32, arg0: u64) -> u32 {
        run_program(&ExecFilter::new(None).program, nr, arch, arg0)
    }

    fn run_program(program: &[libc::sock_filter], nr: i32, arch: u32, arg0: u64) -> u32 {
        let mut acc = 0;
        let mut pc = 0;
        loop {
            let ins = program[pc];
            match (ins.code, ins.k) {
                (LD_W_ABS, OFFSET_NR) => acc = nr as u32,
                (LD_W_ABS, OFFSET_ARCH) => acc = arch,
                (LD_W_ABS, OFFSET_ARG0_LOW) => acc = arg0 as u32,
                (JEQ_K, k) => pc += usize::from(if acc == k { ins.jt } else { ins.jf }),
                (JSET_K, k) => pc += usize::from(if acc & k != 0 { ins.jt } else { ins.jf }),
                (RET_K, k) => return k,
                (code, k) => panic!("unexpected instruction {code:#x} {k:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn filter_program_decides_every_abi() {
        const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
        let notify = libc::SECCOMP_RET_USER_NOTIF;
        let allow = libc::SECCOMP_RET_ALLOW;
        let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        let (x86_64, i386, x32) = (AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, X32_SYSCALL_BIT);
        let newns = libc::CLONE_NEWNS as u64;
        // A fork as glibc makes it, and a thread.
        let fork = libc::SIGCHLD as u64 | libc::CLONE_CHILD_SETTID as u64 | libc::CLONE_CHILD_CLEARTID as u64;
        let thread = (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_THREAD) as u64;
        let rows = [
            (x86_64, X86_64_EXECVE, 0, notify, "x86_64 execve"),
            (x86_64, X86_64_EXECVEAT, 0, notify, "x86_64 execveat"),
            (x86_64, X32_EXECVE, 0, notify, "x32 execve"),
            (x86_64, X32_EXECVEAT, 0, notify, "x32 execveat"),
            (x86_64, X32_BIT_EXECVE, 0, notify, "x86_64 number with the x32 bit"),
            (x86_64, X32_BIT_EXECVEAT, 0, notify, "x86_64 number with the x32 bit"),
            (x86_64, libc::SYS_getpid as i32, 0, allow, "anything else runs"),
            (x86_64, I386_EXECVE, 0, allow, "11 is munmap on x86_64"),
            (x86_64, X86_64_CHROOT, 0, notify, "chroot"),
            (x86_64, X86_64_CHROOT | x32, 0, notify, "x32 chroot"),
            (x86_64, X86_64_PIVOT_ROOT, 0, notify, "pivot_root"),
            (x86_64, X86_64_PIVOT_ROOT | x32, 0, notify, "x32 pivot_root"),
            (x86_64, X86_64_SETNS, 0, notify, "setns"),
            (x86_64, X86_64_SETNS | x32, 0, notify, "x32 setns"),
            (x86_64, X86_64_UNSHARE, newns, notify, "unshare of the mount namespace"),
            (x86_64, X86_64_UNSHARE | x32, newns | libc::CLONE_NEWUSER as u64, notify, "x32 unshare"),
            (x86_64, X86_64_UNSHARE, libc::CLONE_NEWUTS as u64, allow, "unshare of another namespace"),
            (x86_64, X86_64_CLONE, fork, allow, "a fork"),
            (x86_64, X86_64_CLONE, thread, allow, "a thread"),
            (x86_64, X86_64_CLONE, fork | newns, notify, "a fork into a new mount namespace"),
            (x86_64, X86_64_CLONE | x32, fork | newns, notify, "x32 clone"),
            (x86_64, X86_64_CLONE, newns << 32, allow, "the kernel's flags are 32 bits wide"),
            (x86_64, CLONE3, 0, enosys, "clone3"),
            (x86_64, CLONE3 | x32, 0, enosys, "x32 clone3"),
            (i386, I386_EXECVE, 0, notify, "i386 execve"),
            (i386, I386_EXECVEAT, 0, notify, "i386 execveat"),
            (i386, X86_64_EXECVE, 0, allow, "59 is olduname on i386"),
            (i386, I386_CHROOT, 0, notify, "i386 chroot"),
            (i386, I386_PIVOT_ROOT, 0, notify, "i386 pivot_root"),
            (i386, I386_SETNS, 0, notify, "i386 setns"),
            (i386, I386_UNSHARE, newns, notify, "i386 unshare"),
            (i386, I386_UNSHARE, 0, allow, "i386 unshare without CLONE_NEWNS"),
            (i386, I386_CLONE, fork | newns, notify, "i386 clone"),
            (i386, I386_CLONE, fork, allow, "i386 fork"),
            (i386, CLONE3, 0, enosys, "i386 clone3"),
            (i386, X86_64_CHROOT, 0, allow, "161 is sched_rr_get_interval on i386"),
            (AUDIT_ARCH_AARCH64, 221, 0, libc::SECCOMP_RET_KILL_PROCESS, "unknown ABI"),
        ];
        for (arch, nr, arg0, expected, why) in rows {
            assert_eq!(run_filter(nr, arch, arg0), expected, "{why}: arch {arch:#x} nr {nr:#x}");
        }
        for gate in [Gate { io_uring: true }, Gate { io_uring: false }] {
            let gated = ExecFilter::new(Some(gate)).program;
            for (arch, nr, arg0, expected, why) in rows {
                assert_eq!(run_program(&gated, nr, arch, arg0), expected, "gated: {why}");
            }
        }
    }

    /// A BPF jump goes at most 255 instructions forward: programs shorter than 256 cannot
    /// need a longer one, so `offset` never has to cut one short.
    #[test]
    fn every_program_is_short_enough_for_its_jumps() {
        for gate in [None, Some(Gate { io_uring: true }), Some(Gate { io_uring: false })] {
            assert!(ExecFilter::new(gate).program.len() <= usize::from(u8::MAX), "{gate:?}");
        }
    }

    /// The gate: network sockets (and io_uring, when refused) reach the supervisor; other
    /// families, and everything without the gate, stay in the kernel.
    #[test]
    fn the_gate_notifies_network_sockets_and_io_uring() {
        let notify = libc::SECCOMP_RET_USER_NOTIF;
        let allow = libc::SECCOMP_RET_ALLOW;
        let (x86_64, i386, x32) = (AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, X32_SYSCALL_BIT);
        let (inet, inet6, packet, unix, netlink) = (
            libc::AF_INET as u64,
            libc::AF_INET6 as u64,
            libc::AF_PACKET as u64,
            libc::AF_UNIX as u64,
            libc::AF_NETLINK as u64,
        );
        let rows = [
            (x86_64, X86_64_SOCKET, inet, notify, notify, "AF_INET"),
            (x86_64, X86_64_SOCKET, inet6, notify, notify, "AF_INET6"),
            (x86_64, X86_64_SOCKET, packet, notify, notify, "AF_PACKET"),
            (x86_64, X86_64_SOCKET | x32, inet, notify, notify, "x32 AF_INET"),
            (x86_64, X86_64_SOCKET, unix, allow, allow, "AF_UNIX"),
            (x86_64, X86_64_SOCKET, netlink, allow, allow, "AF_NETLINK"),
            (x86_64, X86_64_SOCKET, inet | 1 << 32, notify, notify, "the family is an int"),
            (x86_64, IO_URING_SETUP, 0, notify, allow, "io_uring_setup"),
            (x86_64, IO_URING_SETUP | x32, 0, notify, allow, "x32 io_uring_setup"),
            (x86_64, libc::SYS_socketpair as i32, unix, allow, allow, "socketpair"),
            (i386, I386_SOCKET, inet, notify, notify, "i386 socket"),
            (i386, I386_SOCKET, unix, allow, allow, "i386 AF_UNIX"),
            (i386, I386_SOCKETCALL, u64::from(SOCKETCALL_SOCKET), notify, notify, "i386 socketcall(SOCKET)"),
            (i386, I386_SOCKETCALL, 3, allow, allow, "i386 socketcall(CONNECT)"),
            (i386, IO_URING_SETUP, 0, notify, allow, "i386 io_uring_setup"),
        ];
        let refusing = ExecFilter::new(Some(Gate { io_uring: true })).program;
        let allowing = ExecFilter::new(Some(Gate { io_uring: false })).program;
        for (arch, nr, arg0, refused, allowed, why) in rows {
            assert_eq!(run_program(&refusing, nr, arch, arg0), refused, "{why}");
            assert_eq!(run_program(&allowing, nr, arch, arg0), allowed, "{why} (io_uring allowed)");
            assert_eq!(run_filter(nr, arch, arg0), allow, "{why} without the gate");
        }
    }

    /// A fork under the filter: clone3 fails with ENOSYS, which glibc answers with clone.
    #[test]
    fn clone3_is_refused_with_enosys() {
        let (mut child, _notify) = fork_filtered(|| {
            // SAFETY: clone3 with a null argument fails before it could create anything.
            unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0) }
        });
        assert_eq!(child.wait(), Some(100 + libc::ENOSYS));
    }

    /// chroot is notified with its kind and runs once continued.
    #[test]
    fn chroot_is_notified_and_not_an_exec() {
        let (mut child, notify) = fork_filtered(|| {
            // SAFETY: chroot to / changes nothing; the literal is NUL-terminated.
            unsafe { libc::chroot(c"/".as_ptr()) as libc::c_long }
        });
        let n = next_notification(&notify);
        assert_eq!((n.arch, n.nr), (AUDIT_ARCH_X86_64, X86_64_CHROOT));
        assert!(!n.is_exec());
        notify.respond_continue(n.id).unwrap();
        assert_eq!(child.wait(), Some(0));
    }

    /// Against the kernel's own account of the thread (CapEff in /proc/thread-self/status),
    /// as the suite runs (root: it holds the capability) and in a thread that dropped it
    /// from its effective set.
    #[test]
    fn cap_sys_admin_follows_the_threads_effective_set() {
        fn cap_eff_has_sys_admin() -> bool {
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap();
            u64::from_str_radix(eff.trim(), 16).unwrap() & (1 << 21) != 0
        }
        assert!(cap_eff_has_sys_admin(), "this test needs CAP_SYS_ADMIN: run the suite as root (scripts/test does)");
        assert!(holds_cap_sys_admin());
        let dropped = std::thread::spawn(|| {
            caps::drop(None, caps::CapSet::Effective, caps::Capability::CAP_SYS_ADMIN).unwrap();
            (cap_eff_has_sys_admin(), holds_cap_sys_admin())
        });
        assert_eq!(dropped.join().unwrap(), (false, false));
        assert!(holds_cap_sys_admin(), "only the other thread dropped it");
    }

    /// The way `execguard run` uses it: a std Command whose pre_exec installs the filter.
    /// spawn() returns only once the child's execve has succeeded (std waits on a
    /// close-on-exec pipe), so the supervisor must answer from another thread.
    #[test]
    fn pre_exec_child_is_supervised_from_another_thread() {
        use std::os::unix::process::CommandExt;
        let (ours, theirs) = socketpair();
        let filter = ExecFilter::new(None);
        let set_no_new_privs = !holds_cap_sys_admin();
        let sock = theirs.as_raw_fd();
        let mut command = std::process::Command::new("/bin/sh");
        command.args(["-c", "/bin/true && exit 7"]);
        // SAFETY: the closure only calls async-signal-safe functions (see their docs), and
        // `sock` stays open in the parent until spawn() has returned.
        unsafe {
            command.pre_exec(move || {
                let listener = filter.install_in_child(set_no_new_privs)?;
                send_fd(BorrowedFd::borrow_raw(sock), listener.as_fd())
            });
        }
        let supervisor = std::thread::spawn(move || {
            assert_ne!(poll(ours.as_fd(), libc::POLLIN) & libc::POLLIN, 0, "no listener");
            let notify = NotifyFd::from_owned(recv_fd(ours.as_fd()).unwrap());
            let mut paths = Vec::new();
            loop {
                let revents = poll(notify.as_fd(), libc::POLLIN);
                if revents & libc::POLLIN == 0 {
                    assert_ne!(revents & libc::POLLHUP, 0, "timed out");
                    return paths;
                }
                let n = notify.recv().unwrap();
                let path = read_string(n.pid, n.exec_args().path);
                paths.push(String::from_utf8(path).unwrap());
                notify.respond_continue(n.id).unwrap();
            }
        });
        let status = command.status().unwrap();
        drop(theirs);
        assert_eq!(status.code(), Some(7));
        assert_eq!(supervisor.join().unwrap(), ["/bin/sh", "/bin/true"]);
    }
}
