//! Behaviour of a single partition `Log` against real files: offsets, reads, rolls, recovery,
//! retention, producer state and flushing, each checked through the public API.

use std::fs::OpenOptions;
use std::io::Write;

use sluice_protocol::records::verify_crc;

use super::*;
use crate::log::test_util::{batch, producer_batch, TestBatch};
use crate::log::CleanupPolicy;

/// 100-byte single-record batches; ten fill a segment, an index entry every other batch.
pub(super) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        segment_ms: None,
        retention_ms: None,
        index_interval_bytes: 150,
        ..LogConfig::default()
    }
}

pub(super) fn tp() -> TopicPartition {
    TopicPartition::new("events", 0)
}

pub(super) fn open(dir: &Path, config: LogConfig, recovery_point: i64, clean: bool) -> Log {
    Log::open(dir, tp(), config, recovery_point, clean).unwrap()
}

/// (base offset, last offset, leader epoch) of every batch, read the way a consumer would.
pub(super) fn read_all(log: &Log) -> Vec<(i64, i64, i32)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 20, i64::MAX, true).unwrap();
        assert!(!r.records.is_empty(), "no progress at offset {offset}");
        let mut batches = Batches::new(r.records.clone());
        for item in batches.by_ref() {
            let (h, bytes) = item.unwrap();
            verify_crc(&bytes).unwrap();
            out.push((h.base_offset, h.last_offset(), h.partition_leader_epoch));
            offset = h.last_offset() + 1;
        }
        assert_eq!(batches.remainder(), 0, "reads return whole batches");
    }
    out
}

fn segment_files(dir: &Path, ext: &str) -> Vec<i64> {
    let mut v: Vec<i64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| super::super::parse_offset_file_name(&e.unwrap().path(), ext))
        .collect();
    v.sort_unstable();
    v
}

pub(super) fn append_garbage(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn append_assigns_dense_offsets_and_reads_back_wire_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), 0, true);
    let a = log.append(batch(1, 10), 7, 100).unwrap();
    assert_eq!((a.base_offset, a.last_offset, a.duplicate), (0, 0, false));
    assert_eq!(a.log_append_time_ms, -1);
    // Two batches in one call, with whatever base offsets the client put there.
    let mut two = TestBatch {
        count: 3,
        ..Default::default()
    }
    .build();
    two.extend_from_slice(&batch(2, 20));
    let b = log.append(Bytes::from(two), 8, 100).unwrap();
    assert_eq!((b.base_offset, b.last_offset), (1, 5));
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.high_watermark(), 6);
    assert_eq!(read_all(&log), vec![(0, 0, 7), (1, 3, 8), (4, 5, 8)]);
    assert_eq!(log.size_bytes(), 300);
}

#[test]
fn malformed_appends_are_rejected_without_effect() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), 0, true);
    assert!(matches!(
        log.append(Bytes::new(), 0, 0),
        Err(LogError::InvalidBatch(_))
    ));
    let whole = batch(1, 0);
    assert!(matches!(
        log.append(whole.slice(..whole.len() - 1), 0, 0),
        Err(LogError::InvalidBatch(_))
    ));
    let tiny = LogConfig {
        segment_bytes: 50,
        ..LogConfig::default()
    };
    log.update_config(tiny);
    assert!(matches!(
        log.append(batch(1, 0), 0, 0),
        Err(LogError::BatchTooLarge { .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn offsets_stay_dense_across_rolls_and_index_lookups_find_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), 0, true);
    for i in 0..35 {
        let info = log.append(batch(2, 1000 + i), 0, 0).unwrap();
        assert_eq!(info.base_offset, i * 2);
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 20, 40, 60]);
    assert_eq!(segment_files(dir.path(), "log"), vec![0, 20, 40, 60]);
    assert!(
        fs::metadata(dir.path().join("00000000000000000000.index"))
            .unwrap()
            .len()
            > 0
    );
    for offset in 0..70 {
        let r = log.read(offset, 100, i64::MAX, false).unwrap();
        let (h, _) = Batches::new(r.records).next().unwrap().unwrap();
        assert_eq!(h.base_offset, offset - offset % 2, "offset {offset}");
    }
    let all = read_all(&log);
    assert_eq!(all.len(), 35);
    assert!(all.windows(2).all(|w| w[1].0 == w[0].1 + 1));
}

