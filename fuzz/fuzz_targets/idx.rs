//! The IDX reader (raw and gzip) on arbitrary bytes: an error or dimensions
//! that match the data, never a panic or a huge allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nnkern::nn::data::parse_idx;

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = parse_idx(data) {
        let n = idx.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).expect("dims overflow accepted");
        assert_eq!(n, idx.data.len());
    }
});
