//! The protobuf messages libctd exchanges with containerd and its shims that
//! the `containerd-client` crate does not provide, declared here by hand with
//! `prost`'s derive: the runc shim's options ([`runc`]), the cgroup metrics
//! containerd reports ([`cgroups_v1`], [`cgroups_v2`]), and what
//! `shim_exits` needs to ask a shim directly ([`shim`], [`ttrpc`]).
//!
//! Each message declares the fields libctd reads or sends, with the field
//! numbers and types of the wire format; prost skips the fields a message
//! does not declare when it decodes. A message that declares only some of
//! its fields is `#[non_exhaustive]`, built with `..Default::default()`. A
//! message libctd decodes from a caller's bytes and encodes again declares
//! every field, so that nothing the caller set is lost ([`runc::Options`]).
//! Each has a [`prost::Name`] (its protobuf package and name): `convert.rs`
//! sends the full name as an `Any`'s type URL and checks it on what it
//! receives.
//!
//! Each file's tests hold golden bytes: each message encoded with every
//! field of the wire message set (those not declared here included, for a
//! message libctd only decodes), which these declarations must give or
//! read.

/// Implements [`prost::Name`] for the messages of one protobuf package: each
/// Rust type with its name in the package.
macro_rules! package {
    ($package:literal: $($ty:ident = $name:literal),+ $(,)?) => {
        $(
            impl prost::Name for $ty {
                const NAME: &'static str = $name;
                const PACKAGE: &'static str = $package;
            }
        )+
    };
}

pub(crate) mod cgroups_v1;
pub(crate) mod cgroups_v2;
pub(crate) mod runc;
pub(crate) mod shim;
pub(crate) mod ttrpc;

/// The golden-byte checks the files' tests share.
#[cfg(test)]
mod golden {
    use std::fmt::Debug;

    use prost::Message;

    /// The base of the u64 values in golden messages: above `u32::MAX`, so
    /// that a field declared too narrow fails.
    pub(super) const B: u64 = 1 << 33;

    /// `value` encodes to exactly `bytes`, and `bytes` decode to `value`.
    pub(super) fn both_ways<M: Message + Default + PartialEq + Debug>(value: &M, bytes: &[u8]) {
        assert_eq!(value.encode_to_vec(), bytes);
        assert_eq!(&M::decode(bytes).unwrap(), value);
    }
}