#[test]
fn read_limits_max_bytes_min_one_and_max_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), 0, true);
    for _ in 0..5 {
        log.append(batch(1, 0), 0, 0).unwrap();
    }
    let count = |r: &ReadResult| Batches::new(r.records.clone()).count();
    let r = log.read(0, 250, i64::MAX, false).unwrap();
    assert_eq!((r.records.len(), count(&r)), (200, 2));
    assert_eq!(
        (r.log_start_offset, r.log_end_offset, r.high_watermark),
        (0, 5, 5)
    );
    assert!(log.read(1, 50, i64::MAX, false).unwrap().records.is_empty());
    let r = log.read(1, 50, i64::MAX, true).unwrap();
    assert_eq!(r.records.len(), 100, "KIP-74: the first batch comes whole");
    let r = log.read(0, 1 << 20, 3, false).unwrap();
    assert_eq!(count(&r), 3, "never past max_offset");
    assert!(log.read(3, 1 << 20, 3, true).unwrap().records.is_empty());
    assert!(log
        .read(5, 1 << 20, i64::MAX, true)
        .unwrap()
        .records
        .is_empty());
    for bad in [-1, 6] {
        assert!(matches!(
            log.read(bad, 100, i64::MAX, true),
            Err(LogError::OffsetOutOfRange {
                log_start: 0,
                log_end: 5,
                ..
            })
        ));
    }
}

#[test]
fn clean_restart_keeps_offsets_and_needs_no_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), 0, true);
    for i in 0..25 {
        log.append(batch(1, 5000 + i), 3, 0).unwrap();
    }
    let before = read_all(&log);
    let index_before = fs::read(dir.path().join("00000000000000000000.index")).unwrap();
    log.close().unwrap();
    assert_eq!(log.recovery_point(), 25);
    assert!(matches!(
        log.append(batch(1, 0), 0, 0),
        Err(LogError::Closed)
    ));

    let log = open(dir.path(), small_config(), 25, true);
    assert_eq!(log.log_end_offset(), 25);
    assert_eq!(log.recovery_point(), 25);
    assert_eq!(read_all(&log), before);
    let index_after = fs::read(dir.path().join("00000000000000000000.index")).unwrap();
    assert_eq!(index_before, index_after);
    assert_eq!(log.append(batch(1, 0), 3, 0).unwrap().base_offset, 25);
    assert_eq!(log.offset_for_timestamp(5012).unwrap(), Some((12, 5012)));
}

#[test]
fn torn_tail_is_truncated_and_appends_continue_densely() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), LogConfig::default(), 0, true);
        for _ in 0..5 {
            log.append(batch(2, 0), 0, 0).unwrap();
        }
        // Dropped without close: what a kill -9 leaves behind.
    }
    let active = dir.path().join("00000000000000000000.log");
    let half = batch(2, 0);
    append_garbage(&active, &half[..70]);
    assert_eq!(fs::metadata(&active).unwrap().len(), 570);

    let log = open(dir.path(), LogConfig::default(), 0, false);
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(fs::metadata(&active).unwrap().len(), 500);
    assert_eq!(log.append(batch(1, 0), 0, 0).unwrap().base_offset, 10);
    assert_eq!(read_all(&log).last(), Some(&(10, 10, 0)));
    drop(log);

    append_garbage(&active, &[0xff; 3]);
    let log = open(dir.path(), LogConfig::default(), 0, false);
    assert_eq!(log.log_end_offset(), 11);
    assert_eq!(log.recovery_point(), 11, "recovered data is flushed");
}

#[test]
fn corrupt_batch_cuts_its_segment_and_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), small_config(), 0, true);
        for _ in 0..25 {
            log.append(batch(1, 0), 0, 0).unwrap();
        }
        log.close().unwrap();
    }
    assert_eq!(segment_files(dir.path(), "log"), vec![0, 10, 20]);
    // Flip a record byte of offset 13 (fourth batch of the second segment).
    let path = dir.path().join("00000000000000000010.log");
    let mut bytes = fs::read(&path).unwrap();
    bytes[3 * 100 + 80] ^= 0x55;
    fs::write(&path, bytes).unwrap();

    // Recovery point 10: the first segment is trusted, the rest is checked.
    let log = open(dir.path(), small_config(), 10, false);
    assert_eq!(log.log_end_offset(), 13);
    assert_eq!(segment_files(dir.path(), "log"), vec![0, 10]);
    assert_eq!(segment_files(dir.path(), "index"), vec![0, 10]);
    assert_eq!(read_all(&log).len(), 13);
    assert_eq!(log.append(batch(1, 0), 0, 0).unwrap().base_offset, 13);
}

