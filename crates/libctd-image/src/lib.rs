#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
pub mod archive;
pub mod config;
pub mod descriptor;
pub mod digest;
mod docker;
pub mod image;
mod oci;
pub mod platform;
pub mod reference;
pub mod sink;
pub mod tar;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
