//! Compaction of a `Log` against real files: what survives a pass, offsets and bounds that must
//! not move, compressed and idempotent batches, crashes at every swap step, and concurrency.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_protocol::records::{Batches, Compression, RecordBatch};

use super::*;
use crate::log::test_util::{keyed_batch, keyed_producer_batch};
use crate::log::{CleanupPolicy, LogConfig};

const DAY_MS: i64 = 86_400_000;

/// About 75-byte single-record batches, a dozen to a segment; `segment.ms` only rolls when a
/// test asks (appends happen at time 0).
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        segment_ms: Some(1_000),
        retention_ms: None,
        index_interval_bytes: 150,
        cleanup_policy: CleanupPolicy::Compact,
        ..LogConfig::default()
    }
}

/// `config()` with no dirty-ratio threshold, so every pass cleans what it can.
fn always_cleanable() -> LogConfig {
    LogConfig {
        min_cleanable_dirty_ratio: 0.0,
        ..config()
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("compacted", 0)
}

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, tp(), config, 0, false).unwrap()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: i64,
    key: Option<String>,
    value: Option<String>,
}

fn text(b: &Option<bytes::Bytes>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8(b.to_vec()).unwrap())
}

/// Every record from the log start on, read the way a consumer would: whole batches, CRC-checked
/// and decoded, each record within its batch's offset range.
fn read_records(log: &Log) -> Vec<Rec> {
    read_batches(log)
        .into_iter()
        .flat_map(|b| b.records)
        .map(|r| Rec {
            offset: r.offset,
            key: text(&r.key),
            value: text(&r.value),
        })
        .collect()
}

fn read_batches(log: &Log) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 20, i64::MAX, true).unwrap();
        if r.records.is_empty() {
            break;
        }
        for item in Batches::new(r.records) {
            let (h, bytes) = item.unwrap();
            let batch = RecordBatch::decode(&bytes, 1 << 20).unwrap();
            for rec in &batch.records {
                assert!(rec.offset >= h.base_offset && rec.offset <= h.last_offset());
            }
            assert!(h.last_offset() >= offset);
            offset = h.last_offset() + 1;
            out.push(batch);
        }
    }
    out
}

/// Rolls the active segment so that everything appended so far is cleanable.
fn roll(log: &Log) {
    log.roll_if_due(1_000_000).unwrap();
}

/// The latest record of every key, by offset.
fn latest(records: &[Rec]) -> Vec<Rec> {
    let mut by_key: BTreeMap<Option<String>, Rec> = BTreeMap::new();
    for r in records {
        by_key.insert(r.key.clone(), r.clone());
    }
    let mut out: Vec<Rec> = by_key.into_values().collect();
    out.sort_by_key(|r| r.offset);
    out
}

fn append(log: &Log, key: &str, value: Option<&str>, ts: i64) -> i64 {
    log.append(
        keyed_batch(&[(Some(key), value)], ts, Compression::None),
        0,
        0,
    )
    .unwrap()
    .base_offset
}

/// Ten keys updated ten times each, in order: offset = 10 * round + key.
fn fill(log: &Log) {
    for round in 0..10 {
        for k in 0..10 {
            append(
                log,
                &format!("k{k}"),
                Some(&format!("v{round}")),
                1_000 + round,
            );
        }
    }
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect();
    v.sort();
    v
}

