//! Model saves that fail or are killed keep the previous file and leave no
//! temporary file for good. The cases that need a file size limit run in a
//! child process (this test binary again, asked for one test) under
//! `setrlimit(RLIMIT_FSIZE)`, so that the signal only takes the child down.
#![cfg(unix)]

use nnkern::nn::{Layer, Mlp, Task};
use nnkern::{Activation, Error};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CHILD: &str = "NNK_SAVE_CHILD";
const DIR: &str = "NNK_SAVE_DIR";
/// The file size limit of the children: a quarter of what the big model needs.
const LIMIT: u64 = 1 << 20;

/// In the child: whether this process is the child for `case`.
fn is_child(case: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|v| v == case)
}

/// Runs test `case` of this binary in a child process working in `dir`;
/// returns its pid, exit status and output.
fn run_child(case: &str, dir: &Path) -> (u32, std::process::ExitStatus, String) {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([case, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .env(DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    (pid, o.status, format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// A fresh empty directory for one test.
fn fresh_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnkern-save-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn small_model(seed: u64) -> Mlp {
    Mlp::new(4, &[Layer { units: 8, activation: Activation::Relu }], 3, Task::MultiClass, seed).unwrap()
}

/// About 1.05 M parameters: a file of 4.2 MB, four times [`LIMIT`].
fn big_model() -> Mlp {
    Mlp::new(1024, &[Layer { units: 1024, activation: Activation::Relu }], 2, Task::MultiClass, 7).unwrap()
}

/// Limits the size of the files this process writes to [`LIMIT`] bytes.
fn limit_file_size() {
    let r = libc::rlimit { rlim_cur: LIMIT as libc::rlim_t, rlim_max: LIMIT as libc::rlim_t };
    // SAFETY: setrlimit reads the struct we pass; it changes only this process.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &r) };
    assert_eq!(rc, 0, "setrlimit(RLIMIT_FSIZE)");
}

/// The names in `dir` that start with `prefix`, sorted.
fn names_with_prefix(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Whether `dir`'s file system makes unnamed files (Linux `O_TMPFILE`).
fn unnamed_files_work(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().write(true).mode(0o600).custom_flags(libc::O_TMPFILE).open(dir).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        false
    }
}

/// Whether no process has id `pid` (`kill(pid, 0)` fails with `ESRCH`).
fn is_dead(pid: u32) -> bool {
    // SAFETY: signal 0 sends nothing; pid is a positive process id.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// The id of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut c = Command::new(std::env::current_exe().unwrap())
        .arg("--list")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = c.id();
    c.wait().unwrap();
    assert!(is_dead(pid), "process {pid} still exists after wait");
    pid
}

/// A save killed while writing (SIGXFSZ past the file size limit: the process
/// dies without unwinding, as under SIGKILL) keeps the old model bit for bit;
/// its temporary file never had a name (O_TMPFILE), or the next save removes
/// it. Without the fix the dead child's `.m.nnk.tmpPID` stays for good.
#[test]
fn killed_save_keeps_the_old_model_and_leaves_no_temp_file() {
    let case = "killed_save_keeps_the_old_model_and_leaves_no_temp_file";
    if is_child(case) {
        let path = PathBuf::from(std::env::var_os(DIR).unwrap()).join("m.nnk");
        let big = big_model();
        limit_file_size();
        let r = big.save(&path);
        // Not reached: SIGXFSZ kills the process at the write past the limit.
        println!("CHILD SURVIVED: {r:?}");
        std::process::exit(3);
    }
    let dir = fresh_dir("killed");
    let path = dir.join("m.nnk");
    small_model(1).save(&path).unwrap();
    let old = std::fs::read(&path).unwrap();
    let (pid, status, out) = run_child(case, &dir);
    assert_eq!(status.signal(), Some(libc::SIGXFSZ), "the child was not killed by SIGXFSZ ({status:?}):\n{out}");
    assert_eq!(std::fs::read(&path).unwrap(), old, "the killed save changed the old model");
    let temps = names_with_prefix(&dir, ".m.nnk.tmp");
    if unnamed_files_work(&dir) {
        assert!(temps.is_empty(), "the killed save left {temps:?} although the file system has O_TMPFILE");
    } else {
        println!("no O_TMPFILE in {}: the killed save left {temps:?}", dir.display());
        assert_eq!(temps, [format!(".m.nnk.tmp{pid}")]);
    }
    // The next save to the same path removes any leftover and leaves none.
    let new = small_model(2);
    new.save(&path).unwrap();
    assert_eq!(names_with_prefix(&dir, ".m.nnk.tmp"), Vec::<String>::new(), "a temporary file survived the next save");
    assert_eq!(std::fs::read(&path).unwrap(), new.to_bytes());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A save removes exactly the `.NAME.tmpPID` files of processes that no
/// longer exist: not those of live processes, of other targets, of names
/// that only look alike, nor directories. A leftover with this process's
/// own id does not stop the save.
#[test]
fn stale_temp_files_of_dead_processes_are_removed_and_nothing_else() {
    let dir = fresh_dir("stale");
    let path = dir.join("m.nnk");
    small_model(1).save(&path).unwrap();
    let (dead, dead2) = (dead_pid(), dead_pid());
    let parent = std::os::unix::process::parent_id();
    let me = std::process::id();
    let removed = [format!(".m.nnk.tmp{dead}")];
    let kept = [
        format!(".m.nnk.tmp{parent}"),
        ".m.nnk.tmp1".to_string(),
        ".m.nnk.tmp0".to_string(),
        ".m.nnk.tmp".to_string(),
        ".m.nnk.tmpabc".to_string(),
        format!(".m.nnk.tmp0{dead}"),
        format!(".m.nnk.tmp+{dead}"),
        format!(".m.nnk.tmp{dead}x"),
        format!(".m.nnk.tmp{dead}.bak"),
        format!(".m.nnk.tmp{}", u64::from(u32::MAX) + 1),
        format!(".other.nnk.tmp{dead}"),
        format!(".m.nnk.tm{dead}"),
        format!("m.nnk.tmp{dead}"),
        format!(".m.nnk.tmp{dead}.tmp{dead}"),
    ];
    for n in removed.iter().chain(&kept) {
        std::fs::write(dir.join(n), b"partial model").unwrap();
    }
    std::fs::create_dir(dir.join(format!(".m.nnk.tmp{dead2}"))).unwrap();
    std::fs::write(dir.join(format!(".m.nnk.tmp{me}")), b"leftover with this process's id").unwrap();

    let new = small_model(2);
    new.save(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), new.to_bytes());
    for n in &removed {
        assert!(!dir.join(n).exists(), "{n} (a dead process's) was not removed");
    }
    for n in &kept {
        assert_eq!(std::fs::read(dir.join(n)).unwrap(), b"partial model", "{n} was removed or changed");
    }
    assert!(dir.join(format!(".m.nnk.tmp{dead2}")).is_dir(), "a directory was removed");
    assert!(!dir.join(format!(".m.nnk.tmp{me}")).exists(), "the save left its own temporary file");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A write that fails (EFBIG here: the file size limit with SIGXFSZ ignored,
/// as ENOSPC on a full disk) is an I/O error that names the path and the
/// reason, keeps the old model and leaves no temporary file; the same
/// process then saves a model that fits.
#[test]
fn failed_write_is_a_clear_error_and_keeps_the_old_model() {
    let case = "failed_write_is_a_clear_error_and_keeps_the_old_model";
    if is_child(case) {
        let dir = PathBuf::from(std::env::var_os(DIR).unwrap());
        let path = dir.join("m.nnk");
        let old = std::fs::read(&path).unwrap();
        let big = big_model();
        // SAFETY: ignoring a signal installs no handler code; this child runs
        // one test on one thread.
        assert_ne!(unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) }, libc::SIG_ERR);
        limit_file_size();
        match big.save(&path) {
            Err(e @ Error::Io { .. }) => {
                let msg = e.to_string();
                println!("{msg}");
                let Error::Io { kind, path: p, message, .. } = e else { unreachable!() };
                assert_eq!(kind, std::io::ErrorKind::FileTooLarge, "{msg}");
                assert_eq!(p.as_deref(), Some(path.as_path()));
                let want = format!("cannot save the model to '{}': File too large", path.display());
                assert!(message.starts_with(&want), "{message}");
            }
            other => panic!("expected an I/O error, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), old, "the failed save changed the old model");
        assert_eq!(names_with_prefix(&dir, ".m.nnk.tmp"), Vec::<String>::new(), "the failed save left a file");
        let fits = small_model(3);
        fits.save(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), fits.to_bytes());
        println!("CASE OK");
        return;
    }
    let dir = fresh_dir("efbig");
    small_model(1).save(dir.join("m.nnk")).unwrap();
    let (_, status, out) = run_child(case, &dir);
    assert!(status.success() && out.contains("CASE OK"), "child for {case} failed ({status:?}):\n{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}
