//! The leader epochs of a `Log` through its public API: learnt from appends, cut by truncation
//! and retention, kept across clean and unclean restarts, and follower appends of fetched batches.

use sluice_protocol::records::{set_base_offset, set_partition_leader_epoch};

use super::tests::{append_garbage, open, read_all, small_config};
use super::*;
use crate::log::test_util::{batch, producer_batch, TestBatch};
use crate::log::LEADER_EPOCH_CHECKPOINT;

fn epochs(log: &Log) -> Vec<(i32, i64)> {
    log.leader_epochs()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

fn checkpoint_text(dir: &Path) -> String {
    fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT)).unwrap()
}

/// A batch of `count` records as a leader would serve it: offsets from `base`, stamped `epoch`.
fn fetched(base: i64, epoch: i32, count: i32) -> Vec<u8> {
    let mut b = TestBatch {
        count,
        ..Default::default()
    }
    .build();
    set_base_offset(&mut b, base);
    set_partition_leader_epoch(&mut b, epoch);
    b
}

fn joined(parts: &[Vec<u8>]) -> Bytes {
    Bytes::from(parts.concat())
}

#[test]
fn leader_epochs_follow_appends_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), 0, true);
    for _ in 0..3 {
        log.append(batch(1, 0), 0, 0).unwrap();
    }
    for _ in 0..4 {
        log.append(batch(2, 0), 2, 0).unwrap();
    }
    log.append(batch(1, 0), 5, 0).unwrap();
    assert_eq!(epochs(&log), vec![(0, 0), (2, 3), (5, 11)]);
    assert_eq!(checkpoint_text(dir.path()), "0\n3\n0 0\n2 3\n5 11\n");
    // Each epoch ends where the next begins; the latest at the log end.
    assert_eq!(log.end_offset_for_epoch(0), (0, 3));
    assert_eq!(log.end_offset_for_epoch(2), (2, 11));
    assert_eq!(log.end_offset_for_epoch(5), (5, 12));
    assert_eq!(log.end_offset_for_epoch(4), (2, 11));
    assert_eq!(log.end_offset_for_epoch(6), (-1, -1));
    assert_eq!(log.latest_epoch(), Some(5));

    // A leader from an older epoch can no longer write.
    assert!(matches!(
        log.append(batch(1, 0), 4, 0),
        Err(LogError::StaleLeaderEpoch {
            epoch: 4,
            latest: 5
        })
    ));
    assert_eq!(log.log_end_offset(), 12);

    let stamped: Vec<i32> = read_all(&log).iter().map(|b| b.2).collect();
    log.close().unwrap();
    let log = open(dir.path(), small_config(), 12, true);
    assert_eq!(epochs(&log), vec![(0, 0), (2, 3), (5, 11)]);
    assert_eq!(log.end_offset_for_epoch(5), (5, 12));
    assert_eq!(
        read_all(&log).iter().map(|b| b.2).collect::<Vec<_>>(),
        stamped
    );
    assert_eq!(log.append(batch(1, 0), 5, 0).unwrap().base_offset, 12);
    assert_eq!(log.end_offset_for_epoch(5), (5, 13));
}

