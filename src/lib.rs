//! devcg as a library: the differential runner behind the CLI and the
//! random generators the tests share.

pub mod exhaustive;
pub mod gen;
pub mod verify;
