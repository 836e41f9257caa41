//! The ranges compiler against libseccomp: both programs run in a classic BPF interpreter
//! over every syscall number of every ABI (and numbers no ABI has), with argument values
//! around each one a rule names, and must return the same everywhere.

use super::*;
use crate::seccomp::moby;

/// `struct seccomp_data`: nr, arch, instruction pointer, six arguments.
#[derive(Debug, Clone, Copy)]
struct Data {
    nr: u32,
    arch: u32,
    args: [u64; 6],
}

impl Data {
    fn word(&self, off: u32) -> u32 {
        match off {
            0 => self.nr,
            4 => self.arch,
            8 | 12 => 0,
            16..=63 if off.is_multiple_of(4) => {
                let a = self.args[((off - 16) / 8) as usize];
                if off.is_multiple_of(8) {
                    a as u32
                } else {
                    (a >> 32) as u32
                }
            }
            _ => panic!("load at {off}"),
        }
    }
}

/// Run a classic BPF program (the instructions seccomp filters use).
fn run(prog: &[Insn], d: &Data) -> u32 {
    let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        pc += 1;
        let class = i.code & 0x07;
        match class {
            0x00 => match i.code {
                0x20 => a = d.word(i.k),
                0x00 => a = i.k,
                0x60 => a = mem[i.k as usize],
                c => panic!("ld {c:#x}"),
            },
            0x01 => match i.code {
                0x01 => x = i.k,
                0x61 => x = mem[i.k as usize],
                c => panic!("ldx {c:#x}"),
            },
            0x02 => mem[i.k as usize] = a,
            0x03 => mem[i.k as usize] = x,
            0x04 => {
                let v = if i.code & 0x08 != 0 { x } else { i.k };
                a = match i.code & 0xf0 {
                    0x00 => a.wrapping_add(v),
                    0x10 => a.wrapping_sub(v),
                    0x40 => a | v,
                    0x50 => a & v,
                    0x60 => a << v,
                    0x70 => a >> v,
                    0xa0 => a ^ v,
                    0x80 => a.wrapping_neg(),
                    op => panic!("alu {op:#x}"),
                }
            }
            0x05 => {
                if i.code == 0x05 {
                    pc += i.k as usize;
                    continue;
                }
                let v = if i.code & 0x08 != 0 { x } else { i.k };
                let taken = match i.code & 0xf0 {
                    0x10 => a == v,
                    0x20 => a > v,
                    0x30 => a >= v,
                    0x40 => a & v != 0,
                    op => panic!("jmp {op:#x}"),
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            0x06 => return if i.code & 0x18 == 0x10 { a } else { i.k },
            0x07 => {
                if i.code == 0x07 {
                    x = a
                } else {
                    a = x
                }
            }
            _ => unreachable!(),
        }
    }
}

fn parse(bytes: &[u8]) -> Vec<Insn> {
    bytes
        .chunks_exact(8)
        .map(|c| Insn {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;

/// Both compilers agree on `s` everywhere; returns the sizes (ours, libseccomp's).
fn agree(s: &LinuxSeccomp) -> (usize, usize) {
    let ours = compile(s).expect("the ranges compiler covers this profile");
    let theirs = parse(&crate::seccomp::compile_libseccomp(s).unwrap().bpf);
    // the values the rules name, and their neighbours
    let mut values = vec![0u64, 1, u64::MAX, 0xffff_ffff, 0x1_0000_0000];
    for sc in s.syscalls().iter().flatten() {
        for a in sc.args().iter().flatten() {
            for v in [a.value(), a.value_two().unwrap_or(0)] {
                values.extend([
                    v,
                    v.wrapping_add(1),
                    v.wrapping_sub(1),
                    v | 1 << 40,
                    v & 0xffff_ffff,
                    !v,
                    v ^ 0x8000_0000,
                ]);
            }
        }
    }
    values.sort_unstable();
    values.dedup();
    let mut nrs: Vec<u32> = (0..1100).collect();
    nrs.extend((0..1100).map(|n| X32_BIT + n));
    nrs.extend([
        0x3fff_ffff,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        0x4000_ffff,
    ]);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut n = 0u64;
    for arch in [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64] {
        for &nr in &nrs {
            let mut cases = vec![[0u64; 6], [u64::MAX; 6]];
            cases.push(std::array::from_fn(|_| random()));
            for &v in &values {
                for i in 0..6 {
                    let mut args = [0u64; 6];
                    args[i] = v;
                    cases.push(args);
                    let mut args = [v; 6];
                    args[i] = random();
                    cases.push(args);
                }
            }
            for args in cases {
                let d = Data { nr, arch, args };
                let (a, b) = (run(&ours, &d), run(&theirs, &d));
                assert_eq!(
                    a, b,
                    "arch {arch:#x} nr {nr:#x} args {args:x?}: ours {a:#x}, libseccomp {b:#x}"
                );
                n += 1;
            }
        }
    }
    assert!(n > 100_000);
    (ours.len(), theirs.len())
}

fn profile(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).unwrap()
}

fn amd64() -> moby::Target {
    moby::Target {
        arch: "amd64".into(),
        kernel: (6, 1),
    }
}

#[test]
fn docker_default_profile_as_libseccomp_does_in_a_third_of_the_instructions() {
    let caps: Vec<String> = moby::DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
    let s = moby::profile().resolve(&caps, &amd64());
    let (ours, theirs) = agree(&s);
    assert!(
        ours * 3 < theirs,
        "{ours} instructions, libseccomp {theirs}"
    );
    // with CAP_SYS_ADMIN (namespaces, mount, clone without its flag check) and on an old
    // kernel (fewer syscalls)
    let mut admin = caps.clone();
    admin.push("CAP_SYS_ADMIN".into());
    agree(&moby::profile().resolve(&admin, &amd64()));
    agree(&moby::profile().resolve(
        &caps,
        &moby::Target {
            arch: "amd64".into(),
            kernel: (4, 14),
        },
    ));
}

#[test]
fn every_operator_and_action_as_libseccomp() {
    agree(&profile(
        r#"{
      "defaultAction": "SCMP_ACT_ALLOW",
      "architectures": ["SCMP_ARCH_X86_64"],
      "syscalls": [
        {"names": ["mkdir", "no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["read"], "action": "SCMP_ACT_TRAP",
         "args": [{"index": 2, "value": 81604378624, "op": "SCMP_CMP_GT"}]},
        {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
         "args": [{"index": 1, "value": 4294967296, "op": "SCMP_CMP_GE"}]},
        {"names": ["openat"], "action": "SCMP_ACT_KILL_PROCESS",
         "args": [{"index": 3, "value": 4294967297, "op": "SCMP_CMP_LT"}]},
        {"names": ["close"], "action": "SCMP_ACT_LOG",
         "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_LE"}]},
        {"names": ["dup"], "action": "SCMP_ACT_KILL",
         "args": [{"index": 0, "value": 18446744073709551615, "op": "SCMP_CMP_NE"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 2048, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["mmap"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                  {"index": 3, "value": 81604378624, "op": "SCMP_CMP_NE"}]},
        {"names": ["kill"], "action": "SCMP_ACT_TRACE", "errnoRet": 7,
         "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
                  {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]}
      ]
    }"#,
    ));
}

#[test]
fn the_three_x86_abis_and_none_named_as_libseccomp() {
    agree(&profile(
        r#"{
      "defaultAction": "SCMP_ACT_ERRNO",
      "defaultErrnoRet": 1,
      "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
      "syscalls": [
        {"names": ["read", "write", "exit_group", "socketcall", "socket", "ipc", "msgget",
                   "sendto", "recv"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]},
        {"names": ["prctl"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 22, "op": "SCMP_CMP_GE"},
                  {"index": 1, "value": 65535, "op": "SCMP_CMP_LE"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]}
      ]
    }"#,
    ));
    agree(&profile(
        r#"{
      "defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [
        {"names": ["chmod", "fchmod", "fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
      ]
    }"#,
    ));
    // naming i386 alone still filters the host's own ABI (libseccomp always has it)
    agree(&profile(
        r#"{
      "defaultAction": "SCMP_ACT_ALLOW",
      "architectures": ["SCMP_ARCH_X86"],
      "syscalls": [
        {"names": ["chmod", "fchmod", "fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
      ]
    }"#,
    ));
    agree(&profile(
        r#"{
      "defaultAction": "SCMP_ACT_ERRNO",
      "architectures": ["SCMP_ARCH_X32"],
      "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]
    }"#,
    ));
}

#[test]
fn what_it_does_not_cover_goes_to_libseccomp() {
    for json in [
        // another architecture
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#,
        // two actions for one syscall
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["mkdir"], "action": "SCMP_ACT_TRAP",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
        // i386's socket calls when socketcall is not allowed as they are
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ALLOW"}]}"#,
        // a 64-bit value on a 32-bit ABI
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 4294967296, "op": "SCMP_CMP_EQ"}]}]}"#,
    ] {
        let s = profile(json);
        assert!(compile(&s).is_none(), "{json}");
        // and libseccomp still compiles it
        crate::seccomp::compile(&s).unwrap();
    }
}
