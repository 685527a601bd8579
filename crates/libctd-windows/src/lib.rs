//! placeholder
pub mod convert;
pub mod error;
pub mod hcs;
pub mod schema;
