//! The `bpf(2)` calls the kernel relay needs: a hash map, a classifier program, its TCX
//! attachment, and a test run of the program over a packet. Written against the system call
//! rather than with a crate: aya and libbpf-rs load programs compiled to BPF objects (which
//! would need clang or a nightly Rust toolchain on every machine that builds Switchboard),
//! while this program is a few dozen instructions assembled in `program.rs`, and these six
//! calls are all it needs. All `unsafe` of the kernel relay is here.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const MAP_CREATE: u32 = 0;
const MAP_LOOKUP_ELEM: u32 = 1;
const MAP_UPDATE_ELEM: u32 = 2;
const PROG_LOAD: u32 = 5;
#[cfg(test)]
const PROG_TEST_RUN: u32 = 10;
const MAP_LOOKUP_AND_DELETE_ELEM: u32 = 21;
const LINK_CREATE: u32 = 28;

const MAP_TYPE_HASH: u32 = 1;
const PROG_TYPE_SCHED_CLS: u32 = 3;
/// `BPF_TCX_INGRESS` (Linux 6.6): a classifier on a device's ingress, attached by a link
/// that the kernel removes when its last descriptor closes, so a process that dies (even by
/// `kill -9`) leaves nothing behind.
pub(super) const ATTACH_TCX_INGRESS: u32 = 46;

/// `union bpf_attr`, as bytes: each command reads its own fields at fixed offsets, and a
/// zeroed tail is what the kernel requires of the fields a command does not use.
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Self([0; 128])
    }
    fn u32(mut self, at: usize, v: u32) -> Self {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(mut self, at: usize, v: u64) -> Self {
        self.0[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    #[cfg(test)]
    fn read_u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.0[at..at + 4].try_into().expect("4 bytes"))
    }
    fn name(mut self, at: usize, name: &str) -> Self {
        let n = name.len().min(15);
        self.0[at..at + n].copy_from_slice(&name.as_bytes()[..n]);
        self
    }

    fn call(&mut self, cmd: u32) -> io::Result<i64> {
        // SAFETY: the attribute buffer outlives the call and is as large as the size passed;
        // every pointer written into it (keys, values, instructions, packets) points into
        // memory the caller keeps alive across this call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd as libc::c_long,
                self.0.as_mut_ptr(),
                self.0.len() as libc::c_long,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }

    fn call_fd(&mut self, cmd: u32) -> io::Result<OwnedFd> {
        let fd = self.call(cmd)? as i32;
        // SAFETY: the call succeeded and returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

fn ptr<T: ?Sized>(p: *const T) -> u64 {
    p.cast::<u8>() as usize as u64
}

/// A hash map of `key`-sized keys to `value`-sized values, its entries allocated as they
/// are added (`BPF_F_NO_PREALLOC`) rather than all at once for the largest port range.
pub(super) fn hash_map(key: usize, value: usize, entries: u32, name: &str) -> io::Result<OwnedFd> {
    Attr::new()
        .u32(0, MAP_TYPE_HASH)
        .u32(4, key as u32)
        .u32(8, value as u32)
        .u32(12, entries)
        .u32(16, 1)
        .name(28, name)
        .call_fd(MAP_CREATE)
}

fn elem(map: &OwnedFd, key: &[u8], value: u64, flags: u64) -> Attr {
    Attr::new()
        .u32(0, map.as_raw_fd() as u32)
        .u64(8, ptr(key.as_ptr()))
        .u64(16, value)
        .u64(24, flags)
}

/// Sets `key` to `value` (the sizes are the map's).
pub(super) fn update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    elem(map, key, ptr(value.as_ptr()), 0)
        .call(MAP_UPDATE_ELEM)
        .map(drop)
}

/// The value of `key` into `value`; false when there is none.
pub(super) fn lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    not_found_is_false(elem(map, key, ptr(value.as_mut_ptr()), 0).call(MAP_LOOKUP_ELEM))
}

/// Removes `key`, its last value into `value` (nothing a program does in between is lost);
/// false when there was none.
pub(super) fn take(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    not_found_is_false(elem(map, key, ptr(value.as_mut_ptr()), 0).call(MAP_LOOKUP_AND_DELETE_ELEM))
}

fn not_found_is_false(r: io::Result<i64>) -> io::Result<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Loads a traffic-control classifier for TCX ingress; the verifier's log is in the error.
pub(super) fn load_classifier(insns: &[u64], name: &str) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = Attr::new()
        .u32(0, PROG_TYPE_SCHED_CLS)
        .u32(4, insns.len() as u32)
        .u64(8, ptr(insns.as_ptr()))
        .u64(16, ptr(license.as_ptr()))
        .u32(24, 1)
        .u32(28, log.len() as u32)
        .u64(32, ptr(log.as_mut_ptr()))
        .name(48, name)
        .u32(68, ATTACH_TCX_INGRESS);
    attr.call_fd(PROG_LOAD).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[..end]);
        let tail: String = text.lines().rev().take(12).collect::<Vec<_>>().join(" | ");
        io::Error::new(e.kind(), format!("{e}; verifier: {tail}"))
    })
}

/// Attaches `prog` to the ingress of interface `ifindex`, after whatever is there (other
/// programs, another Switchboard's) so each sees what it does not claim.
pub(super) fn attach_ingress(prog: &OwnedFd, ifindex: u32) -> io::Result<OwnedFd> {
    Attr::new()
        .u32(0, prog.as_raw_fd() as u32)
        .u32(4, ifindex)
        .u32(8, ATTACH_TCX_INGRESS)
        .call_fd(LINK_CREATE)
}

#[cfg(test)]
/// Runs `prog` once over the Ethernet frame `packet`, the frame as it left into `out`:
/// its return code and the frame's length.
pub(super) fn test_run(prog: &OwnedFd, packet: &[u8], out: &mut [u8]) -> io::Result<(i32, usize)> {
    let mut attr = Attr::new()
        .u32(0, prog.as_raw_fd() as u32)
        .u32(8, packet.len() as u32)
        .u32(12, out.len() as u32)
        .u64(16, ptr(packet.as_ptr()))
        .u64(24, ptr(out.as_mut_ptr()))
        .u32(32, 1);
    attr.call(PROG_TEST_RUN)?;
    Ok((attr.read_u32(4) as i32, attr.read_u32(12) as usize))
}

/// The network interfaces of this thread's namespace, by index.
pub(super) fn interfaces() -> io::Result<Vec<(u32, String)>> {
    // SAFETY: if_nameindex returns an array ended by a zero entry, valid until freed below.
    let list = unsafe { libc::if_nameindex() };
    if list.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut at = list;
    // SAFETY: every entry up to the terminating one is valid, with a NUL-terminated name.
    unsafe {
        while (*at).if_index != 0 && !(*at).if_name.is_null() {
            let name = std::ffi::CStr::from_ptr((*at).if_name);
            out.push(((*at).if_index, name.to_string_lossy().into_owned()));
            at = at.add(1);
        }
        libc::if_freenameindex(list);
    }
    Ok(out)
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns` and of `Instant`.
pub(super) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
