//! ttrpc's envelope (protobuf package `ttrpc`), in which `shim_exits`
//! carries one unary call to a shim: a [`Request`] in a request frame, a
//! [`Response`] in the response frame. Only the frame header (length,
//! stream id, type, flags) is outside protobuf; `shim_exits` writes it.

/// A call: which method of which service, with the request message encoded
/// in `payload`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct Request {
    /// The service's full name (`containerd.task.v3.Task`).
    #[prost(string, tag = "1")]
    pub service: String,
    /// The method (`State`).
    #[prost(string, tag = "2")]
    pub method: String,
    /// The request message's bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
    /// The call's deadline, in nanoseconds from now: libctd's wait for the
    /// shim.
    #[prost(int64, tag = "4")]
    pub timeout_nano: i64,
    /// Metadata: libctd sends containerd's namespace under
    /// `containerd-namespace-ttrpc`, as containerd does.
    #[prost(message, repeated, tag = "5")]
    pub metadata: Vec<KeyValue>,
}

/// One metadata entry of a [`Request`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct KeyValue {
    /// The key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// The answer: a status when the call failed, the response message's bytes
/// when it did not.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct Response {
    /// The failure, if any (a code of 0 is none).
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    /// The response message's bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
}

/// A failed call's status (the message is `google.rpc.Status`): libctd
/// reads the code and the message (its details are skipped). A shim that
/// does not serve `containerd.task.v3` answers with one, and libctd asks
/// again with v2.
#[derive(Clone, PartialEq, Eq, prost::Message)]
#[non_exhaustive]
pub(crate) struct Status {
    /// The gRPC status code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong, in the shim's words.
    #[prost(string, tag = "2")]
    pub message: String,
}

package!(
    "ttrpc":
    Request = "Request",
    KeyValue = "KeyValue",
    Response = "Response",
);
package!("google.rpc": Status = "Status");

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::proto::golden::both_ways;

    /// A `Request` with two metadata entries.
    const REQUEST: &[u8] = &[
        0x0a, 0x09, 0x73, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65, 0x2d, 0x31, 0x12, 0x08, 0x6d, 0x65,
        0x74, 0x68, 0x6f, 0x64, 0x2d, 0x32, 0x1a, 0x02, 0x03, 0x04, 0x20, 0x84, 0x80, 0x80, 0x80,
        0x80, 0x01, 0x2a, 0x10, 0x0a, 0x05, 0x6b, 0x65, 0x79, 0x2d, 0x36, 0x12, 0x07, 0x76, 0x61,
        0x6c, 0x75, 0x65, 0x2d, 0x37, 0x2a, 0x10, 0x0a, 0x05, 0x6b, 0x65, 0x79, 0x2d, 0x38, 0x12,
        0x07, 0x76, 0x61, 0x6c, 0x75, 0x65, 0x2d, 0x39,
    ];
    /// A `Response` whose status has two details.
    const RESPONSE: &[u8] = &[
        0x0a, 0x31, 0x08, 0x03, 0x12, 0x09, 0x6d, 0x65, 0x73, 0x73, 0x61, 0x67, 0x65, 0x2d, 0x33,
        0x1a, 0x10, 0x0a, 0x0a, 0x74, 0x79, 0x70, 0x65, 0x5f, 0x75, 0x72, 0x6c, 0x2d, 0x35, 0x12,
        0x02, 0x06, 0x07, 0x1a, 0x10, 0x0a, 0x0a, 0x74, 0x79, 0x70, 0x65, 0x5f, 0x75, 0x72, 0x6c,
        0x2d, 0x37, 0x12, 0x02, 0x08, 0x09, 0x12, 0x02, 0x09, 0x0a,
    ];

    #[test]
    fn the_envelope_keeps_its_bytes() {
        let request = Request {
            service: "service-1".into(),
            method: "method-2".into(),
            payload: vec![3, 4],
            timeout_nano: (1 << 35) + 4,
            metadata: vec![
                KeyValue {
                    key: "key-6".into(),
                    value: "value-7".into(),
                },
                KeyValue {
                    key: "key-8".into(),
                    value: "value-9".into(),
                },
            ],
        };
        both_ways(&request, REQUEST);
        // Decoded only: the status's two details are skipped.
        let response = Response {
            status: Some(Status {
                code: 3,
                message: "message-3".into(),
            }),
            payload: vec![9, 10],
        };
        assert_eq!(Response::decode(RESPONSE).unwrap(), response);
    }
}