#[test]
fn a_pass_keeps_the_latest_record_per_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    fill(&log);
    roll(&log);
    let before = read_records(&log);
    assert_eq!(before.len(), 100);
    let segments_before = log.segment_count();
    assert!(segments_before > 5);

    let stats = log.clean(0).unwrap();
    assert_eq!(stats.outcome, CleanOutcome::Cleaned);
    assert_eq!((stats.records_before, stats.records_after), (100, 10));
    assert!(stats.bytes_after < stats.bytes_before / 5, "{stats:?}");
    assert_eq!(stats.first_dirty_offset, 100);
    let after = read_records(&log);
    assert_eq!(after, latest(&before));
    assert_eq!(
        after.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (90..100).collect::<Vec<_>>()
    );
    assert!(after.iter().all(|r| r.value.as_deref() == Some("v9")));
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.log_end_offset(), 100);
    // Small cleaned segments were merged: all of it now fits one segment, still starting at 0.
    assert_eq!(log.segment_base_offsets(), vec![0, 100]);
    assert_eq!(files_with_suffix(dir.path(), ".log").len(), 2);
    assert!(files_with_suffix(dir.path(), ".cleaned").is_empty());
    assert!(files_with_suffix(dir.path(), ".swap").is_empty());
    // Reads from offsets whose records are gone continue at the next kept record.
    let r = log.read(3, 1 << 20, i64::MAX, true).unwrap();
    let (h, _) = Batches::new(r.records).next().unwrap().unwrap();
    assert_eq!(h.base_offset, 90);
    // The rebuilt time index answers timestamp lookups.
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((90, 1_009)));
    assert_eq!(log.offset_for_timestamp(1_010).unwrap(), None);

    // Nothing new since: the next pass has nothing to do.
    assert_eq!(log.clean(0).unwrap().outcome, CleanOutcome::NothingToClean);
    assert_eq!(log.cleaner_checkpoint(), Some(100));

    // The result survives a clean and an unclean reopen, and appends continue at the end.
    log.close().unwrap();
    let log = Log::open(dir.path(), tp(), config(), 100, true).unwrap();
    assert_eq!(read_records(&log), after);
    drop(log);
    let log = open(dir.path(), config());
    assert_eq!(read_records(&log), after);
    assert_eq!(append(&log, "k0", Some("v10"), 2_000), 100);
}

#[test]
fn the_active_segment_is_never_cleaned_and_later_updates_win_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), always_cleanable());
    fill(&log);
    let active = *log.segment_base_offsets().last().unwrap();
    let in_active: Vec<Rec> = read_records(&log)
        .into_iter()
        .filter(|r| r.offset >= active)
        .collect();
    assert!(!in_active.is_empty());
    log.clean(0).unwrap();
    let after = read_records(&log);
    assert!(after.ends_with(&in_active), "active segment untouched");
    // Keys updated in the active segment still have their older value in the cleaned part.
    assert!(after.len() > 10);

    roll(&log);
    let stats = log.clean(0).unwrap();
    assert_eq!(stats.outcome, CleanOutcome::Cleaned);
    assert_eq!(read_records(&log), latest(&after));
}

#[test]
fn tombstones_stay_for_delete_retention_then_go() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    for k in ["a", "b", "c"] {
        append(&log, k, Some("1"), 1_000);
    }
    append(&log, "b", None, 5_000);
    append(&log, "a", Some("2"), 5_000);
    roll(&log);

    // At exactly delete.retention.ms after the tombstone's timestamp it is still kept; the
    // value it deletes is gone at once.
    let stats = log.clean(5_000 + DAY_MS).unwrap();
    assert_eq!(stats.tombstones_removed, 0);
    let expect = |v: &[(i64, &str, Option<&str>)]| {
        v.iter()
            .map(|(o, k, v)| Rec {
                offset: *o,
                key: Some(k.to_string()),
                value: v.map(str::to_string),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        read_records(&log),
        expect(&[(2, "c", Some("1")), (3, "b", None), (4, "a", Some("2"))])
    );
    // Nothing new was written, but the kept tombstone expires: a pass is due then, not before.
    assert_eq!(
        log.clean(5_000 + DAY_MS).unwrap().outcome,
        CleanOutcome::NothingToClean
    );
    let stats = log.clean(5_001 + DAY_MS).unwrap();
    assert_eq!(stats.outcome, CleanOutcome::Cleaned);
    assert_eq!(stats.tombstones_removed, 1);
    assert_eq!(
        read_records(&log),
        expect(&[(2, "c", Some("1")), (4, "a", Some("2"))])
    );
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 5));
    assert_eq!(
        log.clean(10 * DAY_MS).unwrap().outcome,
        CleanOutcome::NothingToClean
    );
}

