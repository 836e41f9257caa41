//! A compiler of `linux.seccomp` to classic BPF that searches the syscall number by halves
//! over ranges of equal action, for the profiles it covers (x86-64 with its i386 and x32
//! sub-architectures: Docker's default profile and most others); [`super::compile`] falls
//! back to libseccomp for the rest.
//!
//! Why: the kernel runs a new filter once per syscall number of both ABIs (~900 runs) to
//! build its allow cache, and JIT-compiles it; libseccomp's binary tree tests one syscall
//! number per node, 1,227 instructions for Docker's profile, ~0.55 ms of every container
//! start here. Most allowed syscalls have neighbours with the same action, so ranges (and
//! returns shared by the leaves) cut the program to 370 instructions and the load to
//! ~0.24 ms. Syscall names resolve through
//! libseccomp's tables, and a unit test runs both programs in a BPF interpreter over every
//! syscall number and many argument values and requires the same result.

use libseccomp::{ScmpAction, ScmpArch, ScmpSyscall};
use oci_spec::runtime::LinuxSeccomp;

use super::{action, json_name};

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// x32 syscalls are x86-64's with this bit set in the number.
const X32_BIT: u32 = 0x4000_0000;

// classic BPF opcodes (linux/filter.h)
const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: usize, jf: usize) -> Option<Insn> {
    Some(Insn {
        code,
        jt: u8::try_from(jt).ok()?,
        jf: u8::try_from(jf).ok()?,
        k,
    })
}

