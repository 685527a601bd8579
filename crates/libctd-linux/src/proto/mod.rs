//! Protobuf messages generated from `crates/libctd-linux/proto/` by
//! `cargo xtask protos` (prost-build, with `prost::Name` impls): the runc
//! shim's options and the cgroup v1/v2 metrics, which containerd-client does
//! not compile. Only this file is hand-written: the `*.rs` files beside it
//! are generated and must not be edited (see `proto/README.md`).

// Generated code: documented by the .proto comments where upstream has them,
// public within this private module, and not all of it is read.
#![allow(
    missing_docs,
    unreachable_pub,
    dead_code,
    clippy::all,
    clippy::pedantic,
    clippy::nursery
)]

/// The runc shim's messages (`containerd.runc.v1`).
pub(crate) mod runc {
    pub(crate) mod v1 {
        include!("containerd.runc.v1.rs");
    }
}

/// containerd/cgroups' metrics (`io.containerd.cgroups.v1` and `.v2`).
pub(crate) mod cgroups {
    pub(crate) mod v1 {
        include!("io.containerd.cgroups.v1.rs");
    }
    pub(crate) mod v2 {
        include!("io.containerd.cgroups.v2.rs");
    }
}