#[test]
fn a_shorter_delete_retention_makes_kept_tombstones_due_sooner() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    append(&log, "a", Some("1"), 1_000);
    append(&log, "a", None, 5_000);
    roll(&log);
    assert_eq!(log.clean(5_000).unwrap().tombstones_removed, 0);
    assert_eq!(
        log.clean(5_000 + DAY_MS / 2).unwrap().outcome,
        CleanOutcome::NothingToClean
    );
    // Nothing new is written: only the altered config can make a pass due before a day is up.
    log.update_config(LogConfig {
        delete_retention_ms: DAY_MS / 4,
        ..config()
    });
    let stats = log.clean(5_000 + DAY_MS / 2).unwrap();
    assert_eq!(stats.outcome, CleanOutcome::Cleaned);
    assert_eq!(stats.tombstones_removed, 1);
    assert!(read_records(&log).is_empty());
}

#[test]
fn compressed_batches_are_rewritten_with_their_codec_and_offsets() {
    for codec in [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Lz4,
        Compression::Snappy,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config());
        let first = [
            (Some("a"), Some("a1")),
            (Some("b"), Some("b1")),
            (Some("c"), Some("c1")),
            (Some("d"), Some("d1")),
        ];
        log.append(keyed_batch(&first, 1_000, codec), 0, 0).unwrap();
        let second = [(Some("a"), Some("a2")), (Some("c"), Some("c2"))];
        log.append(keyed_batch(&second, 2_000, codec), 0, 0)
            .unwrap();
        log.append(keyed_batch(&[(Some("d"), Some("d2"))], 3_000, codec), 0, 0)
            .unwrap();
        roll(&log);
        let stats = log.clean(0).unwrap();
        assert_eq!((stats.records_before, stats.records_after), (7, 4));

        let batches = read_batches(&log);
        assert_eq!(batches.len(), 3, "{codec:?}");
        let rewritten = &batches[0];
        assert_eq!(rewritten.compression, codec);
        // The batch keeps its first and last offset although records 0, 2 and 3 are gone.
        assert_eq!((rewritten.base_offset, rewritten.last_offset_delta), (0, 3));
        assert_eq!(rewritten.records.len(), 1);
        assert_eq!(rewritten.records[0].offset, 1);
        assert_eq!(text(&rewritten.records[0].value).as_deref(), Some("b1"));
        assert_eq!(rewritten.max_timestamp, 1_000);
        // Fully kept batches are the same bytes as before.
        assert_eq!(batches[1].compression, codec);
        assert_eq!(batches[1].records.len(), 2);
        assert_eq!(
            read_records(&log)
                .iter()
                .map(|r| r.offset)
                .collect::<Vec<_>>(),
            vec![1, 4, 5, 6]
        );
    }
}

#[test]
fn a_batch_losing_its_first_records_keeps_base_offset_and_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    let three = [
        (Some("x"), Some("1")),
        (Some("y"), Some("1")),
        (Some("z"), Some("1")),
    ];
    log.append(
        keyed_producer_batch(7, 0, 0, &three, 1_000, Compression::None),
        0,
        0,
    )
    .unwrap();
    let two = [(Some("x"), Some("2")), (Some("y"), Some("2"))];
    log.append(
        keyed_producer_batch(7, 0, 3, &two, 1_000, Compression::Zstd),
        0,
        0,
    )
    .unwrap();
    for seq in 5..20 {
        let rec = [(Some("w"), Some("n"))];
        log.append(
            keyed_producer_batch(7, 0, seq, &rec, 1_000, Compression::None),
            0,
            0,
        )
        .unwrap();
    }
    roll(&log);
    log.clean(0).unwrap();
    let batches = read_batches(&log);
    let first = &batches[0];
    assert_eq!(first.records.len(), 1);
    assert_eq!(first.records[0].offset, 2);
    assert_eq!(
        (
            first.base_offset,
            first.last_offset_delta,
            first.base_sequence
        ),
        (0, 2, 0)
    );
    assert_eq!((first.producer_id, first.producer_epoch), (7, 0));
    assert_eq!(read_records(&log).len(), 4);
}