#[test]
fn truncation_forgets_epochs_that_start_past_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), 0, true);
    for (epoch, n) in [(0, 5), (3, 5), (7, 5)] {
        for _ in 0..n {
            log.append(batch(1, 0), epoch, 0).unwrap();
        }
    }
    assert_eq!(epochs(&log), vec![(0, 0), (3, 5), (7, 10)]);
    log.truncate_to(12).unwrap();
    assert_eq!(epochs(&log), vec![(0, 0), (3, 5), (7, 10)]);
    assert_eq!(log.end_offset_for_epoch(7), (7, 12));
    log.truncate_to(10).unwrap();
    assert_eq!(epochs(&log), vec![(0, 0), (3, 5)]);
    assert_eq!(log.end_offset_for_epoch(3), (3, 10));
    assert_eq!(checkpoint_text(dir.path()), "0\n2\n0 0\n3 5\n");
    // A later leader carries on from the cut.
    log.append(batch(1, 0), 8, 0).unwrap();
    assert_eq!(epochs(&log), vec![(0, 0), (3, 5), (8, 10)]);
    log.truncate_to(3).unwrap();
    assert_eq!(epochs(&log), vec![(0, 0)]);
    log.close().unwrap();

    let log = open(dir.path(), small_config(), 3, true);
    assert_eq!(epochs(&log), vec![(0, 0)]);
    assert_eq!(log.end_offset_for_epoch(0), (0, 3));
    // Emptied altogether: no epoch is left to answer for.
    log.truncate_to(0).unwrap();
    assert!(epochs(&log).is_empty());
    assert_eq!(log.end_offset_for_epoch(0), (-1, -1));
    assert_eq!(checkpoint_text(dir.path()), "0\n0\n");
}

#[test]
fn retention_moves_the_earliest_epoch_up_to_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(1_000),
        ..small_config()
    };
    let log = open(dir.path(), config.clone(), 0, true);
    // Epoch 1 for offsets 0-14 (old), epoch 2 for 15-24 (new); segments of ten.
    for i in 0..25i64 {
        let (epoch, ts) = if i < 15 {
            (1, 1_000 + i)
        } else {
            (2, 9_000 + i)
        };
        log.append(batch(1, ts), epoch, 0).unwrap();
    }
    assert_eq!(log.apply_retention(5_500).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 10);
    assert_eq!(epochs(&log), vec![(1, 10), (2, 15)]);
    assert_eq!(log.apply_retention(20_000).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 20);
    assert_eq!(epochs(&log), vec![(2, 20)]);
    // Asked about an epoch whose batches are all gone: truncate to where the log now starts.
    assert_eq!(log.end_offset_for_epoch(1), (1, 20));
    log.close().unwrap();

    let log = open(dir.path(), config, 25, true);
    assert_eq!(epochs(&log), vec![(2, 20)]);
    assert_eq!(checkpoint_text(dir.path()), "0\n1\n2 20\n");
}

#[test]
fn a_lost_or_damaged_checkpoint_is_rebuilt_from_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(LEADER_EPOCH_CHECKPOINT);
    let log = open(dir.path(), small_config(), 0, true);
    // Nothing to record yet, so nothing written: creating a partition costs no extra syncs.
    assert!(!file.exists());
    for (epoch, n) in [(0, 6), (4, 7), (9, 7)] {
        for _ in 0..n {
            log.append(batch(1, 0), epoch, 0).unwrap();
        }
    }
    let expected = vec![(0, 0), (4, 6), (9, 13)];
    assert_eq!(epochs(&log), expected);
    log.close().unwrap();

    fs::remove_file(&file).unwrap();
    let log = open(dir.path(), small_config(), 20, true);
    assert_eq!(epochs(&log), expected);
    assert_eq!(checkpoint_text(dir.path()), "0\n3\n0 0\n4 6\n9 13\n");
    log.close().unwrap();

    fs::write(&file, "0\n5\n0 0\n").unwrap();
    let log = open(dir.path(), small_config(), 20, true);
    assert_eq!(epochs(&log), expected);
    assert_eq!(log.end_offset_for_epoch(4), (4, 13));
}