#[test]
fn missing_or_damaged_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let log = open(dir.path(), config.clone(), 0, true);
    for i in 0..30 {
        log.append(batch(1, 100 + i), 0, 0).unwrap();
    }
    log.close().unwrap();
    let index = dir.path().join("00000000000000000000.index");
    let time_index = dir.path().join("00000000000000000000.timeindex");
    let (index_bytes, time_bytes) = (fs::read(&index).unwrap(), fs::read(&time_index).unwrap());
    assert_eq!(index_bytes.len(), 14 * 8);
    fs::remove_file(&index).unwrap();
    fs::write(&time_index, &time_bytes[..5]).unwrap();

    let log = open(dir.path(), config, 30, true);
    assert_eq!(fs::read(&index).unwrap(), index_bytes);
    assert_eq!(log.log_end_offset(), 30);
    for offset in [0, 7, 19, 29] {
        let r = log.read(offset, 100, i64::MAX, false).unwrap();
        let (h, _) = Batches::new(r.records).next().unwrap().unwrap();
        assert_eq!(h.base_offset, offset);
    }
    assert_eq!(log.offset_for_timestamp(117).unwrap(), Some((17, 117)));
}

#[test]
fn time_retention_deletes_old_segments_but_never_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(1_000),
        ..small_config()
    };
    let log = open(dir.path(), config, 0, true);
    // Segments [0,10) at t=1000.., [10,20) at 5000.., active [20,25) at 9000..
    for i in 0..25i64 {
        let ts = [1000, 5000, 9000][(i / 10) as usize] + i;
        log.append(batch(1, ts), 0, 0).unwrap();
    }
    assert_eq!(log.apply_retention(2_000).unwrap(), 0);
    assert_eq!(log.apply_retention(5_500).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 10);
    assert_eq!(segment_files(dir.path(), "log"), vec![10, 20]);
    assert!(matches!(
        log.read(5, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { log_start: 10, .. })
    ));
    assert_eq!(log.apply_retention(1_000_000).unwrap(), 1);
    assert_eq!(log.segment_base_offsets(), vec![20]);
    assert_eq!(log.log_start_offset(), 20);
    assert_eq!(log.size_bytes(), 500);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((20, 9020)));
}

#[test]
fn size_retention_deletes_oldest_segments_beyond_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(2_500),
        ..small_config()
    };
    let log = open(dir.path(), config, 0, true);
    for _ in 0..35 {
        log.append(batch(1, 0), 0, 0).unwrap();
    }
    assert_eq!(log.size_bytes(), 3_500);
    assert_eq!(log.apply_retention(0).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 10);
    assert_eq!(log.size_bytes(), 2_500);
    assert_eq!(log.apply_retention(0).unwrap(), 0);
}

#[test]
fn compact_only_logs_ignore_time_and_size_retention() {
    let dir = tempfile::tempdir().unwrap();
    let compact = LogConfig {
        retention_ms: Some(1_000),
        retention_bytes: Some(1_000),
        cleanup_policy: CleanupPolicy::Compact,
        ..small_config()
    };
    let log = open(dir.path(), compact.clone(), 0, true);
    for _ in 0..25 {
        log.append(batch(1, 1_000), 0, 0).unwrap();
    }
    assert_eq!(log.apply_retention(1_000_000).unwrap(), 0);
    assert_eq!(log.segment_base_offsets(), vec![0, 10, 20]);

    log.update_config(LogConfig {
        cleanup_policy: CleanupPolicy::CompactAndDelete,
        ..compact
    });
    assert_eq!(log.apply_retention(1_000_000).unwrap(), 2);
    assert_eq!(log.log_start_offset(), 20);
}

