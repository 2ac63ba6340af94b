//! Passes over link graphs, in the order a link batch runs them:
//!
//! 1. [`tables`]: GOT entries, stubs, TLS indexes and the `atexit` thunk
//!    (right after a format built the graph).
//! 2. [`layout`]: every block of the batch placed by permission, the range
//!    allocated once, the bytes copied, the graphs' own addresses known.
//! 3. relaxation (the architecture's, see [`optimize`]) once externals
//!    have addresses.
//! 4. [`fixup`]: every edge evaluated and written.

pub(crate) mod fixup;
pub(crate) mod layout;
pub(crate) mod tables;

use super::arch::{self, Arch};
use super::graph::LinkGraph;

/// The architecture's relaxations over `g`, whose memory `buf` is laid
/// out as `placement` says.
pub(crate) fn optimize(g: &mut LinkGraph, buf: &mut [u8], placement: layout::Placement) {
    match g.arch {
        Arch::X86_64 => arch::x86_64::optimize(g, buf, placement),
        Arch::Aarch64 => arch::aarch64::optimize(g, buf, placement),
    }
}