#[test]
fn producer_state_survives_a_clean_and_reopen() {
    for clean_close in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = open(dir.path(), config());
            for seq in 0..40 {
                let key = format!("k{}", seq % 4);
                let rec = [(Some(key.as_str()), Some("v"))];
                log.append(
                    keyed_producer_batch(9, 3, seq, &rec, 1_000, Compression::None),
                    0,
                    0,
                )
                .unwrap();
            }
            roll(&log);
            assert_eq!(log.clean(0).unwrap().records_after, 4);
            if clean_close {
                log.close().unwrap();
            }
        }
        let log = open(dir.path(), config());
        let retry = [(Some("k3"), Some("v"))];
        let dup = log
            .append(
                keyed_producer_batch(9, 3, 39, &retry, 1_000, Compression::None),
                0,
                0,
            )
            .unwrap();
        assert!(dup.duplicate, "clean close: {clean_close}");
        assert_eq!(dup.base_offset, 39);
        let next = log
            .append(
                keyed_producer_batch(9, 3, 40, &retry, 1_000, Compression::None),
                0,
                0,
            )
            .unwrap();
        assert_eq!((next.base_offset, next.duplicate), (40, false));
        assert!(matches!(
            log.append(
                keyed_producer_batch(9, 3, 45, &retry, 1_000, Compression::None),
                0,
                0
            ),
            Err(LogError::OutOfOrderSequence { expected: 41, .. })
        ));
    }
}

#[test]
fn keyless_records_are_dropped_by_the_cleaner() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    let mixed = [(None, Some("orphan")), (Some("k"), Some("1")), (None, None)];
    log.append(keyed_batch(&mixed, 1_000, Compression::None), 0, 0)
        .unwrap();
    roll(&log);
    let stats = log.clean(0).unwrap();
    assert_eq!(stats.keyless_removed, 2);
    assert_eq!(
        read_records(&log),
        vec![Rec {
            offset: 1,
            key: Some("k".into()),
            value: Some("1".into())
        }]
    );
}

#[test]
fn batches_the_cleaner_cannot_read_are_kept_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    // Filler records that do not parse: kept, with the keyed records around them cleaned.
    append(&log, "k", Some("1"), 1_000);
    log.append(crate::log::test_util::batch(2, 1_000), 0, 0)
        .unwrap();
    append(&log, "k", Some("2"), 1_000);
    roll(&log);
    let stats = log.clean(0).unwrap();
    assert_eq!(stats.undecodable_batches, 1);
    assert_eq!((stats.records_before, stats.records_after), (4, 3));
}

#[test]
fn dirty_ratio_and_compaction_lag_decide_when_a_pass_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            cleanup_policy: CleanupPolicy::Delete,
            ..config()
        },
    );
    fill(&log);
    roll(&log);
    assert_eq!(log.clean(0).unwrap().outcome, CleanOutcome::NotCompacted);

    // Segments with records newer than the lag stay, and so does everything after them.
    log.update_config(LogConfig {
        min_compaction_lag_ms: 1_000,
        ..config()
    });
    assert_eq!(
        log.clean(1_500).unwrap().outcome,
        CleanOutcome::NothingToClean
    );
    let stats = log.clean(2_004).unwrap();
    assert_eq!(stats.outcome, CleanOutcome::Cleaned);
    assert!(
        stats.first_dirty_offset > 0 && stats.first_dirty_offset < 100,
        "{stats:?}"
    );
    assert_eq!(log.clean(100_000).unwrap().first_dirty_offset, 100);

    // A little new data against the clean part is below the 0.5 ratio.
    log.update_config(config());
    append(&log, "k1", Some("late"), 4_000);
    let s = log.clean(0).unwrap();
    assert_eq!(
        s.outcome,
        CleanOutcome::NothingToClean,
        "only in the active segment yet"
    );
    roll(&log);
    assert_eq!(log.clean(0).unwrap().outcome, CleanOutcome::BelowDirtyRatio);
    log.update_config(always_cleanable());
    assert_eq!(log.clean(0).unwrap().outcome, CleanOutcome::Cleaned);
    let records = read_records(&log);
    assert_eq!(records.len(), 10);
    assert_eq!(records.last().unwrap().value.as_deref(), Some("late"));
}

