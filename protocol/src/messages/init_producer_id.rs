//! InitProducerId (key 22): a producer id and epoch for an idempotent (or, later, transactional)
//! producer.

wire_struct! {
    pub struct InitProducerIdRequest {
        transactional_id: Option<String> => 0..;
        transaction_timeout_ms: i32 => 0..;
        producer_id: i64 => 3.., default -1;
        producer_epoch: i16 => 3.., default -1;
    }
}

wire_struct! {
    pub struct InitProducerIdResponse {
        throttle_time_ms: i32 => 0..;
        error_code: i16 => 0..;
        producer_id: i64 => 0.., default -1;
        producer_epoch: i16 => 0..;
    }
}

crate::api!(22, "InitProducerId", 0..=5, flexible 2, InitProducerIdRequest, InitProducerIdResponse);
