#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};
use tessera_core::{check, Float, InputError};

pub use realfft;
pub use rustfft;

/// Errors of this crate: a plan length that cannot be planned.
pub type FftError = InputError;

thread_local! {
    static REAL_F32: RefCell<RealFftPlanner<f32>> = RefCell::new(RealFftPlanner::new());
    static REAL_F64: RefCell<RealFftPlanner<f64>> = RefCell::new(RealFftPlanner::new());
    static COMPLEX_F32: RefCell<FftPlanner<f32>> = RefCell::new(FftPlanner::new());
    static COMPLEX_F64: RefCell<FftPlanner<f64>> = RefCell::new(FftPlanner::new());
}

/// The longest plan this crate builds: plans allocate twiddle tables (and, for large prime
/// factors, longer inner transforms) proportional to the length, so a length from untrusted
/// input is checked before anything is allocated. Above every length the tessera crates use
/// (tessera-spectro's `MAX_N_FFT` is 2²⁴).
pub const MAX_LEN: usize = 1 << 26;

fn check_length(len: usize) -> Result<(), FftError> {
    check::positive_size("len", len)?;
    check::size_at_most("len", len, MAX_LEN)?;
    Ok(())
}

/// Hands a plan built for the concrete type back as the caller's `F`. `Float` is sealed to
/// `f32` and `f64` and the caller picked the planner by `F::NAME`, so the types are equal and
/// the downcast cannot fail; the plan travels through `Any` because Rust cannot see that.
fn as_plan_of<P: ?Sized + 'static>(plan: Box<dyn Any>) -> Arc<P> {
    match plan.downcast::<Arc<P>>() {
        Ok(plan) => *plan,
        Err(_) => unreachable!("Float is sealed to f32 and f64, and the planner matched F::NAME"),
    }
}

// The planners are touched only from these non-generic functions, and they are never inlined:
// their code (every butterfly of `rustfft`) is then compiled in this crate alone. Generic
// wrappers that called the planners directly would be monomorphised again in every calling
// crate, which is what this crate exists to avoid.
macro_rules! planner_function {
    ($name:ident, $planner:ident, $method:ident) => {
        #[inline(never)]
        fn $name(len: usize) -> Box<dyn Any> {
            Box::new($planner.with(|planner| planner.borrow_mut().$method(len)))
        }
    };
}

planner_function!(real_forward_f32, REAL_F32, plan_fft_forward);
planner_function!(real_forward_f64, REAL_F64, plan_fft_forward);
planner_function!(real_inverse_f32, REAL_F32, plan_fft_inverse);
planner_function!(real_inverse_f64, REAL_F64, plan_fft_inverse);
planner_function!(forward_f32, COMPLEX_F32, plan_fft_forward);
planner_function!(forward_f64, COMPLEX_F64, plan_fft_forward);
planner_function!(inverse_f32, COMPLEX_F32, plan_fft_inverse);
planner_function!(inverse_f64, COMPLEX_F64, plan_fft_inverse);

fn plan_for<F: Float, P: ?Sized + 'static>(
    len: usize,
    plan_f32: fn(usize) -> Box<dyn Any>,
    plan_f64: fn(usize) -> Box<dyn Any>,
) -> Result<Arc<P>, FftError> {
    check_length(len)?;
    let plan = if F::NAME == "f32" {
        plan_f32(len)
    } else {
        plan_f64(len)
    };
    Ok(as_plan_of(plan))
}

/// A real-to-complex forward plan of length `len` (output `len / 2 + 1` bins).
pub fn real_forward<F: Float>(len: usize) -> Result<Arc<dyn RealToComplex<F>>, FftError> {
    plan_for::<F, _>(len, real_forward_f32, real_forward_f64)
}

/// A complex-to-real inverse plan of length `len` (input `len / 2 + 1` bins), unnormalised.
pub fn real_inverse<F: Float>(len: usize) -> Result<Arc<dyn ComplexToReal<F>>, FftError> {
    plan_for::<F, _>(len, real_inverse_f32, real_inverse_f64)
}

/// A complex forward plan of length `len` (kernel $e^{-2\pi i t k / n}$).
pub fn forward<F: Float>(len: usize) -> Result<Arc<dyn Fft<F>>, FftError> {
    plan_for::<F, _>(len, forward_f32, forward_f64)
}

/// A complex inverse plan of length `len` (kernel $e^{+2\pi i t k / n}$), unnormalised.
pub fn inverse<F: Float>(len: usize) -> Result<Arc<dyn Fft<F>>, FftError> {
    plan_for::<F, _>(len, inverse_f32, inverse_f64)
}
