//! Model files: a documented, versioned little-endian binary format.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "NNKMLP\0\x01"
//! 8       4     format version (u32, currently 2; version 1 files still load)
//! 12      4     task (u32: 0 multi-class, 1 multi-label/binary, 2 regression)
//! 16      8     n_inputs (u64)
//! 24      4     n_layers (u32)
//! 28      16·L  per layer: units (u64), activation code (u32, NNK_ACT_*), parameter (f32)
//! …       8     n_params (u64), must equal what the layers imply
//! …       4     version 2 only: metadata flags (u32; bit 0 data set, bit 1 split,
//!               bit 2 scaler; other bits must be 0)
//! …       4·P   parameters (f32), W₀ b₀ W₁ b₁ … with W row-major n_in × n_out
//! …       24    flag bit 0: the training data set: rows (u64), features (u64,
//!               = n_inputs), fingerprint (u64, Dataset::fingerprint)
//! …       16    flag bit 1: the train/test split drawn from it: seed (u64),
//!               test fraction (f64, in (0, 1))
//! …       8·I   flag bit 2: the input scaler fitted on the training rows:
//!               I = n_inputs shifts (f32), then I scales (f32), all finite
//! …       8     FNV-1a 64 checksum of every byte before it
//! ```
//!
//! The metadata ([`ModelMeta`]) is what evaluating the model on held-out data
//! needs besides its weights: how to scale the inputs, and which rows it was
//! trained on, so that an evaluation can refuse a test set that overlaps
//! them. [`Mlp::save`] writes version 2 without metadata,
//! [`Mlp::save_with_meta`] with it. Version 1 files (no flags, no metadata)
//! load with an empty [`ModelMeta`].
//!
//! Files are written atomically: the bytes go to a temporary file in the
//! target's directory, which is synced and then renamed over the target, so
//! that a failed or killed save leaves the previous file intact. On Linux the
//! temporary file is unnamed (`O_TMPFILE`) until it is complete, so a save
//! killed while writing leaves nothing behind; elsewhere (and on file systems
//! without `O_TMPFILE`) it is `.NAME.tmpPID`, and every save removes such files
//! of processes that no longer exist (see [`Mlp::save_with_meta`]). Loading checks the size the header implies
//! against the file size *before* allocating, so a corrupt header cannot cause a
//! huge allocation; a truncated, corrupt, foreign or future-version file is an
//! [`Error::Format`]. Save → load → predict is bit-identical.

use super::data::Scaler;
use super::model::{Layer, MAX_PARAMS, MAX_WIDTH, Mlp};
use super::task::Task;
use crate::error::{Error, Result};
use crate::ops::act::Activation;
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// File magic.
pub const MAGIC: [u8; 8] = *b"NNKMLP\0\x01";
/// Current format version.
pub const FORMAT_VERSION: u32 = 2;
/// Largest number of layers a file may declare.
pub const MAX_LAYERS: usize = 1024;

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The data set a model was trained on, as [`Dataset::fingerprint`](super::data::Dataset::fingerprint) describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRecord {
    /// Rows of the whole data set (before any split).
    pub rows: u64,
    /// Features per row (the model's inputs).
    pub features: u64,
    /// Fingerprint of its values and targets.
    pub fingerprint: u64,
}

/// A seeded train/test split ([`Dataset::split`](super::data::Dataset::split)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitRecord {
    /// The split's seed.
    pub seed: u64,
    /// Fraction of the rows held out for testing, in (0, 1).
    pub test_fraction: f64,
}

/// What evaluating a saved model needs besides its weights (see the module
/// docs). Every field is optional; [`Mlp::load`] ignores them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelMeta {
    /// The data set the model was trained on: the split below is of its rows
    /// (without a split, it is the training set itself, and the test set is
    /// separate data, as MNIST's files).
    pub data: Option<DataRecord>,
    /// The train/test split of `data` the model was trained on.
    pub split: Option<SplitRecord>,
    /// The scaler fitted on the training rows: inputs must go through it
    /// before prediction. Its width is the model's input width.
    pub scaler: Option<Scaler>,
}