#[test]
fn reopening_drops_epochs_the_log_lost_and_relearns_recovered_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), small_config(), 0, true);
        for i in 0..15 {
            log.append(batch(1, 0), if i < 10 { 0 } else { 3 }, 0)
                .unwrap();
        }
        log.flush().unwrap();
        log.append(batch(1, 0), 6, 0).unwrap();
        assert_eq!(epochs(&log), vec![(0, 0), (3, 10), (6, 15)]);
        // Dropped without close: the checkpoint already names epoch 6.
    }
    // The crash tore the one batch of epoch 6 (the sixth of the active segment).
    let active = dir.path().join("00000000000000000010.log");
    let bytes = fs::read(&active).unwrap();
    assert_eq!(bytes.len(), 600);
    fs::write(&active, &bytes[..570]).unwrap();

    let log = open(dir.path(), small_config(), 10, false);
    assert_eq!(log.log_end_offset(), 15);
    assert_eq!(epochs(&log), vec![(0, 0), (3, 10)]);
    assert_eq!(log.end_offset_for_epoch(3), (3, 15));
    assert_eq!(checkpoint_text(dir.path()), "0\n2\n0 0\n3 10\n");
    log.close().unwrap();

    // A checkpoint naming epochs past the log end, even after a clean shutdown, is cut back.
    fs::write(
        dir.path().join(LEADER_EPOCH_CHECKPOINT),
        "0\n3\n0 0\n3 10\n9 1000\n",
    )
    .unwrap();
    let log = open(dir.path(), small_config(), 15, true);
    assert_eq!(epochs(&log), vec![(0, 0), (3, 10)]);
    drop(log);

    // Garbage after the last batch and an unclean restart: the epochs read again are the same.
    append_garbage(&active, &[0xff; 3]);
    let log = open(dir.path(), small_config(), 0, false);
    assert_eq!(log.log_end_offset(), 15);
    assert_eq!(epochs(&log), vec![(0, 0), (3, 10)]);
}

#[test]
fn follower_appends_keep_the_leaders_offsets_epochs_and_producers() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(a.path(), small_config(), 0, true);
    leader.append(producer_batch(7, 0, 0, 2), 0, 0).unwrap();
    leader.append(batch(3, 0), 2, 0).unwrap();
    leader.append(producer_batch(7, 0, 2, 1), 2, 0).unwrap();
    leader.append(batch(1, 0), 4, 0).unwrap();
    let fetch = leader.read(0, 1 << 20, i64::MAX, true).unwrap().records;

    let follower = open(b.path(), small_config(), 0, true);
    let info = follower.append_as_follower(fetch.clone(), 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 6));
    assert!(!info.duplicate);
    assert_eq!(follower.log_end_offset(), 7);
    assert_eq!(
        follower.read(0, 1 << 20, i64::MAX, true).unwrap().records,
        fetch,
        "stored byte for byte"
    );
    assert_eq!(epochs(&follower), vec![(0, 0), (2, 2), (4, 6)]);
    assert_eq!(epochs(&follower), epochs(&leader));
    assert_eq!(follower.end_offset_for_epoch(2), (2, 6));

    // Promoted, the follower knows the producer: a retry of sequence 2 is answered, not
    // written, and the next sequence expected is 3.
    let retry = follower.append(producer_batch(7, 0, 2, 1), 4, 0).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, 5);
    assert!(matches!(
        follower.append(producer_batch(7, 0, 5, 1), 4, 0),
        Err(LogError::OutOfOrderSequence { expected: 3, .. })
    ));
    follower.close().unwrap();
    let follower = open(b.path(), small_config(), 7, true);
    assert_eq!(epochs(&follower), vec![(0, 0), (2, 2), (4, 6)]);
}

