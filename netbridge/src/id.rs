//! Random identifiers: network ids (64 hex digits, like Docker's) and veth names.

use std::io::Read;

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !filled {
        // No /dev/urandom: mix the clock, the pid and a per-process random hasher key.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.write_u32(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            h.write_usize(i);
            *b = h.finish() as u8;
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A host-side veth name: `veth` and 7 random hex digits (Docker's shape).
pub fn veth_name() -> String {
    let mut s = random_hex(4);
    s.truncate(7);
    format!("veth{s}")
}