const META_DATA: u32 = 1;
const META_SPLIT: u32 = 2;
const META_SCALER: u32 = 4;

impl ModelMeta {
    fn flags(&self) -> u32 {
        (if self.data.is_some() { META_DATA } else { 0 })
            | (if self.split.is_some() { META_SPLIT } else { 0 })
            | (if self.scaler.is_some() { META_SCALER } else { 0 })
    }

    /// Checks the metadata against a model of `n_inputs` inputs.
    fn check(&self, n_inputs: usize) -> Result<()> {
        if let Some(d) = self.data
            && (d.features != n_inputs as u64 || d.rows == 0)
        {
            return Err(Error::Format(format!(
                "data record of {} rows × {} features does not fit a model of {n_inputs} inputs",
                d.rows, d.features
            )));
        }
        if let Some(s) = self.split {
            if !(s.test_fraction > 0.0 && s.test_fraction < 1.0) {
                return Err(Error::Format(format!("split test fraction {} is not in (0, 1)", s.test_fraction)));
            }
            if self.data.is_none() {
                return Err(Error::Format("a split record needs the data record it splits".into()));
            }
        }
        if let Some(sc) = &self.scaler {
            if sc.shift.len() != n_inputs || sc.scale.len() != n_inputs {
                return Err(Error::Format(format!(
                    "scaler of {}/{} features for a model of {n_inputs} inputs",
                    sc.shift.len(),
                    sc.scale.len()
                )));
            }
            if let Some(i) = sc.shift.iter().chain(&sc.scale).position(|v| !v.is_finite()) {
                return Err(Error::Format(format!("scaler value {i} is not finite")));
            }
        }
        Ok(())
    }

    /// Bytes of the metadata section that `flags` implies for `n_inputs` inputs.
    fn len_of(flags: u32, n_inputs: u64) -> u64 {
        (if flags & META_DATA != 0 { 24 } else { 0 })
            + (if flags & META_SPLIT != 0 { 16 } else { 0 })
            + (if flags & META_SCALER != 0 { 8 * n_inputs } else { 0 })
    }
}

