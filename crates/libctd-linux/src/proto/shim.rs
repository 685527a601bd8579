//! The messages of the runc shim's task service that `shim_exits` uses to
//! ask a shim how its init process ended (protobuf package
//! `containerd.task.v3`). The shims of containerd 2.x serve the call as
//! `containerd.task.v3.Task/State`, those of 1.6 and 1.7 as
//! `containerd.task.v2.Task/State`; the messages are the same on the wire.

use prost_types::Timestamp;

/// The question: the state of one process of a task.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct StateRequest {
    /// The container (task) id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The exec id; libctd leaves it empty, which asks about the init
    /// process.
    #[prost(string, tag = "2")]
    pub exec_id: String,
}

/// The answer. libctd reads only whether the process stopped and how; the
/// shim's other fields (ids, bundle, stdio paths, terminal) are skipped.
#[derive(Clone, PartialEq, Eq, prost::Message)]
#[non_exhaustive]
pub(crate) struct StateResponse {
    /// The process's pid: an exit is kept only for the task whose init had
    /// this pid.
    #[prost(uint32, tag = "3")]
    pub pid: u32,
    /// containerd's task status as its enum value; libctd keeps the exit
    /// only when it is STOPPED (3).
    #[prost(int32, tag = "4")]
    pub status: i32,
    /// The exit status the shim saw.
    #[prost(uint32, tag = "9")]
    pub exit_status: u32,
    /// When the process exited.
    #[prost(message, optional, tag = "10")]
    pub exited_at: Option<Timestamp>,
}

package!(
    "containerd.task.v3":
    StateRequest = "StateRequest",
    StateResponse = "StateResponse",
);

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::proto::golden::both_ways;

    const STATE_REQUEST: &[u8] = &[
        0x0a, 0x04, 0x69, 0x64, 0x2d, 0x31, 0x12, 0x09, 0x65, 0x78, 0x65, 0x63, 0x5f, 0x69, 0x64,
        0x2d, 0x32,
    ];
    /// A `StateResponse` with all eleven of the shim's fields set.
    const STATE_RESPONSE: &[u8] = &[
        0x0a, 0x04, 0x69, 0x64, 0x2d, 0x31, 0x12, 0x08, 0x62, 0x75, 0x6e, 0x64, 0x6c, 0x65, 0x2d,
        0x32, 0x18, 0xcb, 0x01, 0x20, 0x03, 0x2a, 0x07, 0x73, 0x74, 0x64, 0x69, 0x6e, 0x2d, 0x35,
        0x32, 0x08, 0x73, 0x74, 0x64, 0x6f, 0x75, 0x74, 0x2d, 0x36, 0x3a, 0x08, 0x73, 0x74, 0x64,
        0x65, 0x72, 0x72, 0x2d, 0x37, 0x40, 0x01, 0x48, 0xd1, 0x01, 0x52, 0x09, 0x08, 0x8a, 0xe2,
        0xcf, 0xaa, 0x06, 0x10, 0xf2, 0x07, 0x5a, 0x0a, 0x65, 0x78, 0x65, 0x63, 0x5f, 0x69, 0x64,
        0x2d, 0x31, 0x31,
    ];

    #[test]
    fn the_request_keeps_its_bytes() {
        let request = StateRequest {
            id: "id-1".into(),
            exec_id: "exec_id-2".into(),
        };
        both_ways(&request, STATE_REQUEST);
    }

    #[test]
    fn a_whole_response_gives_the_fields_libctd_reads() {
        let state = StateResponse::decode(STATE_RESPONSE).unwrap();
        let want = StateResponse {
            pid: 203,
            status: 3,
            exit_status: 209,
            exited_at: Some(Timestamp {
                seconds: 1_700_000_010,
                nanos: 1010,
            }),
        };
        assert_eq!(state, want);
    }
}
