//! Protobuf messages generated from `crates/libctd-linux/proto/` by
//! `cargo xtask protos` (prost-build, with `prost::Name` impls): the runc
//! shim's options, the cgroup v1/v2 metrics, the shim task service's State
//! messages and ttrpc's envelope, none of which containerd-client compiles. Only this file is hand-written: the `*.rs` files beside it
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

/// The runc shim's task service (`containerd.task.v3`; v2's State messages
/// are the same on the wire).
pub(crate) mod task {
    pub(crate) mod v3 {
        include!("containerd.task.v3.rs");
    }
}

/// ttrpc's request and response envelopes (protobuf package `grpc`).
pub(crate) mod ttrpc {
    include!("grpc.rs");
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

#[cfg(test)]
mod golden;
