//! Device rules on cgroup v2: there is no `devices.allow` file, the kernel asks an eBPF
//! program of type `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the cgroup instead. This
//! module turns the spec's `linux.resources.devices` (plus the default nodes) into that
//! program, the way runc and crun do: the rules are checked last to first (a later rule
//! overrides an earlier one, as writes to v1's `devices.allow`/`devices.deny` do), the first
//! match returns its verdict, nothing matching denies.
//!
//! The program reads `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`,
//! where `access_type` is the device type (1 block, 2 char) in the low 16 bits and the
//! access (1 mknod, 2 read, 4 write) in the high 16.

/// One rule, as in `devices.allow`: `c 1:3 rwm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `Some(BLOCK | CHAR)`, `None` for all (`a`).
    pub kind: Option<u32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// MKNOD | READ | WRITE bits.
    pub access: u32,
    pub allow: bool,
}

pub const BLOCK: u32 = 1;
pub const CHAR: u32 = 2;
pub const MKNOD: u32 = 1;
pub const READ: u32 = 2;
pub const WRITE: u32 = 4;

fn access_bits(s: &str) -> Option<u32> {
    let mut bits = 0;
    for c in s.chars() {
        bits |= match c {
            'm' => MKNOD,
            'r' => READ,
            'w' => WRITE,
            _ => return None,
        };
    }
    Some(if s.is_empty() {
        MKNOD | READ | WRITE
    } else {
        bits
    })
}

fn number(s: &str) -> Option<Option<u32>> {
    match s {
        "*" => Some(None),
        n => n.parse().ok().map(Some),
    }
}

impl Rule {
    /// From the `devices.allow` syntax (`c 136:* rwm`, `a`).
    pub fn parse(s: &str, allow: bool) -> Option<Rule> {
        let mut it = s.split_whitespace();
        let kind = match it.next()? {
            "a" => None,
            "c" => Some(CHAR),
            "b" => Some(BLOCK),
            _ => return None,
        };
        let (major, minor) = match it.next() {
            None => (None, None),
            Some(mm) => {
                let (a, b) = mm.split_once(':')?;
                (number(a)?, number(b)?)
            }
        };
        let access = access_bits(it.next().unwrap_or(""))?;
        Some(Rule {
            kind,
            major,
            minor,
            access,
            allow,
        })
    }

    /// From the spec's `linux.resources.devices` entry.
    pub fn from_spec(d: &oci_spec::runtime::LinuxDeviceCgroup) -> Option<Rule> {
        use oci_spec::runtime::LinuxDeviceType as T;
        let kind = match d.typ() {
            None | Some(T::A) => None,
            Some(T::C) | Some(T::U) => Some(CHAR),
            Some(T::B) => Some(BLOCK),
            // fifos are not subject to the device cgroup
            Some(T::P) => return None,
        };
        let num = |n: Option<i64>| n.filter(|n| *n >= 0).and_then(|n| u32::try_from(n).ok());
        Some(Rule {
            kind,
            major: num(d.major()),
            minor: num(d.minor()),
            access: access_bits(d.access().as_deref().unwrap_or(""))?,
            allow: d.allow(),
        })
    }
}

// eBPF opcodes used here
const LDXW: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
const AND32_IMM: u8 = 0x54;
const RSH32_IMM: u8 = 0x74;
const MOV32_REG: u8 = 0xbc;
const MOV64_IMM: u8 = 0xb7;
const JNE_IMM: u8 = 0x55; // if r_dst != imm goto +off
const EXIT: u8 = 0x95;

/// One instruction: `code`, `dst`, `src`, `off`, `imm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The kernel's 8-byte encoding (little-endian host).
    pub fn bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