impl Mlp {
    /// The model as bytes in the format above, without metadata.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_with_meta(&ModelMeta::default()).expect("empty metadata fits any model")
    }

    /// The model and its metadata as bytes; errors if the metadata does not
    /// fit the model (scaler width, data features) or a value is out of range.
    pub fn to_bytes_with_meta(&self, meta: &ModelMeta) -> Result<Vec<u8>> {
        meta.check(self.n_inputs).map_err(|e| crate::error::invalid(e.message().to_string()))?;
        let flags = meta.flags();
        let mut v = Vec::new();
        crate::mem::try_reserve(
            &mut v,
            52 + 16 * self.layers.len()
                + 4 * self.params.len()
                + ModelMeta::len_of(flags, self.n_inputs as u64) as usize,
            "the model file's bytes",
        )?;
        v.extend_from_slice(&MAGIC);
        v.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        v.extend_from_slice(&self.task.code().to_le_bytes());
        v.extend_from_slice(&(self.n_inputs as u64).to_le_bytes());
        v.extend_from_slice(&(self.layers.len() as u32).to_le_bytes());
        for l in &self.layers {
            v.extend_from_slice(&(l.units as u64).to_le_bytes());
            v.extend_from_slice(&l.activation.code().to_le_bytes());
            v.extend_from_slice(&l.activation.param().unwrap_or(0.0).to_le_bytes());
        }
        v.extend_from_slice(&(self.params.len() as u64).to_le_bytes());
        v.extend_from_slice(&flags.to_le_bytes());
        for p in self.params.iter() {
            v.extend_from_slice(&p.to_le_bytes());
        }
        if let Some(d) = meta.data {
            for x in [d.rows, d.features, d.fingerprint] {
                v.extend_from_slice(&x.to_le_bytes());
            }
        }
        if let Some(sp) = meta.split {
            v.extend_from_slice(&sp.seed.to_le_bytes());
            v.extend_from_slice(&sp.test_fraction.to_le_bytes());
        }
        if let Some(sc) = &meta.scaler {
            for x in sc.shift.iter().chain(&sc.scale) {
                v.extend_from_slice(&x.to_le_bytes());
            }
        }
        let h = fnv1a(&v);
        v.extend_from_slice(&h.to_le_bytes());
        Ok(v)
    }

    /// Parses a model from bytes (see the module docs for what is refused);
    /// any metadata is checked and dropped.
    pub fn from_bytes(b: &[u8]) -> Result<Mlp> {
        Mlp::from_bytes_with_meta(b).map(|(m, _)| m)
    }

    /// Parses a model and its metadata from bytes (empty for version 1 files).
    pub fn from_bytes_with_meta(b: &[u8]) -> Result<(Mlp, ModelMeta)> {
        let bad = |m: &str| Error::Format(m.to_string());
        let mut r = Reader { b, pos: 0 };
        if b.len() < 8 || b[..8] != MAGIC {
            return Err(bad("not an nnkern model file (bad magic)"));
        }
        r.pos = 8;
        let version = r.u32()?;
        if version > FORMAT_VERSION {
            return Err(Error::Format(format!(
                "model file format version {version} is newer than this library supports ({FORMAT_VERSION})"
            )));
        }
        if version == 0 {
            return Err(bad("model file format version 0 is invalid"));
        }
        let task = Task::from_code(r.u32()?).map_err(|e| Error::Format(e.message().to_string()))?;
        let n_inputs = r.u64()?;
        let n_layers = r.u32()? as usize;
        if n_layers == 0 || n_layers > MAX_LAYERS {
            return Err(Error::Format(format!("implausible layer count {n_layers}")));
        }
        if n_inputs == 0 || n_inputs > MAX_WIDTH as u64 {
            return Err(Error::Format(format!("implausible input width {n_inputs}")));
        }
        let mut layers = Vec::with_capacity(n_layers);
        let mut expect: u64 = 0;
        let mut fan = n_inputs;
        for i in 0..n_layers {
            let units = r.u64()?;
            let code = r.u32()?;
            let param = r.f32()?;
            if units == 0 || units > MAX_WIDTH as u64 {
                return Err(Error::Format(format!("layer {i}: implausible width {units}")));
            }
            if !param.is_finite() {
                return Err(Error::Format(format!("layer {i}: activation parameter {param} is not finite")));
            }
            let act =
                Activation::from_code(code).map_err(|e| Error::Format(e.message().to_string()))?.with_param(param);
            expect = expect.saturating_add(fan.saturating_mul(units)).saturating_add(units);
            fan = units;
            layers.push(Layer { units: units as usize, activation: act });
        }
        let n_params = r.u64()?;
        if n_params != expect || n_params > MAX_PARAMS as u64 {
            return Err(Error::Format(format!("parameter count {n_params} does not match the layers ({expect})")));
        }
        let flags = if version >= 2 { r.u32()? } else { 0 };
        if flags & !(META_DATA | META_SPLIT | META_SCALER) != 0 {
            return Err(Error::Format(format!("unknown metadata flags 0x{flags:x}")));
        }
        let meta_len = ModelMeta::len_of(flags, n_inputs);
        let need = r.pos as u64 + 4 * n_params + meta_len + 8;
        if (b.len() as u64) < need {
            return Err(Error::Format(format!("truncated model file: {} bytes, the header implies {need}", b.len())));
        }
        if b.len() as u64 > need {
            return Err(Error::Format(format!("{} trailing bytes after the model", b.len() as u64 - need)));
        }
        let body_end = need as usize - 8;
        let stored = u64::from_le_bytes(b[body_end..].try_into().expect("8 bytes"));
        // Fuzzing builds skip the checksum so that the checks after it are reachable.
        if !cfg!(fuzzing) && stored != fnv1a(&b[..body_end]) {
            return Err(bad("checksum mismatch: the model file is corrupt"));
        }
        let params_end = body_end - meta_len as usize;
        let pbytes = &b[r.pos..params_end];
        r.pos = params_end;
        let mut meta = ModelMeta::default();
        if flags & META_DATA != 0 {
            meta.data = Some(DataRecord { rows: r.u64()?, features: r.u64()?, fingerprint: r.u64()? });
        }
        if flags & META_SPLIT != 0 {
            meta.split = Some(SplitRecord { seed: r.u64()?, test_fraction: f64::from_bits(r.u64()?) });
        }
        if flags & META_SCALER != 0 {
            let ni = n_inputs as usize;
            let vals: Vec<f32> = b[r.pos..r.pos + 8 * ni]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            r.pos += 8 * ni;
            meta.scaler = Some(Scaler { shift: vals[..ni].to_vec(), scale: vals[ni..].to_vec() });
        }
        debug_assert_eq!(r.pos, body_end);
        meta.check(n_inputs as usize)?;
        // The model's buffer is the only allocation in proportion to the file
        // (fallible: OutOfMemory stays OutOfMemory); the weights are read
        // straight into it.
        let mut m = Mlp::from_layers(n_inputs as usize, layers, task, 0).map_err(|e| match e {
            e @ Error::OutOfMemory { .. } => e,
            e => Error::Format(e.message().to_string()),
        })?;
        debug_assert_eq!(m.params.len() * 4, pbytes.len());
        for (p, c) in m.params.iter_mut().zip(pbytes.chunks_exact(4)) {
            *p = f32::from_le_bytes(c.try_into().expect("4 bytes"));
        }
        if let Some(i) = crate::simd::reduce::first_non_finite(&m.params) {
            return Err(Error::Format(format!("parameter {i} is not finite")));
        }
        Ok((m, meta))
    }

    /// Saves atomically to `path` (temporary file + rename), without metadata;
    /// see [`Mlp::save_with_meta`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_with_meta(path, &ModelMeta::default())
    }

    /// Saves the model and its metadata atomically to `path`; errors before
    /// writing anything if the metadata does not fit the model.
    ///
    /// The bytes are written to a temporary file in `path`'s directory,
    /// synced, then renamed over `path`: on any failure (a full disk, a file
    /// size limit, the process killed) the previous file at `path` is intact,
    /// and an error names `path` and the system's reason (`"cannot save the
    /// model to 'PATH': No space left on device (os error 28)"`).
    ///
    /// Temporary files: on Linux the file has no name while it is written
    /// (`O_TMPFILE`); it is named `.NAME.tmpPID` (NAME the target's file name,
    /// PID this process's id) only between being complete and the rename, so
    /// that a save killed while writing leaves nothing. Elsewhere, or where the
    /// file system has no unnamed files, it is `.NAME.tmpPID` throughout, and
    /// a killed save leaves it behind. Either way each save first removes the
    /// `.NAME.tmpPID` files (exactly that pattern, regular files only) in the
    /// directory whose process no longer exists, so such a leftover lasts
    /// until the next save to the same path. A file of a live process is kept
    /// (on Unix, a process is dead when `kill(PID, 0)` says there is none;
    /// elsewhere nothing is removed).
    pub fn save_with_meta(&self, path: impl AsRef<Path>, meta: &ModelMeta) -> Result<()> {
        let bytes = self.to_bytes_with_meta(meta)?;
        let path = path.as_ref();
        let name = path.file_name().ok_or_else(|| {
            Error::io(std::io::ErrorKind::InvalidInput, path, format!("'{}' is not a file path", path.display()))
        })?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut prefix = OsString::from(".");
        prefix.push(name);
        prefix.push(".tmp");
        // Before writing, so that their space is free for this save.
        remove_stale_temps(dir, prefix.as_encoded_bytes());
        let mut tmp_name = prefix;
        tmp_name.push(std::process::id().to_string());
        let tmp = dir.join(tmp_name);
        let res = match crate::sys::create_unnamed(dir) {
            Ok(Some(f)) => save_unnamed(f, &bytes, &tmp, path),
            Ok(None) => save_named(&bytes, &tmp, path),
            Err(e) => Err(e),
        };
        res.map_err(|e| Error::io_at(&e, "cannot save the model to", path))
    }

    /// Loads a model saved by [`Mlp::save`] or [`Mlp::save_with_meta`]
    /// (any metadata is checked and dropped).
    pub fn load(path: impl AsRef<Path>) -> Result<Mlp> {
        Mlp::load_with_meta(path).map(|(m, _)| m)
    }

    /// Loads a model and its metadata (empty for files saved without it, and
    /// for version 1 files).
    pub fn load_with_meta(path: impl AsRef<Path>) -> Result<(Mlp, ModelMeta)> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io_at(&e, "cannot open", path))?;
        if meta.is_dir() {
            let msg = format!("'{}' is a directory, not a model file", path.display());
            return Err(Error::io(std::io::ErrorKind::IsADirectory, path, msg));
        }
        if meta.len() > 64 + 4 * MAX_PARAMS as u64 + 64 * MAX_LAYERS as u64 + 8 * MAX_WIDTH as u64 {
            return Err(Error::Format(format!("'{}' is too large to be a model file", path.display())));
        }
        let b = crate::mem::read_file(path, "the model file")?;
        Mlp::from_bytes_with_meta(&b).map_err(|e| match e {
            Error::Format(m) => Error::Format(format!("'{}': {m}", path.display())),
            e => e,
        })
    }
}

