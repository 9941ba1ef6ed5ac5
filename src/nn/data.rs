//! Data loading and preparation: CSV and MNIST-style IDX readers (gzip or
//! not), standardisation and min-max scaling fitted on training data, one-hot
//! encoding and seeded splits.

use crate::error::{Error, Result, invalid, overflow};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::io::Read;
use std::path::Path;

/// A dense data set: `n × d` features (row-major) and one target per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Features, `n × d`.
    pub x: Vec<f32>,
    /// Targets (the label column of a CSV, or IDX labels).
    pub y: Vec<f32>,
    /// Rows.
    pub n: usize,
    /// Features per row.
    pub d: usize,
}

impl Dataset {
    /// The targets as class labels; errors unless every target is an integer ≥ 0.
    pub fn labels(&self) -> Result<Vec<u32>> {
        self.y
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v >= 0.0 && v.fract() == 0.0 && v < u32::MAX as f32 {
                    Ok(v as u32)
                } else {
                    Err(invalid(format!("target of row {i} is {v}, not a class label")))
                }
            })
            .collect()
    }

    /// The rows `idx`, in that order.
    ///
    /// # Panics
    ///
    /// If an index is not below `self.n` (as slice indexing does), or the
    /// fields disagree (`self.x` shorter than `n × d` or `self.y` than `n`).
    pub fn take(&self, idx: &[usize]) -> Dataset {
        let mut x = Vec::with_capacity(idx.len() * self.d);
        for &i in idx {
            x.extend_from_slice(&self.x[i * self.d..(i + 1) * self.d]);
        }
        Dataset { x, y: idx.iter().map(|&i| self.y[i]).collect(), n: idx.len(), d: self.d }
    }

    /// A 64-bit fingerprint of the data set: its shape, every feature's bits
    /// and every target's bits, in order (FNV-1a over 32-bit words). Equal data
    /// sets have equal fingerprints; a changed, added, removed or reordered
    /// row changes it except by a 2⁻⁶⁴-scale accident. Not cryptographic.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf29ce484222325;
        let mut mix = |w: u32| {
            h ^= w as u64;
            h = h.wrapping_mul(0x100000001b3);
        };
        for v in [self.n as u64, self.d as u64] {
            mix(v as u32);
            mix((v >> 32) as u32);
        }
        for v in self.x.iter().chain(&self.y) {
            mix(v.to_bits());
        }
        h
    }

    /// A seeded shuffle split: `(train, test)` with `round(test_fraction·n)` test rows
    /// (at least one each; errors as [`train_test_split`]).
    pub fn split(&self, test_fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        let (a, b) = train_test_split(self.n, test_fraction, seed)?;
        Ok((self.take(&a), self.take(&b)))
    }
}

/// Seeded shuffle split of `0..n` into `(train, test)` index lists, each
/// holding at least one index. Errors unless `test_fraction` is in (0, 1)
/// and `n ≥ 2` (one sample to train on and one to test).
pub fn train_test_split(n: usize, test_fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(invalid(format!("test fraction {test_fraction} must be in (0, 1)")));
    }
    if n < 2 {
        return Err(invalid(format!("cannot split {n} samples into a training and a test set: at least 2 are needed")));
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut StdRng::seed_from_u64(seed));
    let nt = ((n as f64 * test_fraction).round() as usize).clamp(1.min(n), n.saturating_sub(1).max(1.min(n)));
    let test = idx.split_off(n - nt);
    Ok((idx, test))
}

/// Whether a CSV file's first line is a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Header {
    /// A first line none of whose cells is a number is a header (`a,b,label`);
    /// one with some numbers is data, so a bad value there is an error naming
    /// line 1, not a header silently dropped. A header of numbers only
    /// (`0,1,2`) needs [`Header::Present`].
    #[default]
    Auto,
    /// The first line is a header, whatever it holds (skipped).
    Present,
    /// Every line is data.
    Absent,
}

