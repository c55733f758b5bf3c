//! The Connect quickstart at scale: 1 GiB of lines (SLUICE_PIPELINE_MB to change the size) of
//! varied length, ASCII mixed with 2-, 3- and 4-byte UTF-8 and characters JSON must escape, go
//! FileStreamSource -> connect-test (JsonConverter) -> FileStreamSink through the embedded
//! broker, with the shipped configs, and the sink file must equal the source byte for byte.
//! bench/connect_pipeline.sh is the same pipeline as a benchmark.

mod common;

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{connect_quickstart_dir, text_pieces, ConnectWorker, Rng};

const DEFAULT_MB: u64 = 1024;
/// About 20 times what the pipeline needs for 1 GiB on a quiet machine, for shared ones.
const TIMEOUT: Duration = Duration::from_secs(600);

/// Writes lines to `path` until it holds at least `size` bytes and returns its size: mostly 1
/// to ~300 bytes, 2.5% of 1 to 8 KB (the long lines real logs have: stack traces, JSON
/// documents), 0.5% of a single piece of 1 to 8 characters.
fn generate(path: &Path, size: u64) -> u64 {
    let mut rng = Rng::new(0x16bf_11e0);
    let pieces = text_pieces(&mut rng, 4096);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let mut line = Vec::with_capacity(16 << 10);
    let mut written = 0u64;
    while written < size {
        let target = match rng.below(1000) {
            0..=4 => 1,
            5..=29 => 1000 + rng.below(7000),
            _ => 1 + rng.below(300),
        };
        line.clear();
        while line.len() < target {
            line.extend_from_slice(pieces[rng.below(pieces.len())].as_bytes());
        }
        line.push(b'\n');
        out.write_all(&line).unwrap();
        written += line.len() as u64;
    }
    out.into_inner().unwrap().sync_all().unwrap();
    written
}

/// Fills `buf` as far as the file allows; short only at the end of the file.
fn read_full(file: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// Compares the files a chunk at a time (two 1 GiB files do not belong in memory) and fails at
/// the first differing byte, naming its offset and line with both sides around it.
fn assert_same_file(sink: &Path, source: &Path) {
    const CHUNK: usize = 4 << 20;
    let (mut a, mut b) = (File::open(sink).unwrap(), File::open(source).unwrap());
    let (mut got, mut want) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let (mut offset, mut line) = (0u64, 1u64);
    loop {
        let (n, m) = (read_full(&mut a, &mut got), read_full(&mut b, &mut want));
        let same = got[..n]
            .iter()
            .zip(&want[..m])
            .take_while(|(x, y)| x == y)
            .count();
        if same < n.max(m) {
            line += want[..same].iter().filter(|&&c| c == b'\n').count() as u64;
            let at = offset + same as u64;
            let around = |v: &[u8], len: usize| {
                let from = same.saturating_sub(40);
                String::from_utf8_lossy(&v[from..(same + 40).min(len)]).into_owned()
            };
            panic!(
                "test.sink.txt differs from test.txt at byte {at} (line {line}){}\n got: {:?}\n want: {:?}",
                if same == m { ": the sink is longer" } else if same == n { ": the sink is shorter" } else { "" },
                around(&got, n),
                around(&want, m)
            );
        }
        if n == 0 {
            return;
        }
        offset += n as u64;
        line += want[..n].iter().filter(|&&c| c == b'\n').count() as u64;
    }
}

#[test]
fn a_gigabyte_of_lines_goes_through_the_file_connectors_unchanged() {
    let mb: u64 = std::env::var("SLUICE_PIPELINE_MB")
        .map(|v| {
            v.parse()
                .expect("SLUICE_PIPELINE_MB is a whole number of MiB")
        })
        .unwrap_or(DEFAULT_MB);
    // Declared before the worker, so a panic kills the worker before the files go.
    let dir = tempfile::tempdir().unwrap();
    connect_quickstart_dir(dir.path(), &[]);
    let source = dir.path().join("test.txt");
    let sink = dir.path().join("test.sink.txt");

    let started = Instant::now();
    let size = generate(&source, mb << 20);
    let generated = started.elapsed();

    let started = Instant::now();
    let mut worker = ConnectWorker::start(dir.path());
    let sink_size = || std::fs::metadata(&sink).map(|m| m.len()).unwrap_or(0);
    loop {
        worker.assert_running();
        let now = sink_size();
        if now >= size {
            break;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "after {TIMEOUT:?} test.sink.txt has {now} of test.txt's {size} bytes\n{}",
            worker.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let moved = started.elapsed();
    worker.stop();
    assert_same_file(&sink, &source);
    println!(
        "{size} bytes: generated in {generated:.1?}, through the pipeline in {moved:.1?} ({:.0} MB/s)",
        size as f64 / 1e6 / moved.as_secs_f64()
    );
    dir.close().unwrap();
}
