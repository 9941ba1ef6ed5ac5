//! Per-call options: the one spelling every kernel family takes. A family has
//! a plain function (`activation_forward`, `sgd_step`, …) that runs with
//! [`Options::default`], and a `*_with` twin taking `&Options` last.
//! [`crate::gemm::GemmOptions`] is these options plus the GEMM backend.

use crate::par::Par;
use crate::simd::Isa;

/// Instruction set and thread policy of one call (the defaults: the ISA kernels
/// use now and the process-wide thread count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Instruction set; `None` uses [`Isa::current`]. An ISA this CPU lacks is
    /// an error.
    pub isa: Option<Isa>,
    /// Thread policy (kernels that run on one thread, such as the
    /// activations, ignore it).
    pub par: Par,
}

impl Options {
    /// The instruction set these options ask for: [`Options::isa`], or
    /// [`Isa::current`]; one this CPU lacks is an error.
    pub(crate) fn resolve_isa(&self) -> crate::Result<Isa> {
        match self.isa {
            Some(i) if !i.is_available() => {
                Err(crate::Error::Unsupported(format!("ISA '{}' is not available on this CPU", i.name())))
            }
            Some(i) => Ok(i),
            None => Ok(Isa::current()),
        }
    }
}
