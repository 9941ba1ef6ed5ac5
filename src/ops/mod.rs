//! Neural-network kernels built on [`crate::simd`] and [`crate::gemm`]:
//! activations ([`act`]), losses ([`loss`]) and fused dense-layer steps
//! ([`fused`]). The deterministic reductions are [`crate::simd::reduce`].
//!
//! All f32, row-major, contiguous rows (`rows × cols`, row `r` at `r·cols`).
//! Reductions run in a fixed order, so results do not depend on the thread
//! count.

pub mod act;
pub mod fused;
pub mod loss;

pub use act::{Activation, activation_backward, activation_forward};
pub use fused::{DenseGrads, DenseShape, dense_backward, dense_forward};
pub use loss::{Loss, softmax_cross_entropy, softmax_cross_entropy_sparse};