#[test]
fn idempotent_producer_duplicates_gaps_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), 0, true);
    log.append(batch(2, 0), 0, 0).unwrap();
    let first = log.append(producer_batch(9, 0, 0, 3), 0, 0).unwrap();
    assert_eq!((first.base_offset, first.last_offset), (2, 4));
    log.append(producer_batch(9, 0, 3, 2), 0, 0).unwrap();

    let retry = log.append(producer_batch(9, 0, 0, 3), 0, 0).unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.base_offset, retry.last_offset), (2, 4));
    assert_eq!(log.log_end_offset(), 7, "a duplicate is not written");

    assert!(matches!(
        log.append(producer_batch(9, 0, 6, 1), 0, 0),
        Err(LogError::OutOfOrderSequence {
            producer_id: 9,
            expected: 5,
            received: 6
        })
    ));
    assert!(matches!(
        log.append(producer_batch(9, 1, 5, 1), 0, 0),
        Err(LogError::OutOfOrderSequence { expected: 0, .. })
    ));
    assert_eq!(
        log.append(producer_batch(9, 1, 0, 1), 0, 0)
            .unwrap()
            .base_offset,
        7
    );
    assert!(matches!(
        log.append(producer_batch(9, 0, 5, 1), 0, 0),
        Err(LogError::InvalidProducerEpoch)
    ));
    // A producer the log has never seen is accepted at any sequence.
    assert!(log.append(producer_batch(10, 4, 77, 1), 0, 0).is_ok());
    assert_eq!(log.log_end_offset(), 9);
}

#[test]
fn producer_state_survives_clean_and_unclean_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), small_config(), 0, true);
        for seq in 0..12 {
            log.append(producer_batch(5, 2, seq, 1), 0, 0).unwrap();
        }
        log.close().unwrap();
    }
    {
        let log = open(dir.path(), small_config(), 12, true);
        let dup = log.append(producer_batch(5, 2, 11, 1), 0, 0).unwrap();
        assert!(dup.duplicate);
        assert_eq!(dup.base_offset, 11);
        for seq in 12..15 {
            log.append(producer_batch(5, 2, seq, 1), 0, 0).unwrap();
        }
        // No close: the snapshot on disk is older than the log end and must be replayed past.
    }
    let log = open(dir.path(), small_config(), 0, false);
    assert_eq!(log.log_end_offset(), 15);
    let dup = log.append(producer_batch(5, 2, 14, 1), 0, 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 14);
    assert!(matches!(
        log.append(producer_batch(5, 2, 16, 1), 0, 0),
        Err(LogError::OutOfOrderSequence { expected: 15, .. })
    ));
    assert!(matches!(
        log.append(producer_batch(5, 1, 0, 1), 0, 0),
        Err(LogError::InvalidProducerEpoch)
    ));
}

#[test]
fn offset_for_timestamp_uses_batch_max_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), 0, true);
    for i in 0..25 {
        log.append(batch(2, 1000 + 10 * i), 0, 0).unwrap();
    }
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1000)));
    assert_eq!(log.offset_for_timestamp(1000).unwrap(), Some((0, 1000)));
    assert_eq!(log.offset_for_timestamp(1001).unwrap(), Some((2, 1010)));
    assert_eq!(log.offset_for_timestamp(1125).unwrap(), Some((26, 1130)));
    assert_eq!(log.offset_for_timestamp(1240).unwrap(), Some((48, 1240)));
    assert_eq!(log.offset_for_timestamp(1241).unwrap(), None);
}

#[test]
fn truncate_to_drops_the_tail_and_rewinds_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), 0, true);
    for seq in 0..25 {
        log.append(producer_batch(1, 0, seq, 1), 0, 0).unwrap();
    }
    log.flush().unwrap();
    log.truncate_to(13).unwrap();
    assert_eq!(log.log_end_offset(), 13);
    assert_eq!(log.recovery_point(), 13);
    assert_eq!(segment_files(dir.path(), "log"), vec![0, 10]);
    // Sequence 13 was removed with its batch, so it is the next one expected again.
    assert_eq!(
        log.append(producer_batch(1, 0, 13, 1), 0, 0)
            .unwrap()
            .base_offset,
        13
    );
    assert_eq!(read_all(&log).len(), 14);

    log.truncate_to(0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(log.append(batch(1, 0), 0, 0).unwrap().base_offset, 0);
}