#[test]
fn follower_appends_refuse_what_a_leader_cannot_have_sent() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), 0, true);
    log.append_as_follower(joined(&[fetched(0, 1, 3)]), 0)
        .unwrap();
    let mut corrupt = fetched(4, 1, 1);
    corrupt[80] ^= 0x55;
    let mut torn_only = fetched(3, 1, 1);
    torn_only.truncate(70);
    for (why, input) in [
        ("overlaps the log end", joined(&[fetched(2, 1, 1)])),
        ("older epoch than the log's", joined(&[fetched(3, 0, 1)])),
        ("bad crc", joined(&[fetched(3, 1, 1), corrupt])),
        (
            "epoch goes back within the call",
            joined(&[fetched(3, 2, 1), fetched(4, 1, 1)]),
        ),
        (
            "offsets overlap within the call",
            joined(&[fetched(3, 1, 2), fetched(4, 1, 1)]),
        ),
        ("nothing", Bytes::new()),
        ("only a partial batch", Bytes::from(torn_only)),
    ] {
        assert!(
            matches!(
                log.append_as_follower(input, 0),
                Err(LogError::InvalidBatch(_))
            ),
            "{why}"
        );
    }
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(epochs(&log), vec![(1, 0)]);
    assert_eq!(read_all(&log), vec![(0, 2, 1)]);

    // A gap (batches the leader's compaction removed) is fine, and so is a batch cut off at
    // the end of a fetch response, which the next fetch brings whole.
    let mut cut = fetched(12, 2, 1);
    cut.truncate(50);
    let info = log
        .append_as_follower(joined(&[fetched(10, 2, 2), cut]), 0)
        .unwrap();
    assert_eq!((info.base_offset, info.last_offset), (10, 11));
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(epochs(&log), vec![(1, 0), (2, 10)]);
    assert_eq!(read_all(&log), vec![(0, 2, 1), (10, 11, 2)]);
    let r = log.read(3, 1 << 20, i64::MAX, true).unwrap();
    let (h, _) = Batches::new(r.records).next().unwrap().unwrap();
    assert_eq!(h.base_offset, 10);
    log.append_as_follower(joined(&[fetched(12, 2, 1)]), 0)
        .unwrap();
    assert_eq!(log.log_end_offset(), 13);
}

#[test]
fn a_follower_behind_its_leaders_log_start_restarts_there() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), 0, true);
    for seq in 0..12 {
        log.append(producer_batch(3, 0, seq, 1), 1, 0).unwrap();
    }
    log.append(batch(1, 0), 2, 0).unwrap();
    log.close().unwrap();
    let log = open(dir.path(), small_config(), 13, true);
    assert_eq!(epochs(&log), vec![(1, 0), (2, 12)]);

    // The leader's log now starts at 1000: nothing here is worth keeping.
    log.truncate_fully_and_start_at(1000).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1000, 1000));
    assert_eq!(log.recovery_point(), 1000);
    assert_eq!(log.segment_base_offsets(), vec![1000]);
    assert!(epochs(&log).is_empty());
    assert_eq!(log.end_offset_for_epoch(1), (-1, -1));
    assert!(matches!(
        log.read(0, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange {
            log_start: 1000,
            ..
        })
    ));
    log.append_as_follower(joined(&[fetched(1000, 5, 2)]), 0)
        .unwrap();
    assert_eq!(epochs(&log), vec![(5, 1000)]);
    // The producer's old sequences went with its batches: as a new leader this log takes the
    // producer at any sequence, as Kafka does for a producer it does not know.
    assert!(log.append(producer_batch(3, 0, 40, 1), 5, 0).is_ok());
    log.close().unwrap();

    let log = open(dir.path(), small_config(), 1003, true);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1000, 1003));
    assert_eq!(epochs(&log), vec![(5, 1000)]);
    assert_eq!(read_all(&log), vec![(1000, 1001, 5), (1002, 1002, 5)]);
}

#[test]
fn a_gap_too_wide_for_relative_offsets_starts_a_segment_at_the_fetched_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), 0, true);
    log.append_as_follower(joined(&[fetched(0, 1, 1)]), 0)
        .unwrap();
    let far = 3_000_000_000;
    log.append_as_follower(joined(&[fetched(far, 1, 2)]), 0)
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, far]);
    assert_eq!(log.log_end_offset(), far + 2);
    assert_eq!(read_all(&log), vec![(0, 0, 1), (far, far + 1, 1)]);
    let r = log.read(far + 1, 1 << 20, i64::MAX, true).unwrap();
    let (h, _) = Batches::new(r.records).next().unwrap().unwrap();
    assert_eq!(h.base_offset, far);
}