/// Reads a CSV file of numbers: `label_column` (0-based; negative counts from
/// the end, −1 = last) is the target, every other column a feature. The
/// header is detected as [`Header::Auto`] says (see [`read_csv_with`] to
/// choose). Errors name the line and column of a bad value or a row of the
/// wrong width.
pub fn read_csv(path: impl AsRef<Path>, label_column: isize) -> Result<Dataset> {
    read_csv_with(path, label_column, Header::Auto)
}

/// [`read_csv`] with the header chosen.
pub fn read_csv_with(path: impl AsRef<Path>, label_column: isize, header: Header) -> Result<Dataset> {
    let path = path.as_ref();
    let text = crate::mem::read_text(path, "the CSV file")?;
    parse_csv_with(&text, label_column, header).map_err(|e| match e {
        Error::Format(m) => Error::Format(format!("{}: {m}", path.display())),
        e => e,
    })
}

/// [`read_csv`] on text already in memory.
pub fn parse_csv(text: &str, label_column: isize) -> Result<Dataset> {
    parse_csv_with(text, label_column, Header::Auto)
}

/// [`read_csv_with`] on text already in memory.
pub fn parse_csv_with(text: &str, label_column: isize, header: Header) -> Result<Dataset> {
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut width: Option<usize> = None;
    let mut n = 0;
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(|c| c.trim()).collect();
        if n == 0 && width.is_none() {
            let is_header = match header {
                Header::Present => true,
                Header::Absent => false,
                Header::Auto => cells.iter().all(|c| c.parse::<f32>().is_err()),
            };
            if is_header {
                width = Some(cells.len());
                continue;
            }
        }
        let w = *width.get_or_insert(cells.len());
        if cells.len() != w {
            return Err(Error::Format(format!("line {}: {} columns, expected {w}", ln + 1, cells.len())));
        }
        let lc = if label_column < 0 { w as isize + label_column } else { label_column };
        if lc < 0 || lc as usize >= w {
            return Err(invalid(format!("label column {label_column} is outside the {w} columns")));
        }
        for (c, cell) in cells.iter().enumerate() {
            let v: f32 = cell
                .parse()
                .map_err(|_| Error::Format(format!("line {}, column {}: '{cell}' is not a number", ln + 1, c + 1)))?;
            if !v.is_finite() {
                return Err(Error::Format(format!("line {}, column {}: '{cell}' is not finite", ln + 1, c + 1)));
            }
            let what = "the CSV data";
            if c == lc as usize {
                crate::mem::try_push(&mut y, v, what)?
            } else {
                crate::mem::try_push(&mut x, v, what)?
            }
        }
        n += 1;
    }
    if n == 0 {
        return Err(Error::Format("no data rows".into()));
    }
    let d = width.unwrap_or(1) - 1;
    Ok(Dataset { x, y, n, d })
}

/// An IDX array: dimensions and unsigned-byte data.
#[derive(Debug, Clone, PartialEq)]
pub struct Idx {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The bytes, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes (type 0x08), gzip-compressed or not.
pub fn read_idx(path: impl AsRef<Path>) -> Result<Idx> {
    let path = path.as_ref();
    let raw = crate::mem::read_file(path, "the IDX file")?;
    parse_idx(&raw).map_err(|e| match e {
        Error::Format(m) => Error::Format(format!("{}: {m}", path.display())),
        e => e,
    })
}

/// [`read_idx`] on bytes in memory.
pub fn parse_idx(raw: &[u8]) -> Result<Idx> {
    let bytes: Vec<u8>;
    let b: &[u8] = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        // Bound the decompressed size: 4 GiB is beyond any IDX we accept.
        flate2::read::GzDecoder::new(raw).take(1 << 32).read_to_end(&mut out).map_err(|e| match e.kind() {
            // read_to_end grows the buffer fallibly.
            std::io::ErrorKind::OutOfMemory => {
                Error::out_of_memory(out.len().saturating_mul(2), "the IDX file, decompressed")
            }
            _ => Error::Format(format!("bad gzip stream: {e}")),
        })?;
        bytes = out;
        &bytes
    } else {
        raw
    };
    if b.len() < 4 || b[0] != 0 || b[1] != 0 {
        return Err(Error::Format("not an IDX file (bad magic)".into()));
    }
    if b[2] != 0x08 {
        return Err(Error::Format(format!("IDX element type 0x{:02x} unsupported (only unsigned bytes)", b[2])));
    }
    let nd = b[3] as usize;
    if nd == 0 || b.len() < 4 + 4 * nd {
        return Err(Error::Format("truncated IDX header".into()));
    }
    let dims: Vec<usize> =
        (0..nd).map(|i| u32::from_be_bytes(b[4 + 4 * i..8 + 4 * i].try_into().expect("4")) as usize).collect();
    let total = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::Format("IDX size overflows".into()))?;
    let body = &b[4 + 4 * nd..];
    if body.len() != total {
        return Err(Error::Format(format!(
            "IDX body has {} bytes, the header implies {total} (truncated?)",
            body.len()
        )));
    }
    Ok(Idx { dims, data: crate::mem::try_to_vec(body, "the IDX data")? })
}

