//! The BLIS loop nest: JC (NC) → PC (KC) → IC (MC) outside the target-feature
//! region, JR (NR) → IR (MR) → microkernel inside it.
//!
//! * Orientation: the problem is transposed when C is row-major so the kernel
//!   writes contiguous columns (`C = A·B ⇔ Cᵀ = Bᵀ·Aᵀ`), except for a narrow
//!   C (at most 16 columns) whose A is read in place, or (f32 on AVX-512)
//!   packed by transposes in registers where that pays: vectors then run
//!   along A's rows, full, and C is written row by row (by a transpose in
//!   registers for f32 on AVX-512; `keeps_orientation`). The bits are the
//!   same either way.
//! * Packing is skipped where it costs more than it saves: A is read in place
//!   when its columns are contiguous and few B panels would reuse it; B is read
//!   in place (by broadcasts) when few A panels would reuse it. That is the
//!   small-matrix path for MLP shapes (batch × 784 × 128 and the like).
//! * `beta` applies on the first KC pass only; later passes accumulate.
//! * Threads split the output over N (or M) tiles, never over K, so every
//!   element is summed in the same order for any thread count.

use super::kernel::{Epilogue, Tile, Ukr};
use super::pack::pack;
use super::params::Params;
use super::scratch;
use super::strided::Strided;
use crate::ptr::{ConstPtr, MutPtr};
use crate::simd::{Isa, IsaToken, IsaVisitor, Real, TileShape};
use crate::simd::{Token, WithToken};

/// A validated GEMM problem on raw pointers: `C = alpha·A·B + beta·C`
/// (`beta == None`: C is write-only).
#[derive(Clone, Copy)]
pub(crate) struct Problem<T> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: T,
    pub a: Strided<ConstPtr<T>>,
    pub b: Strided<ConstPtr<T>>,
    pub beta: Option<T>,
    /// From C's exclusive borrow; the call's threads write disjoint blocks.
    pub c: Strided<MutPtr<T>>,
    /// Offset of this (sub-)problem's C in the whole C, for epilogues.
    pub i_off: usize,
    pub j_off: usize,
}

/// Minimum floating-point work (2·m·n·k) per thread before a call goes
/// parallel: 256 Ki flops, a few microseconds, several times what handing a
/// task to the team's spinning workers costs (`par::run_tasks`; with a pool
/// whose threads had to be woken, 1 Mi was the break-even, see
/// BENCHMARKS.md). The sparse products use the same bound.
/// Under Miri, 64, so that the small shapes it can afford still split.
pub(crate) const MIN_FLOPS_PER_THREAD: usize = if cfg!(miri) { 64 } else { 1 << 18 };

impl<T: Real> Problem<T> {
    /// The same product with C transposed: `Cᵀ = Bᵀ·Aᵀ`.
    pub(crate) fn transposed(self) -> Self {
        Problem {
            m: self.n,
            n: self.m,
            a: self.b.t(),
            b: self.a.t(),
            c: self.c.t(),
            i_off: self.j_off,
            j_off: self.i_off,
            ..self
        }
    }
}