#[test]
fn a_small_dedupe_buffer_cleans_in_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), always_cleanable());
    fill(&log);
    roll(&log);
    let before = read_records(&log);
    // Room for three keys: each pass covers a stretch of the log and leaves the rest dirty.
    let small = CleanerConfig {
        dedupe_buffer_bytes: 3 * (2 + 64),
        ..CleanerConfig::default()
    };
    let mut checkpoints = Vec::new();
    loop {
        let stats = log.clean_with(0, &small).unwrap();
        if stats.outcome != CleanOutcome::Cleaned {
            assert_eq!(stats.outcome, CleanOutcome::NothingToClean);
            break;
        }
        checkpoints.push(stats.first_dirty_offset);
        assert!(checkpoints.len() < 50, "no progress: {checkpoints:?}");
    }
    assert!(checkpoints.len() > 3, "{checkpoints:?}");
    assert!(checkpoints.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*checkpoints.last().unwrap(), 100);
    assert_eq!(read_records(&log), latest(&before));
}

#[test]
fn compact_and_delete_applies_retention_to_cleaned_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            cleanup_policy: CleanupPolicy::CompactAndDelete,
            retention_ms: Some(DAY_MS),
            ..config()
        },
    );
    fill(&log);
    roll(&log);
    log.clean(0).unwrap();
    assert_eq!(log.apply_retention(1_009 + DAY_MS).unwrap(), 0);
    assert_eq!(
        log.log_start_offset(),
        0,
        "compaction never moves the log start"
    );
    assert_eq!(log.apply_retention(1_010 + DAY_MS).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 100);
    assert!(read_records(&log).is_empty());
}

/// Leaves the log's directory as a crash at each step of a swap would, by cleaning a copy and
/// combining files of both; every variant must reopen to the old or the cleaned content.
#[test]
fn a_crash_at_any_step_of_a_swap_loses_nothing() {
    let original = tempfile::tempdir().unwrap();
    {
        let log = open(original.path(), config());
        fill(&log);
        roll(&log);
        log.close().unwrap();
    }
    let old_bases = segment_bases(original.path());
    let old_records = read_records(&open(original.path(), config()));
    let cleaned = tempfile::tempdir().unwrap();
    copy_dir(original.path(), cleaned.path());
    {
        let log = open(cleaned.path(), config());
        assert_eq!(log.clean(0).unwrap().outcome, CleanOutcome::Cleaned);
        log.close().unwrap();
    }
    let new_records = read_records(&open(cleaned.path(), config()));
    assert_eq!(new_records, latest(&old_records));
    let name = |base: i64, ext: &str| offset_file_name(base, ext);
    let new_file = |ext: &str| fs::read(cleaned.path().join(name(0, ext))).unwrap();
    let group: Vec<i64> = old_bases.iter().copied().filter(|b| *b < 100).collect();

    struct Case<'a> {
        what: &'static str,
        build: Box<dyn Fn(&Path) + 'a>,
        cleaned: bool,
    }
    let cases = vec![
        Case {
            what: "cleaned files half written",
            build: Box::new(|d: &Path| {
                fs::write(
                    d.join(format!("{}.cleaned", name(0, "log"))),
                    &new_file("log")[..99],
                )
                .unwrap();
                fs::write(d.join(format!("{}.cleaned", name(0, "index"))), b"").unwrap();
            }),
            cleaned: false,
        },
        Case {
            what: "indexes renamed to .swap, log not yet",
            build: Box::new(|d: &Path| {
                fs::write(
                    d.join(format!("{}.cleaned", name(0, "log"))),
                    new_file("log"),
                )
                .unwrap();
                fs::write(
                    d.join(format!("{}.swap", name(0, "index"))),
                    new_file("index"),
                )
                .unwrap();
                fs::write(
                    d.join(format!("{}.swap", name(0, "timeindex"))),
                    new_file("timeindex"),
                )
                .unwrap();
            }),
            cleaned: false,
        },
        Case {
            what: "swap committed, old segments all there",
            build: Box::new(|d: &Path| {
                fs::write(d.join(format!("{}.swap", name(0, "log"))), new_file("log")).unwrap();
                fs::write(
                    d.join(format!("{}.swap", name(0, "index"))),
                    new_file("index"),
                )
                .unwrap();
            }),
            cleaned: true,
        },
        Case {
            what: "old segments removed, swap not yet renamed",
            build: Box::new(|d: &Path| {
                fs::write(d.join(format!("{}.swap", name(0, "log"))), new_file("log")).unwrap();
                for &b in &group {
                    for ext in ["index", "timeindex"] {
                        fs::remove_file(d.join(name(b, ext))).unwrap();
                    }
                    if b != 0 {
                        fs::remove_file(d.join(name(b, "log"))).unwrap();
                    }
                }
            }),
            cleaned: true,
        },
        Case {
            what: "log renamed into place, indexes still .swap",
            build: Box::new(|d: &Path| {
                for &b in &group {
                    for ext in ["log", "index", "timeindex"] {
                        fs::remove_file(d.join(name(b, ext))).unwrap();
                    }
                }
                fs::write(d.join(name(0, "log")), new_file("log")).unwrap();
                fs::write(
                    d.join(format!("{}.swap", name(0, "index"))),
                    new_file("index"),
                )
                .unwrap();
            }),
            cleaned: true,
        },
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(original.path(), dir.path());
        (case.build)(dir.path());
        let log = open(dir.path(), config());
        let expected = if case.cleaned {
            &new_records
        } else {
            &old_records
        };
        assert_eq!(&read_records(&log), expected, "{}", case.what);
        assert_eq!(log.log_end_offset(), 100, "{}", case.what);
        for suffix in [".cleaned", ".swap"] {
            assert!(
                files_with_suffix(dir.path(), suffix).is_empty(),
                "{}",
                case.what
            );
        }
        // And the log is fully usable: a pass over it ends in the cleaned content.
        log.clean(0).unwrap();
        assert_eq!(read_records(&log), new_records, "{}", case.what);
        assert_eq!(append(&log, "k0", Some("after"), 0), 100, "{}", case.what);
    }
}

fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut v: Vec<i64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| crate::log::parse_offset_file_name(&e.unwrap().path(), "log"))
        .collect();
    v.sort_unstable();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target: PathBuf = to.join(e.file_name());
        fs::copy(e.path(), target).unwrap();
    }
}

#[test]
fn truncation_or_retention_during_a_pass_abandons_its_output() {
    for interference in ["truncate", "retention", "close"] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(
            dir.path(),
            LogConfig {
                cleanup_policy: CleanupPolicy::CompactAndDelete,
                retention_bytes: Some(5_000),
                ..config()
            },
        );
        fill(&log);
        roll(&log);
        let before = read_records(&log);
        // The lock-free half of a pass, then the interference, then the swap.
        let plan = log.plan_clean(0).unwrap().unwrap();
        let mut map = OffsetMap::new(1 << 20);
        let MapFill::Covered(map_end) = fill_offset_map(
            &plan.sources,
            0,
            &mut map,
            &CleanerConfig::default(),
            &AtomicBool::new(false),
        )
        .unwrap() else {
            panic!("not aborted")
        };
        let config = CleanerConfig::default();
        let mut compactor = Compactor {
            map: &map,
            map_end,
            now_ms: 0,
            delete_retention_ms: DAY_MS,
            config: &config,
            stats: CleanStats::default(),
            next_tombstone_expiry: None,
        };
        let (cleaned, n) = compactor
            .write_group(
                dir.path(),
                &plan.sources,
                &plan.config,
                &AtomicBool::new(false),
            )
            .unwrap()
            .unwrap();
        let group = &plan.sources[..n];
        assert_eq!(files_with_suffix(dir.path(), ".cleaned").len(), 3);
        match interference {
            "truncate" => log.truncate_to(50).unwrap(),
            "retention" => assert!(log.apply_retention(0).unwrap() > 0),
            _ => log.close().unwrap(),
        }
        assert!(!log.swap_in(group, cleaned, plan.truncations).unwrap());
        assert!(files_with_suffix(dir.path(), ".cleaned").is_empty());
        if interference == "truncate" {
            assert_eq!(read_records(&log), before[..50].to_vec());
            assert_eq!(log.cleaner_checkpoint(), None);
            // The next pass starts over and works.
            assert_eq!(log.clean(0).unwrap().outcome, CleanOutcome::Cleaned);
        }
    }
}

