//! The CSV reader on arbitrary text and label columns: an error or a dataset
//! whose shape is consistent, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nnkern::nn::data::parse_csv;

fuzz_target!(|data: &[u8]| {
    let Some((&col, rest)) = data.split_first() else { return };
    let label_column = col as i8 as isize;
    let text = String::from_utf8_lossy(rest);
    if let Ok(d) = parse_csv(&text, label_column) {
        assert_eq!(d.x.len(), d.n * d.d);
        assert_eq!(d.y.len(), d.n);
        assert!(d.x.iter().chain(&d.y).all(|v| v.is_finite()), "non-finite value accepted");
    }
});