/// Loads MNIST from `dir` (the four standard file names, `.gz` or not) as
/// `(train, test)` with pixels scaled to [0, 1].
pub fn load_mnist(dir: impl AsRef<Path>) -> Result<(Dataset, Dataset)> {
    let dir = dir.as_ref();
    let find = |stem: &str| -> Result<std::path::PathBuf> {
        for cand in [format!("{stem}.gz"), stem.to_string(), stem.replacen("-idx", ".idx", 1)] {
            let p = dir.join(&cand);
            if p.is_file() {
                return Ok(p);
            }
        }
        Err(Error::io(std::io::ErrorKind::NotFound, dir, format!("'{}' has no {stem}[.gz]", dir.display())))
    };
    let pair = |img: &str, lab: &str| -> Result<Dataset> {
        let i = read_idx(find(img)?)?;
        let l = read_idx(find(lab)?)?;
        if i.dims.len() != 3 || l.dims.len() != 1 || i.dims[0] != l.dims[0] {
            return Err(Error::Format(format!("{img}/{lab}: shapes {:?} and {:?} do not match", i.dims, l.dims)));
        }
        let d = i.dims[1] * i.dims[2];
        let what = "the MNIST data";
        Ok(Dataset {
            x: crate::mem::try_collect(i.data.len(), i.data.iter().map(|&p| p as f32 / 255.0), what)?,
            y: crate::mem::try_collect(l.data.len(), l.data.iter().map(|&v| v as f32), what)?,
            n: i.dims[0],
            d,
        })
    };
    Ok((
        pair("train-images-idx3-ubyte", "train-labels-idx1-ubyte")?,
        pair("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?,
    ))
}

/// Per-feature affine scaling `x' = (x − shift)·scale`, fitted on training
/// data and applied to any data.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    /// Subtracted per feature.
    pub shift: Vec<f32>,
    /// Multiplied per feature.
    pub scale: Vec<f32>,
}

impl Scaler {
    /// Standardisation: zero mean, unit variance (constant features: scale 1;
    /// so too a feature whose spread is so small that 1/σ overflows f32).
    pub fn standard(x: &[f32], d: usize) -> Scaler {
        let n = if d == 0 { 0 } else { x.len() / d };
        let mut shift = vec![0.0; d];
        let mut scale = vec![1.0; d];
        for j in 0..d {
            let mean = (0..n).map(|i| x[i * d + j] as f64).sum::<f64>() / n.max(1) as f64;
            let var = (0..n).map(|i| (x[i * d + j] as f64 - mean).powi(2)).sum::<f64>() / n.max(1) as f64;
            shift[j] = mean as f32;
            // A σ below f32's range (e.g. [0, 1e-39]) gives 1/σ = +inf: constant.
            let s = (1.0 / var.sqrt()) as f32;
            scale[j] = if var > 0.0 && s.is_finite() { s } else { 1.0 };
        }
        Scaler { shift, scale }
    }