/// Runs the native GEMM.
///
/// # Errors
/// [`crate::Error::OutOfMemory`] when the packing buffers cannot be
/// allocated; C is then untouched.
///
/// # Safety
/// Every element `A(i,p)`, `B(p,j)`, `C(i,j)` in range must be valid to read (and
/// C to write), C must not overlap A or B, and distinct C elements must have
/// distinct addresses.
pub(crate) unsafe fn gemm_native<T: Real, E: Epilogue<T>>(
    isa: Isa,
    prob: Problem<T>,
    epi: E,
    threads: usize,
) -> crate::Result<()> {
    let Problem { m, n, k, .. } = prob;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 || prob.alpha == T::ZERO {
        // SAFETY: forwarded contract.
        unsafe { scale_c(prob, &epi) };
        return Ok(());
    }
    let p = Params::for_isa(isa, core::mem::size_of::<T>());
    let (prob, epi) = if prob.c.rs != 1 && prob.c.cs == 1 && !keeps_orientation(&p, &prob) {
        (prob.transposed(), epi.transposed())
    } else {
        (prob, epi)
    };

    let n_tiles = prob.n.div_ceil(p.nr);
    let m_tiles = prob.m.div_ceil(p.mr);
    let flops = 2usize.saturating_mul(m).saturating_mul(n).saturating_mul(k);
    let split_n = n_tiles >= m_tiles;
    let tiles = if split_n { n_tiles } else { m_tiles };
    let nt = threads.min((flops / MIN_FLOPS_PER_THREAD).max(1)).min(tiles).max(1);
    // Task t's part of C: a range of whole N (or M) tiles.
    let sub = |t: usize| {
        let t0 = t * tiles / nt;
        let t1 = (t + 1) * tiles / nt;
        let mut sub = prob;
        if split_n {
            let j0 = t0 * p.nr;
            let j1 = (t1 * p.nr).min(prob.n);
            sub.n = j1 - j0;
            sub.j_off = prob.j_off + j0;
            sub.b = prob.b.shift(0, j0);
            sub.c = prob.c.shift(0, j0);
        } else {
            let i0 = t0 * p.mr;
            let i1 = (t1 * p.mr).min(prob.m);
            sub.m = i1 - i0;
            sub.i_off = prob.i_off + i0;
            sub.a = prob.a.shift(i0, 0);
            sub.c = prob.c.shift(i0, 0);
        }
        sub
    };
    let words = (0..nt).map(|t| pack_words::<T>(&p, &sub(t))).max().unwrap_or(0);
    scratch::with_parts(nt, words, "GEMM packing buffers", |parts| {
        crate::par::run_tasks(nt, |t| {
            // SAFETY: the sub-problems cover disjoint blocks of C inside the
            // caller's range; task t takes scratch part t only.
            unsafe { serial(isa, &p, sub(t), &epi, parts.part(t)) };
        })
    })
}

/// Whether a product with a row-major C (`c.cs == 1`) keeps its
/// orientation instead of being computed as `Cᵀ = Bᵀ·Aᵀ` (which makes C's
/// rows the kernel's contiguous columns): when C is narrow (`n ≤ 16`, the
/// 10 outputs of a classifier) and A's columns are contiguous, vectors then
/// run along A's `m` rows, full, instead of along C's `n` columns, mostly
/// empty: the weight gradient `Hᵀ·dZ` of a 128 → 10 layer takes
/// `⌈128/16⌉·10 = 80` vector FMAs per k step instead of `⌈10/16⌉·128 = 128`.
/// Taken when the vector count falls by at least a quarter, paying for C's
/// strided write-out. A row-major A (H of the forward product `H·W` into 10
/// outputs) must then be transposed into panels, a copy the size of the
/// product at these shapes: taken only for f32 on AVX-512, where
/// `pack_rows_t` transposes 16 × 16 tiles in registers, and only when the
/// vectors saved exceed that copy's cost ([`TRANSPOSE_COST`] vector FMAs'
/// time per 16 rows and column of k; any other layout of A never). Measured
/// on Zen 4, best of 6 alternating rounds: 64 × 128 · 128 × 10 2.66 → 2.35
/// µs, 128 × 128 · 128 × 10 5.09 → 4.75 µs; at 32 and 256 rows the gain
/// depends on where the operands lie (BENCHMARKS.md, twenty-fourth
/// session). Every element is summed in the same order either way, so the
/// bits do not depend on the choice.
fn keeps_orientation<T>(p: &Params, prob: &Problem<T>) -> bool {
    let vectors = |rows: usize, cols: usize| rows.div_ceil(p.lanes).saturating_mul(cols);
    if prob.n > 16 {
        return false;
    }
    if prob.a.rs == 1 {
        return vectors(prob.m, prob.n).saturating_mul(4) <= vectors(prob.n, prob.m).saturating_mul(3);
    }
    // A row-major A, packed by 16 × 16 transposes in registers where `pack`
    // can (`transposes_rows`): about TRANSPOSE_COST vector FMAs' time per
    // 16 rows and column of k, a partial chunk of 16 columns costing a whole one.
    prob.a.cs == 1 && super::pack::transposes_rows(p.lanes, p.mr) && {
        let saved = vectors(prob.n, prob.m).saturating_sub(vectors(prob.m, prob.n)).saturating_mul(prob.k);
        let cost = prob.m.div_ceil(16).saturating_mul(prob.k.next_multiple_of(16)).saturating_mul(TRANSPOSE_COST);
        cost < saved
    }
}

/// See [`keeps_orientation`].
const TRANSPOSE_COST: usize = 5;

