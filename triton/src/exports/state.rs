//! One way to keep a Rust object as the `void*` state Triton holds for a backend, model or
//! model instance: boxed in, borrowed while it lives, taken back (and dropped) on finalize.
//! Every entry point goes through these, so none repeats the raw-pointer handling.

use crate::ffi::*;
use crate::triton::{check, Error};
use std::ffi::c_void;
use std::ptr;

/// A Triton object that carries one backend-owned state pointer, and the Rust type stored
/// there (one type per kind of object, so a pointer is never read back as another type).
pub(super) trait Holder: Copy {
    /// What is stored.
    type State;
    /// The getter's name, for error messages.
    const GET: &'static str;
    /// The setter's name, for error messages.
    const SET: &'static str;
    /// Calls the object's `*State` getter.
    ///
    /// # Safety
    /// `self` is a live object Triton handed us.
    unsafe fn get(self, state: *mut *mut c_void) -> *mut TRITONSERVER_Error;
    /// Calls the object's `*SetState`.
    ///
    /// # Safety
    /// As [`Holder::get`].
    unsafe fn set(self, state: *mut c_void) -> *mut TRITONSERVER_Error;
}

/// Implements [`Holder`] for one Triton object type with its getter and setter.
macro_rules! holder {
    ($object:ty, $state:ty, $get:ident, $set:ident) => {
        impl Holder for *mut $object {
            type State = $state;
            const GET: &'static str = stringify!($get);
            const SET: &'static str = stringify!($set);
            unsafe fn get(self, state: *mut *mut c_void) -> *mut TRITONSERVER_Error {
                $get(self, state)
            }
            unsafe fn set(self, state: *mut c_void) -> *mut TRITONSERVER_Error {
                $set(self, state)
            }
        }
    };
}

holder!(
    TRITONBACKEND_Backend,
    super::backend::BackendState,
    TRITONBACKEND_BackendState,
    TRITONBACKEND_BackendSetState
);
holder!(
    TRITONBACKEND_Model,
    super::model::ModelState,
    TRITONBACKEND_ModelState,
    TRITONBACKEND_ModelSetState
);
holder!(
    TRITONBACKEND_ModelInstance,
    super::instance::InstanceState,
    TRITONBACKEND_ModelInstanceState,
    TRITONBACKEND_ModelInstanceSetState
);

/// Hands `value` to `owner` as its state. If Triton refuses it, it is dropped here.
///
/// # Safety
/// `owner` is a live object Triton handed us, without a state yet.
pub(super) unsafe fn store<O: Holder>(owner: O, value: O::State) -> Result<(), Error> {
    let raw = Box::into_raw(Box::new(value));
    if let Err(e) = check(owner.set(raw.cast()), O::SET) {
        drop(Box::from_raw(raw));
        return Err(e);
    }
    Ok(())
}

/// The raw state pointer of `owner` (null when it has none).
unsafe fn raw<O: Holder>(owner: O) -> Result<*mut O::State, Error> {
    let mut state = ptr::null_mut();
    check(owner.get(&mut state), O::GET)?;
    Ok(state.cast())
}

/// Borrows `owner`'s state, `None` when it has none (its initialize failed).
///
/// # Safety
/// `owner` is live, and its state (if any) was put there by [`store`] and is not taken back
/// while the borrow lasts (Triton finalizes an object only after its last use).
pub(super) unsafe fn borrow<'a, O: Holder>(owner: O) -> Result<Option<&'a O::State>, Error> {
    Ok(raw(owner)?.as_ref())
}

/// Takes `owner`'s state back, to be dropped by the caller; `None` when it had none.
///
/// # Safety
/// As [`borrow`], and once per object (on its finalize): Triton's pointer is not cleared.
pub(super) unsafe fn take<O: Holder>(owner: O) -> Result<Option<Box<O::State>>, Error> {
    let state = raw(owner)?;
    Ok((!state.is_null()).then(|| Box::from_raw(state)))
}