    /// Min-max scaling to [0, 1] (constant features: scale 1; so too a
    /// feature whose range is so small, subnormal, that 1/range overflows f32).
    pub fn min_max(x: &[f32], d: usize) -> Scaler {
        let n = if d == 0 { 0 } else { x.len() / d };
        let mut shift = vec![0.0; d];
        let mut scale = vec![1.0; d];
        for j in 0..d {
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for i in 0..n {
                lo = lo.min(x[i * d + j]);
                hi = hi.max(x[i * d + j]);
            }
            if n > 0 {
                shift[j] = lo;
                // A subnormal range gives 1/range = +inf: constant.
                let s = 1.0 / (hi - lo);
                scale[j] = if hi > lo && s.is_finite() { s } else { 1.0 };
            }
        }
        Scaler { shift, scale }
    }

    /// Applies the scaling in place to rows of width `shift.len()`.
    pub fn transform(&self, x: &mut [f32]) {
        let d = self.shift.len().max(1);
        for row in x.chunks_mut(d) {
            for ((v, s), c) in row.iter_mut().zip(&self.shift).zip(&self.scale) {
                *v = (*v - s) * c;
            }
        }
    }
}

/// One-hot rows (`labels.len() × k`); labels ≥ k are an error, a size
/// that overflows is [`Error::Overflow`] and one that cannot be allocated
/// [`Error::OutOfMemory`].
pub fn one_hot(labels: &[u32], k: usize) -> Result<Vec<f32>> {
    let len = labels
        .len()
        .checked_mul(k)
        .ok_or_else(|| overflow(format!("one-hot rows: {} labels × {k} classes overflows", labels.len())))?;
    let mut out = crate::mem::try_vec(len, 0.0f32, "the one-hot rows")?;
    for (i, &l) in labels.iter().enumerate() {
        if l as usize >= k {
            return Err(invalid(format!("label {l} at row {i} is not below {k}")));
        }
        out[i * k + l as usize] = 1.0;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_test_split_needs_two_samples() {
        for n in [0, 1] {
            let e = train_test_split(n, 0.5, 3).unwrap_err();
            assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("at least 2")), "n = {n}: {e}");
        }
        let (a, b) = train_test_split(2, 0.5, 3).unwrap();
        assert_eq!((a.len(), b.len()), (1, 1));
        let one = Dataset { x: vec![1.0], y: vec![0.0], n: 1, d: 1 };
        assert!(one.split(0.2, 0).is_err());
    }

    #[test]
    fn scalers_treat_an_overflowing_scale_as_constant() {
        // σ = 5e-40: 1/σ overflows f32.
        let s = Scaler::standard(&[0.0, 1e-39], 1);
        assert_eq!(s.scale, [1.0]);
        // A subnormal range: 1/range overflows f32.
        let m = Scaler::min_max(&[0.0, 1e-39], 1);
        assert_eq!(m.scale, [1.0]);
        let mut x = [0.0f32, 1e-39];
        s.transform(&mut x);
        assert!(x.iter().all(|v| v.is_finite()), "{x:?}");
        // Normal data keeps its scales (the same expressions as before).
        let s = Scaler::standard(&[1.0, 3.0], 1);
        assert_eq!((s.shift[0], s.scale[0]), (2.0, 1.0));
        let m = Scaler::min_max(&[1.0, 5.0], 1);
        assert_eq!((m.shift[0], m.scale[0]), (1.0, 0.25));
        assert_eq!(Scaler::standard(&[2.0, 2.0], 1).scale, [1.0]);
    }

    #[test]
    fn one_hot_sizes_are_checked() {
        assert!(matches!(one_hot(&[0, 0], usize::MAX / 2 + 1), Err(Error::Overflow(_))));
        assert!(matches!(one_hot(&[0], 1 << 60), Err(Error::OutOfMemory { .. })));
        assert_eq!(one_hot(&[1, 0], 2).unwrap(), [0.0, 1.0, 1.0, 0.0]);
        assert!(one_hot(&[], 3).unwrap().is_empty());
    }

    #[test]
    fn take_panics_on_an_index_out_of_range_as_documented() {
        let ds = Dataset { x: vec![1.0, 2.0], y: vec![0.0, 1.0], n: 2, d: 1 };
        assert_eq!(ds.take(&[1]).x, [2.0]);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ds.take(&[2])));
        assert!(r.is_err(), "an index out of range must panic, as documented");
    }
}