/// Writes `bytes` to the unnamed file `f` in the target's directory, syncs it,
/// names it `tmp` and renames that over `path`. A failure before the link
/// leaves nothing (the file goes when `f` is closed); after it, `tmp` is
/// removed.
fn save_unnamed(mut f: File, bytes: &[u8], tmp: &Path, path: &Path) -> std::io::Result<()> {
    f.write_all(bytes)?;
    f.sync_all()?;
    match crate::sys::link_unnamed(&f, tmp) {
        // `tmp` carries this process's id: it is a leftover of a dead process
        // that had the same id, or another thread's save to the same path,
        // which a named save would truncate just the same.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(tmp)?;
            crate::sys::link_unnamed(&f, tmp)?;
        }
        r => r?,
    }
    rename_or_remove(tmp, path)
}

/// Writes `bytes` to the named file `tmp`, syncs it and renames it over
/// `path`; on failure `tmp` is removed.
fn save_named(bytes: &[u8], tmp: &Path, path: &Path) -> std::io::Result<()> {
    let res = (|| {
        let mut f = File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    rename_or_remove(tmp, path)
}

fn rename_or_remove(tmp: &Path, path: &Path) -> std::io::Result<()> {
    std::fs::rename(tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(tmp);
    })
}

/// Removes the regular files of `dir` named `prefix` + a process id (decimal,
/// as [`std::process::id`] writes it) whose process no longer exists: the
/// temporary files of saves that were killed. Best effort: a directory or a
/// file that cannot be read or removed is left alone.
fn remove_stale_temps(dir: &Path, prefix: &[u8]) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.as_encoded_bytes().strip_prefix(prefix).and_then(parse_pid) else { continue };
        if pid != std::process::id() && e.file_type().is_ok_and(|t| t.is_file()) && crate::sys::process_is_dead(pid) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A process id written in decimal without sign or leading zeros.
fn parse_pid(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits[0] == b'0' || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let end = self.pos.checked_add(N).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            return Err(Error::Format(format!("truncated model file (header ends at byte {})", self.b.len())));
        };
        let out = self.b[self.pos..end].try_into().expect("N bytes");
        self.pos = end;
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take::<4>()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take::<8>()?))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.take::<4>()?))
    }
}