/// `C = epi(beta·C)` (or `epi(0)` when `beta == None`); A and B are not read.
unsafe fn scale_c<T: Real, E: Epilogue<T>>(prob: Problem<T>, epi: &E) {
    for j in 0..prob.n {
        for i in 0..prob.m {
            let p = prob.c.at(i, j).get();
            // SAFETY: (i, j) is in C's validated range.
            unsafe {
                let v = match prob.beta {
                    None => T::ZERO,
                    Some(b) if b == T::ONE => *p,
                    Some(b) => b * *p,
                };
                *p = if E::IS_NONE { v } else { epi.apply_scalar(v, prob.i_off + i, prob.j_off + j) };
            }
        }
    }
}

/// Applies `epi` to every element of C in a separate pass (for backends that
/// cannot fuse it).
///
/// # Safety
/// As [`gemm_native`].
pub(crate) unsafe fn apply_epilogue<T: Real, E: Epilogue<T>>(prob: Problem<T>, epi: &E) {
    if E::IS_NONE {
        return;
    }
    for j in 0..prob.n {
        for i in 0..prob.m {
            let p = prob.c.at(i, j).get();
            // SAFETY: (i, j) is in C's validated range.
            unsafe { *p = epi.apply_scalar(*p, prob.i_off + i, prob.j_off + j) };
        }
    }
}

/// Whether to pack A: always when its columns are not contiguous; otherwise only
/// when enough B panels reuse it to repay the copy.
fn want_pack_a(p: &Params, prob: &Problem<impl Sized>) -> bool {
    prob.a.rs != 1 || (prob.n > 16 * p.nr && prob.k > 64)
}

/// Whether to pack B: when many A panels reuse each B panel, or when B's
/// columns are neither adjacent nor contiguous and at least two A panels reuse
/// it (scattered broadcasts cost more than one copy).
///
/// A B whose columns are each contiguous in k (`b.rs == 1`: Xᵀ in the forward
/// pass of a row-major layer) is read in place up to 16 A panels: its `NR`
/// column streams are sequential, and packing it is a transpose that cost more
/// than it saved at the MLP shapes (as the `gemm` crate also finds). Where
/// `pack` transposes by 16 × 16 tiles in registers (f32 on AVX-512), up to 4
/// A panels: the MLP shapes' 128 outputs still read it in place (packed, the
/// 256 × 784 · 784 × 128 forward product took 6% longer), and 512³ is 4%
/// faster packed (Xeon, family 6, model 167, `perf_rows gemm`, 1 thread,
/// 6 runs each: 1.76–1.85 ms in place, 1.65–1.74 packed; 384³ 0.69–0.72
/// against 0.66–0.69).
///
/// A B whose rows are contiguous (`b.cs == 1`: X in the weight gradient
/// `Xᵀ·dZ` of a row-major layer) is read by broadcasts of NR values from rows
/// `b.rs` apart. Where those rows are at least half a page apart
/// ([`FAR_ROWS_BYTES`]), every other k step starts a new 4 KiB page, which the
/// hardware prefetchers do not cross, so each panel's lines arrive as
/// exposed misses; there three or more A panels (and a k of at least 192)
/// repay the copy. Measured on a Xeon (family 6, model 167), `perf_rows gemm`
/// on `Xᵀ·dZ`, `n × 256 × 128` (`tn`), 1 thread: packed 3–19% faster for
/// rows of 640 to 1 536 values (MNIST's 784: 8%), the same at 256 to 512,
/// slower at 64 and 128 (5–8%); 2 threads, 7–20% faster at 512 to 1 024.
/// 784 × k × 128: 4% faster at k = 192, the same at 128, slower at 64; with 2
/// A panels (n = 64) 3% slower.
fn want_pack_b<T>(p: &Params, prob: &Problem<T>) -> bool {
    // With a short k, the copy costs about as much as the product itself.
    if prob.k < 32 {
        return false;
    }
    if prob.b.cs == 1 {
        let far_rows = prob.b.rs.unsigned_abs().saturating_mul(size_of::<T>()) >= FAR_ROWS_BYTES;
        prob.m > 8 * p.mr || (prob.m > 2 * p.mr && far_rows && p.kc.min(prob.k) >= 192)
    } else if prob.b.rs == 1 {
        // Packing it is a transpose: by tiles in registers where `pack` can.
        let panels = if super::pack::transposes_rows(p.lanes, p.nr) { 4 } else { 16 };
        prob.m > panels * p.mr
    } else {
        prob.n > 1 && prob.m > p.mr
    }
}

