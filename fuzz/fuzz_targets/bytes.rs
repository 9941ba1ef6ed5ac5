//! A cursor that turns the fuzzer's bytes into parameters (zeros once exhausted).
#![allow(dead_code)]

pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn u64(&mut self) -> u64 {
        (self.u32() as u64) | ((self.u32() as u64) << 32)
    }
    /// `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.u8() as usize % n
    }
    pub fn flag(&mut self, one_in: u8) -> bool {
        self.u8() % one_in == 0
    }
    /// A value for data: mostly small integers, sometimes NaN, ±Inf, huge or tiny.
    pub fn value(&mut self) -> f32 {
        match self.u8() {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => 3.0e38,
            4 => 1.0e-40,
            5 => -0.0,
            b => (b % 9) as f32 - 4.0,
        }
    }
    /// A value that is always finite.
    pub fn finite(&mut self) -> f32 {
        (self.u8() % 17) as f32 * 0.25 - 2.0
    }
    pub fn rest(&self) -> &[u8] {
        self.0
    }
}
