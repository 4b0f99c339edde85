//! The shared tier (Redis L2): its protocol state machines, with no transport and no runtime.

pub mod breaker;
pub mod recovery;
pub mod scripts;
