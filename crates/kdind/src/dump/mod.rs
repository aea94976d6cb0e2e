//! Cluster dumps: the logs and state of every node gathered into one text, so that a failed
//! run on CI can be looked at later from nothing but its log.
//!
//! [`format`] holds the pure part: the layout of a dump, its compressed base64 form for logs,
//! splitting it back into files, and redacting secrets before anything is printed.

pub mod collect;
pub mod format;