/// Bytes between B's rows from which [`want_pack_b`] packs a B read by rows
/// with few A panels: half a 4 KiB page.
const FAR_ROWS_BYTES: usize = 2048;

/// Words of scratch [`serial`] needs for `prob`: its packed A and B blocks
/// and A's packed edge panel, each with 64-byte alignment slack.
fn pack_words<T>(p: &Params, prob: &Problem<T>) -> usize {
    let (a_len, b_len, edge_len) = pack_lens(p, prob);
    scratch::words_of::<T>(a_len) + scratch::words_of::<T>(b_len) + scratch::words_of::<T>(edge_len) + 24
}

/// Elements of the packed A block, the packed B block and A's packed edge
/// panel (0 where that operand is read in place).
fn pack_lens<T>(p: &Params, prob: &Problem<T>) -> (usize, usize, usize) {
    let kc_max = p.kc.min(prob.k);
    let a_len = if want_pack_a(p, prob) { prob.m.min(p.mc).div_ceil(p.mr) * p.mr * kc_max } else { 0 };
    let b_len = if want_pack_b(p, prob) { prob.n.min(p.nc).div_ceil(p.nr) * p.nr * kc_max } else { 0 };
    let edge_len = edge_width(p, prob) * kc_max;
    (a_len, b_len, edge_len)
}

/// Rows of A's packed edge panel: when A is read in place and its last panel
/// ends inside a vector (`m mod MR` not a multiple of the lanes), that panel
/// is packed, zero-padded to whole vectors only, so that the kernel's loads
/// stay inside A; 0 when there is none (a last panel of whole vectors is
/// read in place too) or when the kernel masks the load of that one-vector
/// panel and few B panels read it (AVX-512, [`Params::masked_a`]: the
/// 10 × 128 Wᵀ of a 10-class forward pass at batch 32 is read in place).
fn edge_width<T>(p: &Params, prob: &Problem<T>) -> usize {
    let rem = prob.m % p.mr;
    // The kernel masks a one-vector tile's load; the copy still pays when
    // many B panels (more than 4) read the panel, as its loads in place
    // would straddle cache lines (k apart, not a whole vector).
    let masked = p.masked_a && rem < p.lanes && prob.n <= 4 * p.nr;
    if want_pack_a(p, prob) || rem % p.lanes == 0 || masked { 0 } else { rem.next_multiple_of(p.lanes) }
}

/// The chunks of `0..n` of `chunk` elements (the last one shorter), as
/// `(index, length)` pairs: chunk `l` starts at `l·chunk` (matrixmultiply's
/// `range_chunk`).
#[inline]
fn range_chunk(n: usize, chunk: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n.div_ceil(chunk)).map(move |l| (l, chunk.min(n - l * chunk)))
}

/// The packing buffers carved from `buf`, each 64-byte aligned: the packed
/// A block (`lens.0` elements), the packed B block (`lens.1`) and A's packed
/// edge panel (`lens.2`), as [`pack_lens`] gives them.
///
/// Panics if `buf` is shorter than [`pack_words`] says (the sizes must come
/// from the same [`Params`] and problem).
fn carve<T>(buf: &mut [u64], lens: (usize, usize, usize), words: usize) -> (*mut T, *mut T, *mut T) {
    assert!(buf.len() >= words, "GEMM scratch too small");
    let esz = core::mem::size_of::<T>();
    let base = buf.as_mut_ptr() as *mut u8;
    let abuf = base.wrapping_add(base.align_offset(64)) as *mut T;
    let bb = (abuf as *mut u8).wrapping_add(lens.0 * esz);
    let bbuf = bb.wrapping_add(bb.align_offset(64)) as *mut T;
    let eb = (bbuf as *mut u8).wrapping_add(lens.1 * esz);
    let ebuf = eb.wrapping_add(eb.align_offset(64)) as *mut T;
    (abuf, bbuf, ebuf)
}

