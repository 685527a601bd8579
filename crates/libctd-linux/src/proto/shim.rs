//! The messages of the runc shim's task service that `shim_exits` uses to
//! ask a shim how its init process ended, or to wait for its end (protobuf
//! package `containerd.task.v3`). The shims of containerd 2.x serve the
//! calls as `containerd.task.v3.Task/State` and `/Wait`, those of 1.6 and
//! 1.7 as `containerd.task.v2.Task/...`; the messages are the same on the
//! wire.

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

/// The wait for a process's end: answered once it has exited (at once
/// when it had).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct WaitRequest {
    /// The container (task) id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The exec id; empty for the init process, the only one libctd waits
    /// for.
    #[prost(string, tag = "2")]
    pub exec_id: String,
}

/// How the process ended: all the answer holds.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct WaitResponse {
    /// Its exit status.
    #[prost(uint32, tag = "1")]
    pub exit_status: u32,
    /// When it exited.
    #[prost(message, optional, tag = "2")]
    pub exited_at: Option<Timestamp>,
}

package!(
    "containerd.task.v3":
    StateRequest = "StateRequest",
    StateResponse = "StateResponse",
    WaitRequest = "WaitRequest",
    WaitResponse = "WaitResponse",
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
    fn the_wait_messages_keep_their_bytes() {
        let request = WaitRequest {
            id: "id-1".into(),
            exec_id: "e".into(),
        };
        both_ways(&request, b"\x0a\x04id-1\x12\x01e");
        // exit_status 1: 137, exited_at 2: {seconds 1: 7}.
        let response = WaitResponse {
            exit_status: 137,
            exited_at: Some(Timestamp {
                seconds: 7,
                nanos: 0,
            }),
        };
        both_ways(&response, &[0x08, 0x89, 0x01, 0x12, 0x02, 0x08, 0x07]);
    }

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
