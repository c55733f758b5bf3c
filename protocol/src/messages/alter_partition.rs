//! AlterPartition (key 56): a partition leader asks the controller to change the ISR, and hears
//! back the partition state the controller committed. Flexible in every version.

use crate::wire::Uuid;

wire_struct! {
    pub struct AlterPartitionRequest {
        broker_id: i32 => 0..;
        broker_epoch: i64 => 0.., default -1;
        topics: Vec<AlterPartitionRequestTopic> => 0..;
    }
}

wire_struct! {
    pub struct AlterPartitionRequestTopic {
        /// Topics are named up to v1 and identified by id from v2 (KIP-841).
        topic_name: String => 0..1;
        topic_id: Uuid => 2..;
        partitions: Vec<AlterPartitionRequestPartition> => 0..;
    }
}

wire_struct! {
    pub struct AlterPartitionRequestPartition {
        partition_index: i32 => 0..;
        leader_epoch: i32 => 0..;
        /// The proposed ISR up to v2; v3 sends each member with its broker epoch instead
        /// (KIP-903), so the controller can refuse a replica that restarted since it caught up.
        new_isr: Vec<i32> => 0..2;
        new_isr_with_epochs: Vec<AlterPartitionBrokerState> => 3..;
        /// 1 while recovering from an unclean leader election (KIP-704), else 0.
        leader_recovery_state: i8 => 1..;
        /// The partition epoch the leader based its proposal on; a stale one is refused.
        partition_epoch: i32 => 0..;
    }
}

wire_struct! {
    pub struct AlterPartitionBrokerState {
        broker_id: i32 => 3..;
        /// -1 when the leader does not know the follower's broker epoch.
        broker_epoch: i64 => 3.., default -1;
    }
}

wire_struct! {
    pub struct AlterPartitionResponse {
        throttle_time_ms: i32 => 0..;
        error_code: i16 => 0..;
        topics: Vec<AlterPartitionResponseTopic> => 0..;
    }
}

wire_struct! {
    pub struct AlterPartitionResponseTopic {
        topic_name: String => 0..1;
        topic_id: Uuid => 2..;
        partitions: Vec<AlterPartitionResponsePartition> => 0..;
    }
}

wire_struct! {
    pub struct AlterPartitionResponsePartition {
        partition_index: i32 => 0..;
        error_code: i16 => 0..;
        leader_id: i32 => 0..;
        leader_epoch: i32 => 0..;
        isr: Vec<i32> => 0..;
        leader_recovery_state: i8 => 1..;
        partition_epoch: i32 => 0..;
    }
}

crate::api!(
    56,
    "AlterPartition",
    0..=3,
    flexible 0,
    AlterPartitionRequest,
    AlterPartitionResponse
);
