//! libjitrt: an in-process JIT linker and code-removal runtime.
//!
//! The crate has three tiers, each in its own module, and they meet only
//! through the public Rust API of the tier below:
//!
//! - [`orc`]: LLVM ORC v2's resource-tracking model (sessions, dylibs,
//!   symbols and their states, resource trackers, materialization units and
//!   responsibilities, resource managers, lookup, generators, dispatch). It
//!   knows nothing of object formats and contains no unsafe code.
//! - `link`: the object linker. It turns relocatable objects into
//!   materialization units, links them into JIT memory and is a resource
//!   manager of the session, so removing a tracker unmaps its code.
//! - `ffi`: the `extern "C"` surface described in `include/jitrt.h`. It
//!   converts handles, strings and errors and catches panics; no logic lives
//!   there.
//!
//! Rust programs use [`orc`] (and the linker's layer) directly; C, C++ and
//! Python programs use `libjitrt.so`/`libjitrt.a` through the header.

pub mod orc;

pub mod link;

pub mod ffi;