/// One thread's GEMM over `prob`, packing into `buf` (at least
/// [`pack_words`] words): loops 5 to 3 of the BLIS nest, loops 2 and 1 being
/// [`run_block`]'s.
///
/// # Safety
/// As [`gemm_native`], for `prob`'s part of C.
unsafe fn serial<T: Real, E: Epilogue<T>>(isa: Isa, p: &Params, prob: Problem<T>, epi: &E, buf: &mut [u64]) {
    let pa = want_pack_a(p, &prob);
    let pb = want_pack_b(p, &prob);
    let ew = edge_width(p, &prob);
    let (abuf, bbuf, ebuf) = carve::<T>(buf, pack_lens(p, &prob), pack_words::<T>(p, &prob));

    // Loop 5 (jc): NC columns of B and C.
    for (l5, ncur) in range_chunk(prob.n, p.nc) {
        let jc = l5 * p.nc;
        // Loop 4 (pc): KC deep, one packed B block.
        for (l4, kcur) in range_chunk(prob.k, p.kc) {
            let pc = l4 * p.kc;
            let beta = if pc == 0 { prob.beta } else { Some(T::ONE) };
            let bsrc = prob.b.shift(pc, jc).get();
            let (b, b_panel) = if pb {
                // SAFETY: the block is inside B; the buffer holds b_len elements.
                unsafe { pack(isa, bbuf, bsrc.ptr, bsrc.cs, bsrc.rs, ncur, kcur, p.nr) };
                (Strided { ptr: bbuf as *const T, rs: p.nr as isize, cs: 1 }, (p.nr * kcur) as isize)
            } else {
                (bsrc, p.nr as isize * bsrc.cs)
            };
            // Loop 3 (ic): MC rows of A and C, one packed A block.
            for (l3, mcur) in range_chunk(prob.m, p.mc) {
                let ic = l3 * p.mc;
                let asrc = prob.a.shift(ic, pc).get();
                let (a, a_panel) = if pa {
                    // SAFETY: the block is inside A; the buffer holds a_len elements.
                    unsafe { pack(isa, abuf, asrc.ptr, asrc.rs, asrc.cs, mcur, kcur, p.mr) };
                    (Strided { ptr: abuf as *const T, rs: 1, cs: p.mr as isize }, (p.mr * kcur) as isize)
                } else {
                    // Read in place: A's rows are contiguous (`want_pack_a`).
                    (asrc, p.mr as isize)
                };
                // The partial last panel of an in-place A, packed when it
                // ends inside a vector (`edge_width`).
                let a_edge = if ew != 0 && mcur % p.mr != 0 {
                    let i0 = mcur - mcur % p.mr;
                    // SAFETY: rows i0..mcur of the block are inside A; the edge
                    // buffer holds ew·kc elements, ew ≥ mcur − i0 (the block
                    // with a partial panel is the last one, m mod MR rows).
                    unsafe { pack(isa, ebuf, asrc.at(i0, 0), asrc.rs, asrc.cs, mcur - i0, kcur, ew) };
                    ebuf as *const T
                } else {
                    core::ptr::null()
                };
                let blk = Block {
                    mc: mcur,
                    nc: ncur,
                    kc: kcur,
                    mr: p.mr,
                    nr: p.nr,
                    a,
                    a_panel,
                    a_edge,
                    edge_cs: ew as isize,
                    b,
                    b_panel,
                    a_packed: pa,
                    b_packed: pb,
                    c: prob.c.shift(ic, jc).get(),
                    alpha: prob.alpha,
                    beta,
                    i0: prob.i_off + ic,
                    j0: prob.j_off + jc,
                    last: pc + kcur == prob.k,
                };
                run_block(isa, blk, epi);
            }
        }
    }
}

/// Loops 2 and 1 over one `mc × nc` block of C for one KC pass.
#[derive(Clone, Copy)]
struct Block<T> {
    mc: usize,
    nc: usize,
    kc: usize,
    mr: usize,
    nr: usize,
    /// The A block, `mc × kc`, rows contiguous (`a.rs == 1`), in panels of
    /// MR rows `a_panel` apart.
    a: Strided<*const T>,
    a_panel: isize,
    /// Packed copy of the partial last A panel when A is read in place and
    /// that panel ends inside a vector (else NULL: also when the kernel masks
    /// that one-vector panel's load, see [`edge_width`]), `edge_cs` apart in k.
    a_edge: *const T,
    edge_cs: isize,
    /// The B block, `kc × nc`, in panels of NR columns `b_panel` apart.
    b: Strided<*const T>,
    b_panel: isize,
    /// Whether the A block is packed into zero-padded MR-row panels.
    a_packed: bool,
    /// Whether B is packed into `NR`-column panels (tiles must then follow the
    /// panels); otherwise it is read in place and tiles may be narrower.
    b_packed: bool,
    c: Strided<*mut T>,
    alpha: T,
    beta: Option<T>,
    i0: usize,
    j0: usize,
    last: bool,
}

