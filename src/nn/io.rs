//! Model files: a documented, versioned little-endian binary format.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "NNKMLP\0\x01"
//! 8       4     format version (u32, currently 1)
//! 12      4     task (u32: 0 multi-class, 1 multi-label/binary, 2 regression)
//! 16      8     n_inputs (u64)
//! 24      4     n_layers (u32)
//! 28      16·L  per layer: units (u64), activation code (u32, NNK_ACT_*), parameter (f32)
//! …       8     n_params (u64), must equal what the layers imply
//! …       4·P   parameters (f32), W₀ b₀ W₁ b₁ … with W row-major n_in × n_out
//! …       8     FNV-1a 64 checksum of every byte before it
//! ```
//!
//! Files are written atomically (a temporary file in the same directory, synced,
//! then renamed over the target). Loading checks the size the header implies
//! against the file size *before* allocating, so a corrupt header cannot cause a
//! huge allocation; a truncated, corrupt, foreign or future-version file is an
//! [`Error::Format`]. Save → load → predict is bit-identical.

use super::model::{Layer, MAX_PARAMS, MAX_WIDTH, Mlp, Task};
use crate::error::{Error, Result};
use crate::ops::act::Activation;
use std::io::Write;
use std::path::Path;

/// File magic.
pub const MAGIC: [u8; 8] = *b"NNKMLP\0\x01";
/// Current format version.
pub const FORMAT_VERSION: u32 = 1;
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

fn act_param(a: Activation) -> f32 {
    match a {
        Activation::LeakyRelu(p) | Activation::Elu(p) => p,
        _ => 0.0,
    }
}

impl Mlp {
    /// The model as bytes in the format above.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(48 + 16 * self.layers.len() + 4 * self.params.len());
        v.extend_from_slice(&MAGIC);
        v.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        v.extend_from_slice(&self.task.code().to_le_bytes());
        v.extend_from_slice(&(self.n_inputs as u64).to_le_bytes());
        v.extend_from_slice(&(self.layers.len() as u32).to_le_bytes());
        for l in &self.layers {
            v.extend_from_slice(&(l.units as u64).to_le_bytes());
            v.extend_from_slice(&l.activation.code().to_le_bytes());
            v.extend_from_slice(&act_param(l.activation).to_le_bytes());
        }
        v.extend_from_slice(&(self.params.len() as u64).to_le_bytes());
        for p in self.params.iter() {
            v.extend_from_slice(&p.to_le_bytes());
        }
        let h = fnv1a(&v);
        v.extend_from_slice(&h.to_le_bytes());
        v
    }

    /// Parses a model from bytes (see the module docs for what is refused).
    pub fn from_bytes(b: &[u8]) -> Result<Mlp> {
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
            let act = match Activation::from_code(code).map_err(|e| Error::Format(e.message().to_string()))? {
                Activation::LeakyRelu(_) => Activation::LeakyRelu(param),
                Activation::Elu(_) => Activation::Elu(param),
                a => a,
            };
            expect = expect.saturating_add(fan.saturating_mul(units)).saturating_add(units);
            fan = units;
            layers.push(Layer { units: units as usize, activation: act });
        }
        let n_params = r.u64()?;
        if n_params != expect || n_params > MAX_PARAMS as u64 {
            return Err(Error::Format(format!("parameter count {n_params} does not match the layers ({expect})")));
        }
        let need = r.pos as u64 + 4 * n_params + 8;
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
        let params: Vec<f32> =
            b[r.pos..body_end].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        if let Some(i) = crate::ops::reduce::first_non_finite(&params) {
            return Err(Error::Format(format!("parameter {i} is not finite")));
        }
        let mut m =
            Mlp::from_layers(n_inputs as usize, layers, task, 0).map_err(|e| Error::Format(e.message().to_string()))?;
        m.params = params.into();
        Ok(m)
    }

    /// Saves atomically to `path` (temporary file + rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let name = path.file_name().ok_or_else(|| {
            Error::io(std::io::ErrorKind::InvalidInput, path, format!("'{}' is not a file path", path.display()))
        })?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
        let res = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&self.to_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io_at(&e, "cannot save the model to", path));
        }
        Ok(())
    }

    /// Loads a model saved by [`Mlp::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Mlp> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io_at(&e, "cannot open", path))?;
        if meta.is_dir() {
            let msg = format!("'{}' is a directory, not a model file", path.display());
            return Err(Error::io(std::io::ErrorKind::IsADirectory, path, msg));
        }
        if meta.len() > 8 + 4 * MAX_PARAMS as u64 + 64 * MAX_LAYERS as u64 {
            return Err(Error::Format(format!("'{}' is too large to be a model file", path.display())));
        }
        let b = std::fs::read(path).map_err(|e| Error::io_at(&e, "cannot read", path))?;
        Mlp::from_bytes(&b).map_err(|e| match e {
            Error::Format(m) => Error::Format(format!("'{}': {m}", path.display())),
            e => e,
        })
    }
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