/// The value `SECCOMP_RET_*` a filter returns for `a`.
fn ret_value(a: ScmpAction) -> u32 {
    match a {
        ScmpAction::KillProcess => 0x8000_0000,
        ScmpAction::KillThread => 0,
        ScmpAction::Trap => 0x0003_0000,
        ScmpAction::Errno(e) => 0x0005_0000 | (e as u32 & 0xffff),
        ScmpAction::Trace(e) => 0x7ff0_0000 | u32::from(e),
        ScmpAction::Log => 0x7ffc_0000,
        ScmpAction::Allow => 0x7fff_0000,
        // Notify is refused by `check`; were it here, libseccomp compiles it.
        _ => u32::MAX,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// (arg & mask) == (value & mask), as libseccomp compares
    MaskedEq(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cond {
    arg: u32,
    op: Op,
    value: u64,
}

/// What one syscall number gets: `action` when any of `rules` holds (all its conditions),
/// else the default. An empty rule (no conditions) always holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decision {
    action: u32,
    rules: Vec<Vec<Cond>>,
    abi: Abi,
}

impl Decision {
    fn unconditional(&self) -> bool {
        self.rules.iter().any(Vec::is_empty)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Abi {
    arch: ScmpArch,
    /// Arguments are compared on their low 32 bits only (as libseccomp does for
    /// 32-bit ABIs).
    narrow: bool,
}

/// The program for `s`, or None when it is not one this compiler covers (then libseccomp
/// compiles it).
pub(super) fn compile(s: &LinuxSeccomp) -> Option<Vec<Insn>> {
    // leaves jump to returns shared at the end of their ABI's code (half the
    // instructions) unless one is out of a jump's reach
    compile_with(s, true).or_else(|| compile_with(s, false))
}

fn compile_with(s: &LinuxSeccomp, share: bool) -> Option<Vec<Insn>> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    let default = ret_value(action(s.default_action(), None, s.default_errno_ret(), "").ok()?);
    let mut arches = Vec::new();
    for a in s.architectures().iter().flatten() {
        let arch: ScmpArch = json_name(a).parse().ok()?;
        let abi = match arch {
            ScmpArch::X8664 => Abi {
                arch,
                narrow: false,
            },
            ScmpArch::X86 | ScmpArch::X32 => Abi { arch, narrow: true },
            _ => return None,
        };
        if !arches.contains(&abi) {
            arches.push(abi);
        }
    }
    // the host's own ABI is always in the filter, named or not (as libseccomp's init)
    if !arches.iter().any(|a| a.arch == ScmpArch::X8664) {
        arches.insert(
            0,
            Abi {
                arch: ScmpArch::X8664,
                narrow: false,
            },
        );
    }
    // syscall number -> decision, per ABI
    let mut tables = Vec::new();
    for abi in &arches {
        tables.push((abi.arch, decisions(s, *abi, default)?));
    }
    let mut table = |a: ScmpArch| {
        let i = tables.iter().position(|(x, _)| *x == a)?;
        Some(tables.swap_remove(i).1)
    };
    // libseccomp's answer for an ABI the filter does not name: kill the thread
    let bad_arch = 0;
    let mut t = table(ScmpArch::X8664)?;
    let mut x64 = vec![sym(stmt(LD_W_ABS, OFF_NR))];
    match table(ScmpArch::X32) {
        // x32's numbers (with their bit) and x86-64's in one search, as libseccomp
        Some(t32) => {
            t.extend(t32);
            x64.extend(search(&t, default, 0, 1 << 32, share)?.into_block());
        }
        // x32's numbers are another ABI's, except -1 (a syscall a tracer skipped)
        None => {
            let native = search(&t, default, 0, u64::from(X32_BIT), share)?;
            let upper = Code::Block(vec![
                sym(jump(JMP_JEQ_K, u32::MAX, 0, 1)?),
                sym(stmt(RET_K, default)),
                sym(stmt(RET_K, bad_arch)),
            ]);
            x64.extend(branch(JMP_JGE_K, X32_BIT, upper, native, share));
        }
    }
    // dispatch on the ABI: x86-64's code, i386's, else the bad-ABI answer
    let mut rest = vec![sym(stmt(RET_K, bad_arch))];
    if let Some(t) = table(ScmpArch::X86) {
        let mut x86 = vec![sym(stmt(LD_W_ABS, OFF_NR))];
        x86.extend(search(&t, default, 0, 1 << 32, share)?.into_block());
        let x86 = finish(&x86)?.into_iter().map(sym).collect();
        rest = branch(
            JMP_JEQ_K,
            AUDIT_ARCH_I386,
            Code::Block(x86),
            Code::Block(rest),
            false,
        );
    }
    let x64 = finish(&x64)?.into_iter().map(sym).collect();
    rest = branch(
        JMP_JEQ_K,
        AUDIT_ARCH_X86_64,
        Code::Block(x64),
        Code::Block(rest),
        false,
    );
    let mut prog = vec![stmt(LD_W_ABS, OFF_ARCH)];
    prog.extend(finish(&rest)?);
    (prog.len() <= 4096).then_some(prog)
}

/// Per syscall number of `abi`, what the profile decides (numbers absent: the default).
fn decisions(
    s: &LinuxSeccomp,
    abi: Abi,
    default: u32,
) -> Option<std::collections::BTreeMap<u32, Decision>> {
    let mut out: std::collections::BTreeMap<u32, Decision> = Default::default();
    // (multiplexer, action) of the rules for i386 socket and IPC calls
    let mut muxed: Vec<(&str, u32)> = Vec::new();
    for sc in s.syscalls().iter().flatten() {
        let act = ret_value(action(sc.action(), sc.errno_ret(), s.default_errno_ret(), "").ok()?);
        if act == default {
            continue;
        }
        let mut conds = Vec::new();
        for a in sc.args().iter().flatten() {
            let op = match json_name(&a.op()).as_str() {
                "SCMP_CMP_NE" => Op::Ne,
                "SCMP_CMP_LT" => Op::Lt,
                "SCMP_CMP_LE" => Op::Le,
                "SCMP_CMP_EQ" => Op::Eq,
                "SCMP_CMP_GE" => Op::Ge,
                "SCMP_CMP_GT" => Op::Gt,
                "SCMP_CMP_MASKED_EQ" => Op::MaskedEq(a.value()),
                _ => return None,
            };
            let value = match op {
                Op::MaskedEq(_) => a.value_two().unwrap_or(0),
                _ => a.value(),
            };
            if a.index() > 5 {
                return None;
            }
            conds.push(Cond {
                arg: a.index() as u32,
                op,
                value,
            });
        }
        // Several conditions on one argument mean "any of" (as runc and `super::compile`).
        let rules: Vec<Vec<Cond>> =
            if conds.len() > 1 && conds.iter().all(|c| c.arg == conds[0].arg) {
                conds.iter().map(|c| vec![*c]).collect()
            } else {
                vec![conds]
            };
        for r in &rules {
            if abi.narrow && r.iter().any(wide) {
                // libseccomp's handling of 64-bit values on a 32-bit ABI: not ours to guess
                return None;
            }
            // two conditions on one argument in one rule: libseccomp's own semantics
            if r.iter()
                .enumerate()
                .any(|(i, c)| r[..i].iter().any(|d| d.arg == c.arg))
            {
                return None;
            }
        }
        for name in sc.names() {
            let Ok(nr) = ScmpSyscall::from_name_by_arch(name, abi.arch) else {
                continue;
            };
            let mut nr = nr.as_raw_syscall();
            if let Some((mux, direct)) = multiplexed(abi.arch, name) {
                // libseccomp names these by pseudo numbers, and filters the direct
                // syscall (where there is one) and the multiplexer's sub-call
                muxed.push((mux, act));
                nr = direct.map_or(-1, |d| d as i32);
            }
            let Ok(nr) = u32::try_from(nr) else {
                // a number libseccomp keeps for a syscall this ABI lacks
                continue;
            };
            let d = out.entry(nr).or_insert_with(|| Decision {
                action: act,
                rules: Vec::new(),
                abi,
            });
            if d.action != act {
                // two actions for one syscall: libseccomp's precedence, not ours
                return None;
            }
            d.rules.extend(rules.iter().cloned());
        }
    }
    for d in out.values_mut() {
        if d.unconditional() {
            d.rules = vec![Vec::new()];
        }
    }
    // libseccomp also filters these as sub-calls of their multiplexer, with conditions of
    // its own making: covered only when the multiplexer gets the same action anyway.
    for (mux, act) in muxed {
        let nr = ScmpSyscall::from_name_by_arch(mux, abi.arch).ok()?;
        let d = out.get(&u32::try_from(nr.as_raw_syscall()).ok()?)?;
        if d.action != act || !d.unconditional() {
            return None;
        }
    }
    Some(out)
}

fn wide(c: &Cond) -> bool {
    c.value > u64::from(u32::MAX) || matches!(c.op, Op::MaskedEq(m) if m > u64::from(u32::MAX))
}

/// On i386, the socket and IPC calls are sub-calls of `socketcall` and `ipc`, and most
/// also syscalls of their own (since Linux 4.3 and 5.1): (multiplexer, direct number).
fn multiplexed(arch: ScmpArch, name: &str) -> Option<(&'static str, Option<u32>)> {
    const SOCKET: &[(&str, Option<u32>)] = &[
        ("socket", Some(359)),
        ("bind", Some(361)),
        ("connect", Some(362)),
        ("listen", Some(363)),
        ("accept", None),
        ("getsockname", Some(367)),
        ("getpeername", Some(368)),
        ("socketpair", Some(360)),
        ("send", None),
        ("recv", None),
        ("sendto", Some(369)),
        ("recvfrom", Some(371)),
        ("shutdown", Some(373)),
        ("setsockopt", Some(366)),
        ("getsockopt", Some(365)),
        ("sendmsg", Some(370)),
        ("recvmsg", Some(372)),
        ("accept4", Some(364)),
        ("recvmmsg", Some(337)),
        ("sendmmsg", Some(345)),
    ];
    const IPC: &[(&str, Option<u32>)] = &[
        ("semop", None),
        ("semget", Some(393)),
        ("semctl", Some(394)),
        ("semtimedop", None),
        ("msgsnd", Some(400)),
        ("msgrcv", Some(401)),
        ("msgget", Some(399)),
        ("msgctl", Some(402)),
        ("shmat", Some(397)),
        ("shmdt", Some(398)),
        ("shmget", Some(395)),
        ("shmctl", Some(396)),
    ];
    if arch != ScmpArch::X86 {
        return None;
    }
    let find = |t: &[(&str, Option<u32>)]| t.iter().find(|(n, _)| *n == name).map(|(_, d)| *d);
    find(SOCKET)
        .map(|d| ("socketcall", d))
        .or_else(|| find(IPC).map(|d| ("ipc", d)))
}

/// Where a jump goes: past `n` instructions, or to the shared `ret` of a value (placed at
/// the end of its ABI's code by [`finish`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Skip(usize),
    Ret(u32),
}

/// An instruction whose jumps may go to a shared return.
#[derive(Debug, Clone, Copy)]
struct Sym {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

fn sym(i: Insn) -> Sym {
    Sym {
        code: i.code,
        k: i.k,
        jt: To::Skip(i.jt.into()),
        jf: To::Skip(i.jf.into()),
    }
}

/// The code for some syscall numbers: a return (that a jump may share), or instructions.
#[derive(Debug)]
enum Code {
    Ret(u32),
    Block(Vec<Sym>),
}

impl Code {
    fn into_block(self) -> Vec<Sym> {
        match self {
            Code::Ret(a) => vec![sym(stmt(RET_K, a))],
            Code::Block(b) => b,
        }
    }
}

/// The jump `code` with `k` (`jge`, `jeq`) to `hi` when taken, else `lo`: a return is
/// jumped to, not laid out, when `share`; a long `lo` is jumped over.
fn branch(code: u16, k: u32, hi: Code, lo: Code, share: bool) -> Vec<Sym> {
    let (hi, lo) = if share {
        (hi, lo)
    } else {
        (Code::Block(hi.into_block()), Code::Block(lo.into_block()))
    };
    let ins = |jt, jf| Sym { code, k, jt, jf };
    let mut out = Vec::new();
    let hi_at = |skip: usize| match &hi {
        Code::Ret(a) => To::Ret(*a),
        Code::Block(_) => To::Skip(skip),
    };
    match &lo {
        Code::Ret(b) => out.push(ins(hi_at(0), To::Ret(*b))),
        Code::Block(l) if l.len() <= 255 || matches!(hi, Code::Ret(_)) => {
            out.push(ins(hi_at(l.len()), To::Skip(0)));
            out.extend(l);
        }
        Code::Block(l) => {
            // taken: next (the jump to hi), else skip it
            out.push(ins(To::Skip(0), To::Skip(1)));
            out.push(sym(stmt(JMP_JA, l.len() as u32)));
            out.extend(l);
        }
    }
    if let Code::Block(h) = hi {
        out.extend(h);
    }
    out
}

/// `code` with the returns it jumps to laid out after it, every jump resolved; None when
/// one is out of reach (255 instructions).
fn finish(code: &[Sym]) -> Option<Vec<Insn>> {
    let mut pool: Vec<u32> = Vec::new();
    for i in code {
        for t in [i.jt, i.jf] {
            if let To::Ret(a) = t {
                if !pool.contains(&a) {
                    pool.push(a);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(code.len() + pool.len());
    for (n, i) in code.iter().enumerate() {
        let off = |t: To| -> Option<u8> {
            let skip = match t {
                To::Skip(s) => s,
                To::Ret(a) => code.len() - n - 1 + pool.iter().position(|p| *p == a)?,
            };
            u8::try_from(skip).ok()
        };
        out.push(Insn {
            code: i.code,
            jt: off(i.jt)?,
            jf: off(i.jf)?,
            k: i.k,
        });
    }
    out.extend(pool.into_iter().map(|a| stmt(RET_K, a)));
    Some(out)
}

/// Code for syscall numbers in [from, to) (A holds the number): a search by halves over
/// the ranges of equal action, each leaf a return or the argument checks of one syscall.
fn search(
    t: &std::collections::BTreeMap<u32, Decision>,
    default: u32,
    from: u64,
    to: u64,
    share: bool,
) -> Option<Code> {
    // ranges [start, end) with one leaf each, covering [from, to)
    let mut ranges: Vec<(u64, u64, Leaf)> = Vec::new();
    let mut push = |start: u64, end: u64, leaf: Leaf| {
        if start >= end {
            return;
        }
        if let Some(last) = ranges.last_mut() {
            if last.1 == start && last.2 == leaf && leaf.mergeable() {
                last.1 = end;
                return;
            }
        }
        ranges.push((start, end, leaf));
    };
    let mut at = from;
    for (&nr, d) in t.range(u32::try_from(from).ok()?..) {
        let nr = u64::from(nr);
        if nr >= to {
            break;
        }
        push(at, nr, Leaf::Ret(default));
        let leaf = if d.unconditional() {
            Leaf::Ret(d.action)
        } else {
            Leaf::Check(d.clone())
        };
        push(nr, nr + 1, leaf);
        at = nr + 1;
    }
    push(at, to, Leaf::Ret(default));
    tree(&ranges, default, share)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Leaf {
    Ret(u32),
    Check(Decision),
}

impl Leaf {
    fn mergeable(&self) -> bool {
        matches!(self, Leaf::Ret(_))
    }
}

fn tree(ranges: &[(u64, u64, Leaf)], default: u32, share: bool) -> Option<Code> {
    match ranges {
        [] => None,
        [(_, _, Leaf::Ret(a))] => Some(Code::Ret(*a)),
        [(_, _, Leaf::Check(d))] => Some(Code::Block(
            checks(d, default)?.into_iter().map(sym).collect(),
        )),
        _ => {
            let mid = ranges.len() / 2;
            let k = u32::try_from(ranges[mid].0).ok()?;
            let hi = tree(&ranges[mid..], default, share)?;
            let lo = tree(&ranges[..mid], default, share)?;
            Some(Code::Block(branch(JMP_JGE_K, k, hi, lo, share)))
        }
    }
}

/// The argument checks of one syscall: each rule in turn, its action when all its
/// conditions hold; the default after the last.
fn checks(d: &Decision, default: u32) -> Option<Vec<Insn>> {
    let mut out = Vec::new();
    for rule in &d.rules {
        let mut body = Vec::new();
        // each condition's code jumps to FAIL (patched to the rule's end) or falls through
        let mut fails = Vec::new();
        for c in rule {
            cond(&mut body, &mut fails, c, d.abi)?;
        }
        body.push(stmt(RET_K, d.action));
        let end = body.len();
        for i in fails {
            let off = end - i - 1;
            let insn = &mut body[i];
            // the placeholder is the branch that fails; 255 is its marker
            if insn.jt == FAIL {
                insn.jt = u8::try_from(off).ok()?;
            }
            if insn.jf == FAIL {
                insn.jf = u8::try_from(off).ok()?;
            }
        }
        out.extend(body);
    }
    out.push(stmt(RET_K, default));
    Some(out)
}

/// Placeholder for a jump to the rule's failure, patched in `checks`.
const FAIL: u8 = 255;

/// Emit the test of `c` into `body`: falls through when it holds; the jumps that fail are
/// recorded in `fails`.
fn cond(body: &mut Vec<Insn>, fails: &mut Vec<usize>, c: &Cond, abi: Abi) -> Option<()> {
    let (hi, lo) = ((c.value >> 32) as u32, c.value as u32);
    let lo_off = off_arg_lo(c.arg);
    let hi_off = lo_off + 4;
    let mut j = |body: &mut Vec<Insn>, code: u16, k: u32, jt: Option<usize>, jf: Option<usize>| {
        // jt/jf: Some(n) skips n instructions; None fails
        if jt.is_none() || jf.is_none() {
            fails.push(body.len());
        }
        body.push(Insn {
            code,
            jt: jt.map_or(Some(FAIL), |n| u8::try_from(n).ok())?,
            jf: jf.map_or(Some(FAIL), |n| u8::try_from(n).ok())?,
            k,
        });
        Some(())
    };
    if abi.narrow {
        body.push(stmt(LD_W_ABS, lo_off));
        match c.op {
            Op::Eq => j(body, JMP_JEQ_K, lo, Some(0), None)?,
            Op::Ne => j(body, JMP_JEQ_K, lo, None, Some(0))?,
            Op::Gt => j(body, JMP_JGT_K, lo, Some(0), None)?,
            Op::Ge => j(body, JMP_JGE_K, lo, Some(0), None)?,
            Op::Lt => j(body, JMP_JGE_K, lo, None, Some(0))?,
            Op::Le => j(body, JMP_JGT_K, lo, None, Some(0))?,
            Op::MaskedEq(m) => {
                body.push(stmt(ALU_AND_K, m as u32));
                j(body, JMP_JEQ_K, lo & m as u32, Some(0), None)?
            }
        }
        return Some(());
    }
    match c.op {
        Op::Eq => {
            body.push(stmt(LD_W_ABS, hi_off));
            j(body, JMP_JEQ_K, hi, Some(0), None)?;
            body.push(stmt(LD_W_ABS, lo_off));
            j(body, JMP_JEQ_K, lo, Some(0), None)?;
        }
        Op::Ne => {
            // holds when the high words differ (skip the low test) or the low ones do
            body.push(stmt(LD_W_ABS, hi_off));
            j(body, JMP_JEQ_K, hi, Some(0), Some(2))?;
            body.push(stmt(LD_W_ABS, lo_off));
            j(body, JMP_JEQ_K, lo, None, Some(0))?;
        }
        Op::MaskedEq(m) => {
            body.push(stmt(LD_W_ABS, hi_off));
            body.push(stmt(ALU_AND_K, (m >> 32) as u32));
            j(body, JMP_JEQ_K, hi & (m >> 32) as u32, Some(0), None)?;
            body.push(stmt(LD_W_ABS, lo_off));
            body.push(stmt(ALU_AND_K, m as u32));
            j(body, JMP_JEQ_K, lo & m as u32, Some(0), None)?;
        }
        Op::Gt | Op::Ge => {
            // high above: holds (skip the rest); high equal: decide on the low word
            body.push(stmt(LD_W_ABS, hi_off));
            j(body, JMP_JGT_K, hi, Some(3), Some(0))?;
            j(body, JMP_JEQ_K, hi, Some(0), None)?;
            body.push(stmt(LD_W_ABS, lo_off));
            let code = if c.op == Op::Gt { JMP_JGT_K } else { JMP_JGE_K };
            j(body, code, lo, Some(0), None)?;
        }
        Op::Lt | Op::Le => {
            // high above: fails; high below: holds (skip the rest); equal: the low word
            body.push(stmt(LD_W_ABS, hi_off));
            j(body, JMP_JGT_K, hi, None, Some(0))?;
            j(body, JMP_JEQ_K, hi, Some(0), Some(2))?;
            body.push(stmt(LD_W_ABS, lo_off));
            let code = if c.op == Op::Lt { JMP_JGE_K } else { JMP_JGT_K };
            j(body, code, lo, None, Some(0))?;
        }
    }
    Some(())
}

/// The program as `seccomp(2)` takes it (native byte order, 8 bytes an instruction).
pub(super) fn to_bytes(prog: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for i in prog {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

#[cfg(test)]
#[path = "bpf_tests.rs"]
mod tests;