/// The program for `rules` (in spec order).
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    // r2 = type, r3 = access, r4 = major, r5 = minor
    let mut p = vec![
        Insn::new(LDXW, 2, 1, 0, 0),
        Insn::new(AND32_IMM, 2, 0, 0, 0xffff),
        Insn::new(LDXW, 3, 1, 0, 0),
        Insn::new(RSH32_IMM, 3, 0, 0, 16),
        Insn::new(LDXW, 4, 1, 4, 0),
        Insn::new(LDXW, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let mut block = Vec::new();
        // each check jumps past the rest of the block when it fails: offsets filled below
        let mut jumps = Vec::new();
        if let Some(k) = r.kind {
            jumps.push(block.len());
            block.push(Insn::new(JNE_IMM, 2, 0, 0, k as i32));
        }
        if r.access != MKNOD | READ | WRITE {
            // what is asked must lie within what the rule names
            block.push(Insn::new(MOV32_REG, 1, 3, 0, 0));
            block.push(Insn::new(AND32_IMM, 1, 0, 0, !(r.access as i32) & 7));
            jumps.push(block.len());
            block.push(Insn::new(JNE_IMM, 1, 0, 0, 0));
        }
        if let Some(m) = r.major {
            jumps.push(block.len());
            block.push(Insn::new(JNE_IMM, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            jumps.push(block.len());
            block.push(Insn::new(JNE_IMM, 5, 0, 0, m as i32));
        }
        block.push(Insn::new(MOV64_IMM, 0, 0, 0, i32::from(r.allow)));
        block.push(Insn::new(EXIT, 0, 0, 0, 0));
        let len = block.len();
        let matches_all = jumps.is_empty();
        for j in jumps {
            block[j].off = (len - j - 1) as i16;
        }
        p.extend(block);
        if matches_all {
            // earlier rules can never be reached (the verifier refuses dead code)
            return p;
        }
    }
    p.push(Insn::new(MOV64_IMM, 0, 0, 0, 0));
    p.push(Insn::new(EXIT, 0, 0, 0, 0));
    p
}

/// The program's bytes, for `bpf(BPF_PROG_LOAD)`.
pub fn encode(p: &[Insn]) -> Vec<u8> {
    p.iter().flat_map(|i| i.bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `p` on a request, as the kernel would (the subset of eBPF used here).
    fn eval(p: &[Insn], kind: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [kind | (access << 16), major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            pc += 1;
            let (d, s) = (i.dst as usize, i.src as usize);
            match i.code {
                LDXW => {
                    assert_eq!(s, 1, "loads only from the context");
                    r[d] = u64::from(ctx[(i.off / 4) as usize]);
                }
                AND32_IMM => r[d] = u64::from(r[d] as u32 & i.imm as u32),
                RSH32_IMM => r[d] = u64::from((r[d] as u32) >> i.imm),
                MOV32_REG => r[d] = u64::from(r[s] as u32),
                MOV64_IMM => r[d] = i.imm as i64 as u64,
                JNE_IMM => {
                    if r[d] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0],
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    fn docker_like() -> Vec<Rule> {
        let mut rules = vec![Rule::parse("a", false).unwrap()];
        for s in [
            "c 1:3 rwm",
            "c 1:5 rwm",
            "c 136:* rwm",
            "c 5:2 rwm",
            "c 10:200 rw",
        ] {
            rules.push(Rule::parse(s, true).unwrap());
        }
        rules
    }

    #[test]
    fn docker_defaults_allow_the_usual_nodes_only() {
        let p = program(&docker_like());
        // one block a rule, the catch-all last: no dead default after it (the verifier
        // refuses unreachable instructions)
        assert_eq!(p.iter().filter(|i| i.code == EXIT).count(), 6);
        let rw = READ | WRITE;
        assert_eq!(eval(&p, CHAR, rw, 1, 3), 1, "/dev/null");
        assert_eq!(eval(&p, CHAR, MKNOD, 1, 3), 1, "mknod /dev/null");
        assert_eq!(eval(&p, CHAR, rw, 136, 7), 1, "a pty");
        assert_eq!(eval(&p, CHAR, rw, 10, 200), 1, "/dev/net/tun rw");
        assert_eq!(eval(&p, CHAR, MKNOD, 10, 200), 0, "but not its mknod");
        assert_eq!(eval(&p, BLOCK, READ, 8, 0), 0, "a disk");
        assert_eq!(eval(&p, CHAR, READ, 1, 1), 0, "/dev/mem");
        assert_eq!(eval(&p, BLOCK, READ, 1, 3), 0, "type matters");
    }

    #[test]
    fn later_rules_win_and_empty_denies() {
        let mut rules = docker_like();
        rules.push(Rule::parse("c 1:3 w", false).unwrap());
        let p = program(&rules);
        assert_eq!(eval(&p, CHAR, READ, 1, 3), 1);
        assert_eq!(eval(&p, CHAR, WRITE, 1, 3), 0, "the later deny of w wins");
        assert_eq!(eval(&program(&[]), CHAR, READ, 1, 3), 0);
        let all = program(&[Rule::parse("a *:* rwm", true).unwrap()]);
        assert_eq!(
            eval(&all, BLOCK, MKNOD | READ | WRITE, 8, 1),
            1,
            "privileged"
        );
    }

    #[test]
    fn parsing_and_encoding() {
        assert_eq!(
            Rule::parse("b 8:* r", false).unwrap(),
            Rule {
                kind: Some(BLOCK),
                major: Some(8),
                minor: None,
                access: READ,
                allow: false
            }
        );
        assert!(Rule::parse("x 1:1 r", true).is_none());
        assert!(Rule::parse("c 1:1 q", true).is_none());
        assert!(Rule::parse("c 1 r", true).is_none());
        let b = Insn::new(LDXW, 4, 1, 4, 0).bytes();
        assert_eq!(b, [0x61, 0x14, 4, 0, 0, 0, 0, 0]);
        let b = Insn::new(JNE_IMM, 2, 0, 3, 2).bytes();
        assert_eq!(b, [0x55, 0x02, 3, 0, 2, 0, 0, 0]);
        assert_eq!(encode(&program(&[])).len(), 8 * 8);
    }
}
