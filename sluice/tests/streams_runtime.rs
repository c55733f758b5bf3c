//! Sluice Streams against the real broker: exact word counts over four partitions, a restart
//! that resumes state and offsets, and two instances (processes) where one is killed with -9.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::clients::TestClients;
use common::BrokerProcess;
use sluice_client::ProducerRecord;
use sluice_streams::serdes::{LongSerde, StringSerde};
use sluice_streams::{
    Consumed, Grouped, KafkaStreams, Materialized, Produced, StreamsBuilder, StreamsConfig,
    Topology,
};

const INPUT: &str = "wc-input";
const OUTPUT: &str = "wc-output";
const PARTITIONS: i32 = 4;

fn wordcount() -> Topology {
    wordcount_into(Materialized::as_store("counts"))
}

fn wordcount_into(store: Materialized<String, i64>) -> Topology {
    let b = StreamsBuilder::new();
    b.stream::<Option<String>, String>(INPUT, Consumed::with(StringSerde, StringSerde))
        .flat_map_values(|l: String| {
            l.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(
            |_, w: &String| w.clone(),
            Grouped::with(StringSerde, StringSerde),
        )
        .count(store)
        .to_stream()
        .to(OUTPUT, Produced::with(StringSerde, LongSerde));
    b.build().unwrap()
}

fn repartition_topic(app: &str) -> String {
    let t = wordcount()
        .internal_topics(app)
        .into_iter()
        .find(|t| t.name.ends_with("-repartition"))
        .expect("word count repartitions by word");
    t.name
}

fn streams_config(app: &str, bootstrap: &str, state: &Path) -> StreamsConfig {
    StreamsConfig::new()
        .set("application.id", app)
        .set("bootstrap.servers", bootstrap)
        .set("commit.interval.ms", "500")
        .set("state.dir", state.display().to_string())
        .set("consumer.session.timeout.ms", "6000")
        .set("consumer.heartbeat.interval.ms", "500")
        .set("producer.linger.ms", "5")
}

/// Lines of words from a small vocabulary, different for each `seed`.
fn lines(seed: u64, n: usize) -> Vec<String> {
    let vocab = [
        "kafka", "sluice", "stream", "table", "join", "window", "count", "topic", "broker",
        "record", "offset", "group", "Alpha", "beta", "gamma", "delta",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let words = 1 + next() % 6;
            (0..words)
                .map(|_| vocab[(next() % vocab.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn count_words<'a>(into: &mut BTreeMap<String, i64>, lines: impl IntoIterator<Item = &'a String>) {
    for l in lines {
        for w in l.split_whitespace() {
            *into.entry(w.to_lowercase()).or_default() += 1;
        }
    }
}

/// The test's own clients (see `common::clients`), with word count's inputs and outputs.
struct Cluster(TestClients);

impl std::ops::Deref for Cluster {
    type Target = TestClients;
    fn deref(&self) -> &TestClients {
        &self.0
    }
}

impl Cluster {
    fn new(bootstrap: &str) -> Cluster {
        Cluster(TestClients::new(bootstrap))
    }

    fn create(&self, topic: &str, partitions: i32) {
        self.0.create(topic, partitions, &[]);
    }

    /// Keyless lines: the producer spreads them over the input's partitions.
    fn produce(&self, lines: &[String]) {
        self.rt.block_on(async {
            let mut futures = Vec::new();
            for l in lines {
                let f = self
                    .producer
                    .send(ProducerRecord::new(INPUT).value(l.clone().into_bytes()))
                    .await
                    .unwrap();
                futures.push(f);
            }
            for f in futures {
                f.await.unwrap();
            }
        });
    }

    /// The output topic's latest count per word.
    fn counts(&self) -> BTreeMap<String, i64> {
        let mut m = BTreeMap::new();
        for r in self.read(OUTPUT) {
            let k = String::from_utf8(r.key.expect("keyed output").to_vec()).unwrap();
            let v: [u8; 8] = r.value.expect("a count")[..]
                .try_into()
                .expect("8-byte counts");
            m.insert(k, i64::from_be_bytes(v));
        }
        m
    }

    /// Waits for the output to show exactly `expected`, failing with the last counts seen.
    fn await_counts(&self, expected: &BTreeMap<String, i64>, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let got = self.counts();
            if &got == expected {
                return;
            }
            let over: Vec<_> = got
                .iter()
                .filter(|(k, v)| expected.get(*k).map_or(true, |e| *v > e))
                .collect();
            assert!(
                over.is_empty(),
                "{what}: counts above the truth with no failure: {over:?}"
            );
            assert!(
                Instant::now() < deadline,
                "{what}: counts never matched\nexpected {expected:?}\ngot      {got:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Waits until the group has committed the end of `topic`'s partitions.
    fn await_committed(&self, group: &str, topic: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let ends = self.end_offsets(topic);
            let committed = self.committed(group, topic);
            if ends
                .iter()
                .all(|(p, e)| *e == 0 || committed.get(p) == Some(e))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{group} never committed the end of {topic}: ends {ends:?}, committed {committed:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn start(app: &str, bootstrap: &str, state: &Path, threads: usize) -> KafkaStreams {
    let cfg = streams_config(app, bootstrap, state).set("num.stream.threads", threads.to_string());
    let mut s = KafkaStreams::new(wordcount(), cfg);
    s.start().unwrap();
    s
}

#[test]
fn word_count_over_four_partitions_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let c = Cluster::new(&broker.bootstrap());

    // Missing source topics stop start-up with their names.
    let mut early = KafkaStreams::new(
        wordcount(),
        streams_config("wc-early", &broker.bootstrap(), &dir.path().join("s0")),
    );
    let e = early.start().expect_err("no input topic yet").to_string();
    assert!(e.contains("source topics missing: wc-input"), "{e}");

    c.create(INPUT, PARTITIONS);
    c.create(OUTPUT, PARTITIONS);
    let input = lines(1, 3000);
    c.produce(&input);
    let mut streams = start("wc-exact", &broker.bootstrap(), &dir.path().join("s1"), 2);
    let mut expected = BTreeMap::new();
    count_words(&mut expected, &input);
    c.await_counts(&expected, "first batch");
    // Records arriving while running are counted too.
    let more = lines(2, 500);
    c.produce(&more);
    count_words(&mut expected, &more);
    c.await_counts(&expected, "second batch");
    assert_eq!(streams.local_tasks().len(), 2 * PARTITIONS as usize);
    streams.close().unwrap();

    // The internal topics: a compacted changelog and a repartition topic of four partitions.
    let changelog = "wc-exact-counts-changelog";
    assert_eq!(c.partitions(changelog).len(), PARTITIONS as usize);
    assert_eq!(
        c.partitions(&repartition_topic("wc-exact")).len(),
        PARTITIONS as usize
    );
    let configs = c.rt.block_on(c.admin.describe_configs(changelog)).unwrap();
    let policy = configs.iter().find(|e| e.name == "cleanup.policy").unwrap();
    assert_eq!(policy.value.as_deref(), Some("compact"));
    c.await_committed("wc-exact", INPUT);
}

#[test]
fn a_restarted_instance_resumes_its_state_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let c = Cluster::new(&broker.bootstrap());
    c.create(INPUT, PARTITIONS);
    c.create(OUTPUT, PARTITIONS);
    let app = "wc-restart";
    let first = lines(3, 1000);
    c.produce(&first);
    let mut expected = BTreeMap::new();
    count_words(&mut expected, &first);
    let mut streams = start(app, &broker.bootstrap(), &dir.path().join("state"), 1);
    c.await_counts(&expected, "before the restart");
    // A second instance cannot share the running one's state directory.
    let mut twin = KafkaStreams::new(
        wordcount(),
        streams_config(app, &broker.bootstrap(), &dir.path().join("state")),
    );
    let refused = twin.start().unwrap_err().to_string();
    assert!(refused.contains("in use by another"), "{refused}");
    streams.close().unwrap();
    // A clean close commits everything processed (partitions never written have nothing).
    let mut ends = c.end_offsets(INPUT);
    ends.retain(|_, e| *e > 0);
    assert_eq!(c.committed(app, INPUT), ends);

    let second = lines(4, 1000);
    c.produce(&second);
    count_words(&mut expected, &second);
    // A new state dir: in-memory stores come back from the changelog alone. Counts going on
    // from the first batch's totals show the state was restored (from zero they would be
    // lower) and the offsets kept (reading the first batch again would make them higher).
    let mut streams = start(app, &broker.bootstrap(), &dir.path().join("state2"), 1);
    c.await_counts(&expected, "after the restart");
    assert!(streams.restored_records() > 0, "nothing was restored");
    streams.close().unwrap();
}

#[test]
fn a_persistent_store_comes_back_from_disk_with_nothing_to_restore() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let c = Cluster::new(&broker.bootstrap());
    c.create(INPUT, PARTITIONS);
    c.create(OUTPUT, PARTITIONS);
    let app = "wc-disk";
    let state = dir.path().join("state");
    let run = || {
        let mut s = KafkaStreams::new(
            wordcount_into(Materialized::as_persistent_store("counts")),
            streams_config(app, &broker.bootstrap(), &state),
        );
        s.start().unwrap();
        s
    };
    let first = lines(7, 1000);
    c.produce(&first);
    let mut expected = BTreeMap::new();
    count_words(&mut expected, &first);
    let mut streams = run();
    c.await_counts(&expected, "before the restart");
    streams.close().unwrap();

    let second = lines(8, 1000);
    c.produce(&second);
    count_words(&mut expected, &second);
    // The stores on disk hold everything up to their checkpoints, which a clean close wrote at
    // the changelogs' ends: nothing is replayed, and counting goes on from the stored totals.
    let mut streams = run();
    c.await_counts(&expected, "after the restart");
    assert_eq!(streams.restored_records(), 0, "the changelog was replayed");
    streams.close().unwrap();
}

// ---- two instances in separate processes ----------------------------------------------------

const CHILD_ENV: &str = "SLUICE_STREAMS_CHILD_DIR";

/// Not a test on its own: the body of a child process that the kill test starts by running
/// this test binary with `CHILD_ENV` set. It runs word count, writes its tasks and restored
/// record count to `<dir>/status`, and closes cleanly when `<dir>/stop` appears.
#[test]
fn streams_child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let bootstrap = std::env::var("SLUICE_STREAMS_CHILD_BOOTSTRAP").unwrap();
    let app = std::env::var("SLUICE_STREAMS_CHILD_APP").unwrap();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,sluice_client=warn",
        ))
        .with_writer(std::io::stderr)
        .try_init();
    let cfg =
        streams_config(&app, &bootstrap, &dir.join("state")).set("commit.interval.ms", "5000");
    let mut streams = KafkaStreams::new(wordcount(), cfg);
    streams.start().unwrap();
    while !dir.join("stop").exists() {
        let tasks: Vec<String> = streams
            .local_tasks()
            .iter()
            .map(|t| t.to_string())
            .collect();
        let status = format!("{}\n{}\n", tasks.join(" "), streams.restored_records());
        std::fs::write(dir.join("status.tmp"), status).unwrap();
        std::fs::rename(dir.join("status.tmp"), dir.join("status")).unwrap();
        assert!(
            !streams.wait(Some(Duration::from_millis(100))),
            "the app stopped"
        );
    }
    streams.close().unwrap();
}

struct Instance {
    child: Option<Child>,
    dir: PathBuf,
}

impl Instance {
    fn start(dir: PathBuf, bootstrap: &str, app: &str) -> Instance {
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "streams_child_process", "--nocapture"])
            .env(CHILD_ENV, &dir)
            .env("SLUICE_STREAMS_CHILD_BOOTSTRAP", bootstrap)
            .env("SLUICE_STREAMS_CHILD_APP", app)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        Instance {
            child: Some(child),
            dir,
        }
    }

    /// (tasks, changelog records restored) as the instance last wrote them.
    fn status(&self) -> (BTreeSet<String>, u64) {
        let text = std::fs::read_to_string(self.dir.join("status")).unwrap_or_default();
        let mut lines = text.lines();
        let tasks = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let restored = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        (tasks, restored)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn stop(&mut self) {
        std::fs::write(self.dir.join("stop"), b"").unwrap();
        if let Some(mut c) = self.child.take() {
            let status = c.wait().unwrap();
            assert!(status.success(), "instance failed:\n{}", self.log());
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn await_tasks(what: &str, check: impl Fn() -> bool, logs: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check() {
        assert!(Instant::now() < deadline, "{what}\n{}", logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_instances_share_the_work_and_one_survives_the_other_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let c = Cluster::new(&broker.bootstrap());
    c.create(INPUT, PARTITIONS);
    c.create(OUTPUT, PARTITIONS);
    let app = "wc-pair";
    let repartition = repartition_topic(app);
    let batch1 = lines(5, 2000);
    c.produce(&batch1);
    let mut expected = BTreeMap::new();
    count_words(&mut expected, &batch1);

    let mut a = Instance::start(dir.path().join("a"), &broker.bootstrap(), app);
    let all: BTreeSet<String> = (0..2)
        .flat_map(|s| (0..PARTITIONS).map(move |p| format!("{s}_{p}")))
        .collect();
    await_tasks(
        "a never started its tasks",
        || a.status().0 == all,
        || a.log(),
    );
    c.await_counts(&expected, "one instance");
    // b joins while a is busy: a hands tasks over with processed but not yet committed
    // records (it commits every 5 s), which b would count again if a did not commit
    // them before giving the tasks up.
    let mut b = Instance::start(dir.path().join("b"), &broker.bootstrap(), app);
    for i in 0..60 {
        let chunk = lines(100 + i, 50);
        c.produce(&chunk);
        count_words(&mut expected, &chunk);
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = || format!("--- a:\n{}\n--- b:\n{}", a.log(), b.log());
    await_tasks(
        "the two instances never split the tasks",
        || {
            let (ta, tb) = (a.status().0, b.status().0);
            !ta.is_empty() && !tb.is_empty() && ta.is_disjoint(&tb) && ta.union(&tb).count() == 8
        },
        logs,
    );
    // Hand-overs between live instances commit first: the counts are exact.
    c.await_counts(&expected, "two instances");
    c.await_committed(app, INPUT);
    c.await_committed(app, &repartition);
    let (tasks_b, _) = b.status();
    assert_eq!(
        a.status()
            .0
            .union(&tasks_b)
            .cloned()
            .collect::<BTreeSet<_>>(),
        all
    );

    // Half of the second batch, then kill -9 in the middle of work: b commits every 5 s, so
    // it most likely has processed records it has not committed.
    let batch2 = lines(6, 4000);
    c.produce(&batch2[..2000]);
    std::thread::sleep(Duration::from_millis(700));
    let tasks_b = b.status().0;
    b.kill9();
    // What b may have processed without committing: from the group's committed offsets to
    // the ends of the logs now, on b's partitions (nobody else commits them until a takes
    // over, after b's session expires).
    let input_from = c.committed(app, INPUT);
    let input_to = c.end_offsets(INPUT);
    let rep_from = c.committed(app, &repartition);
    let rep_to = c.end_offsets(&repartition);
    c.produce(&batch2[2000..]);
    count_words(&mut expected, &batch2);

    await_tasks(
        "the survivor never took over every task",
        || a.status().0 == all,
        || a.log(),
    );
    // Everything read and committed: the counts are final.
    c.await_committed(app, INPUT);
    c.await_committed(app, &repartition);
    let got = {
        // The outputs of the last commit's records may still be arriving.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = c.counts();
            if expected.keys().all(|k| got.get(k) >= expected.get(k)) || Instant::now() > deadline {
                break got;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };

    // At-least-once may repeat only b's uncommitted work: each word of an input line b read
    // after its last commit can be counted once more (a reprocesses the line), and each
    // repartitioned word b counted after its last commit once more (a restores b's changelog,
    // which may already hold it, then counts it again). Anything beyond is a real error, as is
    // any count below the truth (lost records or lost state).
    let mut allowed: BTreeMap<String, i64> = BTreeMap::new();
    let b_parts = |sub: u32| -> BTreeSet<i32> {
        tasks_b
            .iter()
            .filter_map(|t| {
                let (s, p) = t.split_once('_')?;
                (s.parse::<u32>().ok()? == sub)
                    .then(|| p.parse().ok())
                    .flatten()
            })
            .collect()
    };
    let (b_input, b_rep) = (b_parts(0), b_parts(1));
    let mut replayable_lines = Vec::new();
    for r in c.read_range(INPUT, &input_from, Some(&input_to)) {
        if b_input.contains(&r.partition) {
            replayable_lines.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    count_words(&mut allowed, &replayable_lines);
    for r in c.read_range(&repartition, &rep_from, Some(&rep_to)) {
        if b_rep.contains(&r.partition) {
            *allowed
                .entry(String::from_utf8(r.key.unwrap().to_vec()).unwrap())
                .or_default() += 1;
        }
    }
    let mut repeated = 0;
    for (word, &truth) in &expected {
        let n = got.get(word).copied().unwrap_or(0);
        let may = allowed.get(word).copied().unwrap_or(0);
        assert!(
            n >= truth,
            "{word}: counted {n} < {truth} records: lost input or state\n{}",
            a.log()
        );
        assert!(
            n <= truth + may,
            "{word}: counted {n}, but {truth} records and at most {may} repeats after b's last commit"
        );
        repeated += n - truth;
    }
    assert_eq!(got.len(), expected.len(), "unexpected words: {got:?}");
    let (_, restored) = a.status();
    assert!(
        restored > 0,
        "a took over b's tasks without restoring their stores"
    );
    eprintln!(
        "kill -9: {repeated} words counted twice; at most {} could be",
        allowed.values().sum::<i64>()
    );
    a.stop();
}