#[test]
fn flushes_advance_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_interval_messages: Some(3),
        ..small_config()
    };
    let log = open(dir.path(), config, 0, true);
    log.append(batch(2, 0), 0, 0).unwrap();
    assert_eq!(log.recovery_point(), 0);
    log.append(batch(1, 0), 0, 0).unwrap();
    assert_eq!(log.recovery_point(), 3, "flush.messages reached");

    let config = LogConfig {
        flush_interval_ms: Some(1_000),
        ..small_config()
    };
    log.update_config(config);
    log.append(batch(1, 0), 0, 0).unwrap();
    log.flush_if_due(10_000).unwrap();
    log.flush_if_due(10_500).unwrap();
    assert_eq!(log.recovery_point(), 3);
    log.flush_if_due(11_000).unwrap();
    assert_eq!(log.recovery_point(), 4);
}

#[test]
fn rolled_segments_are_flushed_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), 0, true);
    for _ in 0..15 {
        log.append(batch(1, 0), 0, 0).unwrap();
    }
    assert_eq!(log.recovery_point(), 0);
    log.run_maintenance(0, false).unwrap();
    assert!(log.recovery_point() >= 10);
}

#[test]
fn time_based_roll() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: Some(1_000),
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, 0, true);
    log.roll_if_due(50_000).unwrap();
    assert_eq!(log.segment_count(), 1, "an empty segment never rolls");
    log.append(batch(1, 0), 0, 10_000).unwrap();
    log.roll_if_due(10_500).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(batch(1, 0), 0, 10_900).unwrap();
    log.roll_if_due(11_000).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    log.append(batch(1, 0), 0, 11_100).unwrap();
    log.append(batch(1, 0), 0, 12_200).unwrap();
    assert_eq!(
        log.segment_base_offsets(),
        vec![0, 2, 3],
        "append rolls too"
    );
}

#[test]
fn high_watermark_follows_log_end_until_set() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), 0, true);
    log.append(batch(3, 0), 0, 0).unwrap();
    assert_eq!(log.high_watermark(), 3);
    log.set_high_watermark(1);
    log.append(batch(1, 0), 0, 0).unwrap();
    assert_eq!(log.high_watermark(), 1);
    assert_eq!(log.read(0, 1000, 0, true).unwrap().high_watermark, 1);
    log.set_high_watermark(100);
    assert_eq!(log.high_watermark(), 4, "clamped to the log end");
}

#[test]
fn concurrent_appends_and_reads_see_dense_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), small_config(), 0, true));
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let log = log.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    log.append(batch(2, 0), 0, 0).unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut next = 0;
            while next < 600 {
                let r = log.read(next, 4096, log.high_watermark(), true).unwrap();
                for item in Batches::new(r.records) {
                    let (h, _) = item.unwrap();
                    assert_eq!(h.base_offset, next);
                    next = h.last_offset() + 1;
                }
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    reader.join().unwrap();
    assert_eq!(log.log_end_offset(), 600);
}

#[test]
fn retention_forgets_producers_whose_batches_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(1_000),
        ..small_config()
    };
    let log = open(dir.path(), config, 0, true);
    log.append(producer_batch(3, 0, 0, 1), 0, 0).unwrap();
    for _ in 0..9 {
        log.append(batch(1, 0), 0, 0).unwrap();
    }
    log.append(producer_batch(4, 0, 0, 1), 0, 0).unwrap();
    assert!(matches!(
        log.append(producer_batch(3, 0, 5, 1), 0, 0),
        Err(LogError::OutOfOrderSequence { .. })
    ));
    for _ in 0..9 {
        log.append(batch(1, 0), 0, 0).unwrap();
    }
    log.append(batch(1, 0), 0, 0).unwrap();
    assert_eq!(log.apply_retention(0).unwrap(), 1);
    // Producer 3 only had batches in the deleted segment; producer 4 is still checked.
    assert!(log.append(producer_batch(3, 0, 5, 1), 0, 0).is_ok());
    assert!(matches!(
        log.append(producer_batch(4, 0, 5, 1), 0, 0),
        Err(LogError::OutOfOrderSequence { expected: 1, .. })
    ));
}
