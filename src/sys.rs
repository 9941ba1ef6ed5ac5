//! Safe wrappers over the few system calls the crate needs beyond `std`: the
//! ones model files use to write atomically without leaving temporary files
//! behind (unnamed files, linking one into a directory, asking whether a
//! process is alive), the size of the CPU's L2 cache, which chooses
//! between loops that give the same bits, and asking for huge pages.
//!
//! This module is a leaf: it uses no other module of the crate. Its `unsafe`
//! blocks are the only ones outside the kernels and the C API, so that `nn`
//! stays safe Rust; each says why it holds.

use std::fs::File;
use std::io;
use std::path::Path;

/// Whether process `pid` is known not to exist: `kill(pid, 0)` fails with
/// `ESRCH`. A live process (also one this process may not signal, `EPERM`),
/// an id that names no single process (0, or above `i32::MAX`) and any other
/// answer are "not known dead". Always false where there is no `kill`.
pub(crate) fn process_is_dead(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        if pid <= 0 {
            return false;
        }
        // SAFETY: signal 0 sends nothing (kill only checks that the process
        // exists and may be signalled), `pid` is positive so it names one
        // process, never a group, and the call reads no memory of ours.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// The size in bytes of the L2 cache of the first CPU (Linux's
/// `/sys/devices/system/cpu/cpu0/cache/index*/`: the entry of `level` 2,
/// `Data` or `Unified`), or `None` where it cannot be read (other systems,
/// no sysfs, Miri's isolation).
pub(crate) fn l2_cache_bytes() -> Option<usize> {
    cache_bytes("2")
}

/// [`l2_cache_bytes`] for the last level, L3 (shared by the first CPU's
/// cores: its whole size), read once per process.
pub(crate) fn l3_cache_bytes() -> Option<usize> {
    static BYTES: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| cache_bytes("3"))
}

/// The size of the first CPU's data or unified cache of `level`.
fn cache_bytes(level: &str) -> Option<usize> {
    if cfg!(miri) || !cfg!(target_os = "linux") {
        return None;
    }
    let dir = Path::new("/sys/devices/system/cpu/cpu0/cache");
    (0..8).find_map(|i| {
        let d = dir.join(format!("index{i}"));
        let read = |f: &str| std::fs::read_to_string(d.join(f)).ok().map(|s| s.trim().to_owned());
        if read("level")? != level || !matches!(read("type")?.as_str(), "Data" | "Unified") {
            return None;
        }
        parse_cache_size(&read("size")?)
    })
}

/// Asks the kernel to back the whole 2 MiB pages inside `[ptr, ptr + len)`
/// with transparent huge pages (Linux `madvise(MADV_HUGEPAGE)`, as numpy
/// does for its arrays of 4 MiB and more): a buffer of tens of MB written
/// once then faults 2 MiB at a time instead of 4 KiB (72 MB of MNIST's
/// nonzeros: about 10 ms of page faults instead of 45 on a Zen 4 VM). A
/// hint: the contents and the validity of the memory do not change, and a
/// refusal (THP disabled, the range not mapped) is ignored. Does nothing
/// below 4 MiB, on other systems and under Miri.
pub(crate) fn advise_huge_pages(ptr: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    if cfg!(miri) || len < 4 << 20 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize).saturating_add(len) / HUGE * HUGE;
        if end > start {
            // SAFETY: MADV_HUGEPAGE only sets how the kernel backs the
            // range's pages; it never changes their contents or frees them,
            // and on addresses that are not mapped the call just fails
            // (ENOMEM), which is ignored.
            let _ = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = ptr;
}

/// A sysfs cache size (`"1024K"`, `"2M"`, `"512"`) in bytes.
fn parse_cache_size(s: &str) -> Option<usize> {
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return None,
    };
    num.parse::<usize>().ok()?.checked_mul(1 << shift).filter(|&b| b > 0)
}

/// A new regular file in directory `dir`, open for writing, that has no name:
/// it disappears when closed (or when the process dies) unless
/// [`link_unnamed`] names it first (Linux `O_TMPFILE`). Its mode is
/// `0o666` less the umask, as [`File::create`] gives.
///
/// `Ok(None)` where there are no unnamed files: other systems, file systems
/// that refuse `O_TMPFILE` (`EOPNOTSUPP`; kernels before 3.11 answer `EISDIR`
/// or `EINVAL`), or no `/proc/self/fd` to link one through.
pub(crate) fn create_unnamed(dir: &Path) -> io::Result<Option<File>> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        if !Path::new("/proc/self/fd").is_dir() {
            return Ok(None);
        }
        match std::fs::OpenOptions::new().write(true).mode(0o666).custom_flags(libc::O_TMPFILE).open(dir) {
            Ok(f) => Ok(Some(f)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)) => Ok(None),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        Ok(None)
    }
}

/// Gives `file`, made by [`create_unnamed`], the name `to`:
/// `linkat(AT_FDCWD, "/proc/self/fd/N", AT_FDCWD, to, AT_SYMLINK_FOLLOW)`.
/// Fails with [`io::ErrorKind::AlreadyExists`] if `to` exists (it is never
/// replaced).
pub(crate) fn link_unnamed(file: &File, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::io::AsRawFd;
        let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).expect("no NUL in a number");
        let to = CString::new(to.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file name contains a NUL byte"))?;
        // SAFETY: both pointers are to NUL-terminated strings that outlive the
        // call, which only reads them; AT_FDCWD needs no open descriptor.
        let rc = unsafe {
            libc::linkat(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::AT_SYMLINK_FOLLOW)
        };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, to);
        Err(io::Error::new(io::ErrorKind::Unsupported, "unnamed files are Linux only"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_sizes_parse() {
        assert_eq!(parse_cache_size("1024K"), Some(1 << 20));
        assert_eq!(parse_cache_size("2M"), Some(2 << 20));
        assert_eq!(parse_cache_size("512"), Some(512));
        for bad in ["", "K", "0K", "12Q", "1.5M", "-1K", "99999999999999999999G"] {
            assert_eq!(parse_cache_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn huge_page_advice_keeps_contents() {
        // Written before and after the advice, over unaligned ends, and on
        // an empty range.
        let mut v: Vec<u32> = (0..3 << 20).map(|i: u32| i.wrapping_mul(2654435761)).collect();
        advise_huge_pages(v.as_ptr().wrapping_add(3) as *const u8, v.len() * 4 - 12);
        v.extend((0..1000u32).map(|i| !i));
        advise_huge_pages(v.as_ptr() as *const u8, v.capacity() * 4);
        advise_huge_pages(v.as_ptr() as *const u8, 0);
        for (i, &x) in v.iter().enumerate() {
            let want = if i < 3 << 20 { (i as u32).wrapping_mul(2654435761) } else { !(i as u32 - (3 << 20)) };
            assert_eq!(x, want, "{i}");
        }
    }

    #[test]
    fn l2_size_is_plausible_where_known() {
        // Every L2 of the machines in use is between 64 KiB and 64 MiB.
        if let Some(b) = l2_cache_bytes() {
            assert!((64 << 10..=64 << 20).contains(&b), "L2 of {b} bytes");
        }
    }
}
