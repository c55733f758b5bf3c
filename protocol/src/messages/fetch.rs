//! Fetch (key 1): consumers and followers read record batches from partitions.
//! Topics are addressed by name up to v12, the highest version Sluice offers.

use bytes::Bytes;

use super::common::LeaderIdAndEpoch;

wire_struct! {
    pub struct FetchRequest {
        cluster_id: Option<String> => 12.., tag 0;
        replica_id: i32 => 0.., default -1;
        max_wait_ms: i32 => 0..;
        min_bytes: i32 => 0..;
        max_bytes: i32 => 3.., default i32::MAX;
        isolation_level: i8 => 4..;
        session_id: i32 => 7..;
        session_epoch: i32 => 7.., default -1;
        topics: Vec<FetchRequestTopic> => 0..;
        forgotten_topics_data: Vec<FetchRequestForgottenTopic> => 7..;
        rack_id: String => 11..;
    }
}

wire_struct! {
    pub struct FetchRequestTopic {
        topic: String => 0..;
        partitions: Vec<FetchRequestPartition> => 0..;
    }
}

wire_struct! {
    pub struct FetchRequestPartition {
        partition: i32 => 0..;
        current_leader_epoch: i32 => 9.., default -1;
        fetch_offset: i64 => 0..;
        last_fetched_epoch: i32 => 12.., default -1;
        log_start_offset: i64 => 5.., default -1;
        partition_max_bytes: i32 => 0..;
    }
}

wire_struct! {
    pub struct FetchRequestForgottenTopic {
        topic: String => 7..;
        partitions: Vec<i32> => 7..;
    }
}

wire_struct! {
    pub struct FetchResponse {
        throttle_time_ms: i32 => 1..;
        error_code: i16 => 7..;
        session_id: i32 => 7..;
        responses: Vec<FetchResponseTopic> => 0..;
    }
}

wire_struct! {
    pub struct FetchResponseTopic {
        topic: String => 0..;
        partitions: Vec<FetchResponsePartition> => 0..;
    }
}

wire_struct! {
    pub struct FetchResponsePartition {
        partition_index: i32 => 0..;
        error_code: i16 => 0..;
        high_watermark: i64 => 0..;
        last_stable_offset: i64 => 4.., default -1;
        log_start_offset: i64 => 5.., default -1;
        diverging_epoch: FetchResponseEpochEndOffset => 12.., tag 0;
        current_leader: LeaderIdAndEpoch => 12.., tag 1;
        snapshot_id: FetchResponseSnapshotId => 12.., tag 2;
        aborted_transactions: Option<Vec<FetchResponseAbortedTransaction>> => 4..;
        preferred_read_replica: i32 => 11.., default -1;
        records: Option<Bytes> => 0..;
    }
}

wire_struct! {
    /// Where a follower's log diverges from the leader's: truncate to `end_offset`.
    pub struct FetchResponseEpochEndOffset {
        epoch: i32 => 12.., default -1;
        end_offset: i64 => 12.., default -1;
    }
}

wire_struct! {
    pub struct FetchResponseSnapshotId {
        end_offset: i64 => 12.., default -1;
        epoch: i32 => 12.., default -1;
    }
}

wire_struct! {
    pub struct FetchResponseAbortedTransaction {
        producer_id: i64 => 4..;
        first_offset: i64 => 4..;
    }
}

crate::api!(1, "Fetch", 4..=12, flexible 12, FetchRequest, FetchResponse);
