//! BrokerRegistration (key 62): a starting broker announces itself, its listeners and the
//! feature levels it supports to the controller, which answers with the broker's epoch.

use crate::wire::Uuid;

wire_struct! {
    pub struct BrokerRegistrationRequest {
        broker_id: i32 => 0..;
        cluster_id: String => 0..;
        /// New at every process start, so the controller can tell a restart from a duplicate id.
        incarnation_id: Uuid => 0..;
        listeners: Vec<BrokerRegistrationListener> => 0..;
        /// v4 changed no field: it only allows a feature's minimum to be 0 (v0-v3 brokers omit
        /// such features).
        features: Vec<BrokerRegistrationFeature> => 0..;
        rack: Option<String> => 0..;
        is_migrating_zk_broker: bool => 1..;
        log_dirs: Vec<Uuid> => 2..;
        /// The epoch the broker had before a clean shutdown, -1 if none (KIP-966).
        previous_broker_epoch: i64 => 3.., default -1;
    }
}

wire_struct! {
    pub struct BrokerRegistrationListener {
        name: String => 0..;
        host: String => 0..;
        port: u16 => 0..;
        security_protocol: i16 => 0..;
    }
}

wire_struct! {
    pub struct BrokerRegistrationFeature {
        name: String => 0..;
        min_supported_version: i16 => 0..;
        max_supported_version: i16 => 0..;
    }
}

wire_struct! {
    pub struct BrokerRegistrationResponse {
        throttle_time_ms: i32 => 0..;
        error_code: i16 => 0..;
        broker_epoch: i64 => 0.., default -1;
    }
}

crate::api!(
    62,
    "BrokerRegistration",
    0..=4,
    flexible 0,
    BrokerRegistrationRequest,
    BrokerRegistrationResponse
);