#[test]
fn reads_and_appends_run_while_a_pass_cleans() {
    let dir = tempfile::tempdir().unwrap();
    let eager = always_cleanable();
    let log = Arc::new(open(dir.path(), eager));
    const KEYS: usize = 7;
    const WRITES: usize = 3_000;
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for i in 0..WRITES {
                let key = format!("k{}", i % KEYS);
                let value = format!("{i}");
                append(&log, &key, Some(&value), 1_000);
            }
        })
    };
    let reader = {
        let (log, done) = (log.clone(), done.clone());
        std::thread::spawn(move || {
            let mut passes = 0;
            while !done.load(Ordering::Acquire) || passes < 3 {
                // Every read sees whole, valid batches, offsets rising, and for each key values
                // rising: compaction only ever removes older values.
                let records = read_records(&log);
                let mut last_value: BTreeMap<String, usize> = BTreeMap::new();
                for w in records.windows(2) {
                    assert!(w[0].offset < w[1].offset);
                }
                for r in &records {
                    let v: usize = r.value.as_deref().unwrap().parse().unwrap();
                    assert_eq!(r.key.as_deref(), Some(format!("k{}", v % KEYS).as_str()));
                    let prev = last_value.insert(r.key.clone().unwrap(), v);
                    assert!(prev.map_or(true, |p| p < v));
                }
                passes += 1;
            }
            passes
        })
    };
    let mut cleaned = 0;
    while !writer.is_finished() {
        if log.clean(0).unwrap().outcome == CleanOutcome::Cleaned {
            cleaned += 1;
        }
    }
    writer.join().unwrap();
    roll(&log);
    log.clean(0).unwrap();
    done.store(true, Ordering::Release);
    let passes = reader.join().unwrap();
    assert!(passes >= 3);
    assert!(cleaned > 0, "the cleaner ran during the writes");
    let records = read_records(&log);
    assert_eq!(records.len(), KEYS);
    for (i, r) in records.iter().enumerate() {
        let expected = WRITES - KEYS + i;
        assert_eq!(r.offset, expected as i64);
        assert_eq!(r.value, Some(expected.to_string()));
    }
    assert_eq!(log.log_end_offset(), WRITES as i64);
}

#[test]
fn segments_emptied_by_cleaning_stay_as_placeholders_that_reads_skip() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    fill(&log);
    roll(&log);
    let bases = log.segment_base_offsets();
    let before = read_records(&log);
    // Segments bigger than the new segment.bytes cannot be grouped: each is cleaned on its own,
    // and those whose records are all superseded become empty segments at their base offset.
    log.update_config(LogConfig {
        segment_bytes: 100,
        ..config()
    });
    log.clean(0).unwrap();
    assert_eq!(log.segment_base_offsets(), bases);
    let sizes: Vec<u64> = bases
        .iter()
        .map(|b| {
            fs::metadata(dir.path().join(offset_file_name(*b, "log")))
                .unwrap()
                .len()
        })
        .collect();
    assert!(sizes[..3].iter().all(|s| *s == 0), "{sizes:?}");
    assert_eq!(read_records(&log), latest(&before));
    let r = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    let (h, _) = Batches::new(r.records).next().unwrap().unwrap();
    assert_eq!(h.base_offset, 90);
    for clean_shutdown in [true, false] {
        log.flush().unwrap();
        let reopened = Log::open(dir.path(), tp(), config(), 100, clean_shutdown).unwrap();
        assert_eq!(reopened.log_start_offset(), 0);
        assert_eq!(read_records(&reopened), latest(&before));
    }
    // With room again, the next pass merges the placeholders away.
    log.update_config(always_cleanable());
    append(&log, "k0", Some("v10"), 2_000);
    roll(&log);
    assert_eq!(log.clean(0).unwrap().outcome, CleanOutcome::Cleaned);
    assert_eq!(log.segment_base_offsets(), vec![0, 101]);
}
