//! [`reduce_local`]: one reduction step on local data, no communication
//! (`MPI_Reduce_local`); also what the criterion benchmark of the kernels measures.
//!
//! Invariant: it applies exactly the kernel the collectives apply.

use bytemuck::Pod;

use super::op::Reduction;
use crate::error::{Error, Result};

/// Sets `inout[i] = input[i] ⊕ inout[i]` for every `i` (`MPI_Reduce_local`).
///
/// ```
/// use oxmpi::Op;
/// let mut acc = [1.0f32, 2.0];
/// oxmpi::reduce_local(&[10.0, 20.0], &mut acc, Op::Sum)?;
/// assert_eq!(acc, [11.0, 22.0]);
/// # Ok::<(), oxmpi::Error>(())
/// ```
pub fn reduce_local<T: Pod, O: Reduction<T>>(input: &[T], inout: &mut [T], op: O) -> Result<()> {
    if input.len() != inout.len() {
        return Err(Error::InvalidArgument(format!(
            "reduce_local: input holds {} elements, inout {}; they must be equal",
            input.len(),
            inout.len()
        )));
    }
    op.into_combine().combine(
        bytemuck::cast_slice(input),
        bytemuck::cast_slice_mut(inout),
        true,
    );
    Ok(())
}
