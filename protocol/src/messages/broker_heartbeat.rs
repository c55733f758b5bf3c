//! BrokerHeartbeat (key 63): a registered broker keeps its lease with the controller, reports
//! how far it has read the metadata log, and learns whether it is fenced or may shut down.

use crate::wire::Uuid;

wire_struct! {
    pub struct BrokerHeartbeatRequest {
        broker_id: i32 => 0..;
        broker_epoch: i64 => 0.., default -1;
        current_metadata_offset: i64 => 0..;
        want_fence: bool => 0..;
        want_shut_down: bool => 0..;
        /// Log directories that failed (KIP-858); tagged, so sent only when there are some.
        offline_log_dirs: Vec<Uuid> => 1.., tag 0;
    }
}

wire_struct! {
    pub struct BrokerHeartbeatResponse {
        throttle_time_ms: i32 => 0..;
        error_code: i16 => 0..;
        is_caught_up: bool => 0..;
        /// A broker is fenced until the controller says otherwise, hence the default.
        is_fenced: bool => 0.., default true;
        should_shut_down: bool => 0..;
    }
}

crate::api!(
    63,
    "BrokerHeartbeat",
    0..=1,
    flexible 0,
    BrokerHeartbeatRequest,
    BrokerHeartbeatResponse
);
