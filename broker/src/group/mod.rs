//! Consumer groups: the coordinator state machine (`coordinator`), its records in
//! `__consumer_offsets` (`records`, `codec`) and the async service that feeds it (`service`).

pub mod classic_group;
pub mod codec;
pub mod coordinator;
pub mod records;
pub mod service;
pub mod timers;

#[cfg(test)]
mod tests;

pub use coordinator::{
    CommitOffset, CommitOutcome, CommitRequest, CoordinatorConfig, Effects, GroupCoordinator,
    GroupDescription, GroupListing, JoinRequest, JoinResponse, LeaveMember, Reply, SyncRequest,
    SyncResponse,
};
pub use records::{CommittedOffset, GroupRecord, GroupSnapshot, MemberSnapshot};

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Names a parked JoinGroup or SyncGroup request whose answer comes later.
pub type ReplyId = u64;

/// The `__consumer_offsets` partition that owns a group: Kafka's choice, the group id's Java
/// `String.hashCode` made non-negative, modulo the partition count. Matching it means a group
/// lands where Kafka tools expect it.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let hash = group_id
        .encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32));
    // Kafka's Utils.abs maps i32::MIN to 0 rather than overflowing.
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions.max(1)
}

#[cfg(test)]
mod partition_tests {
    use super::partition_for;

    #[test]
    fn matches_java_string_hash_code() {
        // Known values of Java's String.hashCode: "a" = 97, "hello" = 99162322,
        // "polygenelubricants" = Integer.MIN_VALUE (which Kafka's Utils.abs maps to 0).
        assert_eq!(partition_for("a", 50), 97 % 50);
        assert_eq!(partition_for("hello", 1000), 99162322 % 1000);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("", 50), 0);
        // "hellohellohello" overflows to a negative hash: its absolute value is used.
        let h = "hellohellohello"
            .encode_utf16()
            .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(u as i32));
        assert!(h < 0);
        assert_eq!(partition_for("hellohellohello", 50), h.abs() % 50);
    }
}