struct BlockOp<'e, T, E, Sh>(Block<T>, &'e E, core::marker::PhantomData<Sh>);

impl<T: Real, E: Epilogue<T>, Sh: TileShape> WithToken for BlockOp<'_, T, E, Sh> {
    type Output = ();
    #[inline(always)]
    fn with_token<S: Token>(self, s: S) {
        let b = self.0;
        let l = T::lanes::<S>();
        debug_assert_eq!(b.mr, Sh::MV * l);
        debug_assert_eq!(b.nr, Sh::NR);
        // Loop 2 (jr): NR columns of the B block and C (narrower tiles at
        // the end, see `tile_cols`).
        let mut j0 = 0;
        let mut jr = 0isize;
        while j0 < b.nc {
            let n = tile_cols(b.nr, b.nc - j0, b.b_packed);
            // Loop 1 (ir): MR rows of the A block and C (a counted loop, so
            // the code around the microkernel stays as it was measured).
            let mut i0 = 0;
            let mut ir = 0isize;
            while i0 < b.mc {
                let m = b.mr.min(b.mc - i0);
                // A tile ending inside a vector reads a packed panel (A's, or
                // the edge copy), or masks its one vector's load (AVX-512):
                // never a whole vector past A's rows.
                debug_assert!(
                    m % l == 0 || b.a_packed || !b.a_edge.is_null() || (S::AVX512F && m < l),
                    "a partial A panel read in place without a mask"
                );
                let a = if m < b.mr && !b.a_edge.is_null() {
                    Strided { ptr: b.a_edge, rs: 1, cs: b.edge_cs }
                } else {
                    Strided { ptr: b.a.ptr.wrapping_offset(ir * b.a_panel), ..b.a }
                };
                let t = Tile {
                    k: b.kc,
                    a,
                    b: Strided {
                        ptr: if b.b_packed { b.b.ptr.wrapping_offset(jr * b.b_panel) } else { b.b.at(0, j0) },
                        ..b.b
                    },
                    c: b.c.shift(i0, j0),
                    m,
                    n,
                    alpha: b.alpha,
                    beta: b.beta,
                    i0: b.i0 + i0,
                    j0: b.j0 + j0,
                    last: b.last,
                };
                // SAFETY: the tile lies inside the validated block.
                unsafe { Sh::select(m.div_ceil(l), t.n, Ukr { s, t: &t, e: self.1 }) };
                i0 += m;
                ir += 1;
            }
            j0 += n;
            jr += 1;
        }
    }
}

/// Columns of the next tile when `rem` columns of the block are left.
///
/// A tile narrower than 4 columns has too few accumulators (`2·n`) to cover
/// the FMA latency and runs at a fraction of the rate of a full one: 32 columns
/// of 6-column tiles would end with a 2-column tile costing about as much as a
/// 4-column one. So when B is read in place (tiles need not follow packed
/// panels) and the last `NR + r` columns have `0 < r < 4`, they are split into
/// two tiles of about equal width (6+2 → 4+4, 6+3 → 5+4). Every element's
/// dot product runs in the same order whatever its tile, so the bits do not
/// change.
#[inline(always)]
fn tile_cols(nr: usize, rem: usize, b_packed: bool) -> usize {
    if !b_packed && nr >= 6 && rem > nr && rem < nr + 4 { rem.div_ceil(2) } else { nr.min(rem) }
}

/// Loops 2 and 1 over `blk`, with the token and the register tile of `isa`'s
/// row of the ISA table.
fn run_block<T: Real, E: Epilogue<T>>(isa: Isa, blk: Block<T>, e: &E) {
    struct Run<'e, T, E>(Block<T>, &'e E);
    impl<T: Real, E: Epilogue<T>> IsaVisitor for Run<'_, T, E> {
        type Output = ();
        #[inline(always)]
        fn visit<S: IsaToken>(self) {
            let s = S::detect().expect("a GEMM block for an ISA this CPU lacks");
            crate::simd::vectorize(s, BlockOp::<T, E, S::Tile>(self.0, self.1, core::marker::PhantomData))
        }
    }
    isa.visit(Run(blk, e))
}
