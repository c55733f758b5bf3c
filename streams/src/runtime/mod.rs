//! `KafkaStreams`: runs a topology against a cluster through sluice-client only: internal
//! topics at start-up, stream threads (one group member each), start, close and waiting.

mod config;
mod partition_group;
mod state_dir;
mod thread;
mod topics;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use config::{StreamsConfig, STREAMS_KEYS};

use crate::error::StreamsError;
use crate::topology::{TaskId, Topology};

/// Where an application is in its life (Kafka's `KafkaStreams.State`, without REBALANCING).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    PendingShutdown,
    NotRunning,
    /// A stream thread failed; the others were stopped. `close` returns the error.
    Error,
}

/// What the stream threads and the application handle share.
pub(crate) struct Shared {
    stop: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
    live_threads: Mutex<usize>,
    errors: Mutex<Vec<String>>,
    tasks: Mutex<BTreeMap<usize, Vec<TaskId>>>,
    commits: AtomicU64,
    restored: AtomicU64,
    processed: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub(crate) fn set_tasks(&self, thread: usize, tasks: Vec<TaskId>) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(thread, tasks);
    }

    pub(crate) fn note_commit(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_restored(&self, n: u64) {
        self.restored.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn note_processed(&self, n: u64) {
        self.processed.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn note_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    fn set_state(&self, s: State) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = s;
        self.changed.notify_all();
    }

    fn thread_ended(&self, index: usize, result: Result<(), StreamsError>) {
        if let Err(e) = result {
            tracing::error!(thread = index, error = %e, "stream thread failed; stopping the application");
            self.errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("stream thread {index}: {e}"));
            self.stop.store(true, Ordering::Relaxed);
            self.set_state(State::Error);
        }
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&index);
        let mut live = self.live_threads.lock().unwrap_or_else(|p| p.into_inner());
        *live -= 1;
        drop(live);
        self.changed.notify_all();
    }
}

/// Stops a running application from elsewhere (a signal handler, another thread).
#[derive(Clone)]
pub struct CloseHandle(Arc<Shared>);

impl CloseHandle {
    /// Asks every stream thread to commit and stop; returns at once.
    pub fn close(&self) {
        self.0.stop.store(true, Ordering::Relaxed);
        self.0.changed.notify_all();
    }
}

/// A streams application: a topology run by `num.stream.threads` stream threads, each a member
/// of consumer group `application.id` with the tasks of the partitions it is assigned.
///
/// `start` checks the source topics, creates the internal topics and starts the threads;
/// `close` stops them (committing what was processed) and waits. Each thread runs its own
/// single-threaded Tokio runtime, so these calls work from plain and async code alike (they
/// block the calling thread).
pub struct KafkaStreams {
    topology: Arc<Topology>,
    config: StreamsConfig,
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Held from `start` to `close`.
    state_lock: Option<state_dir::StateDirLock>,
}

impl KafkaStreams {
    pub fn new(topology: Topology, config: StreamsConfig) -> KafkaStreams {
        KafkaStreams {
            topology: Arc::new(topology),
            config,
            shared: Arc::new(Shared {
                stop: AtomicBool::new(false),
                state: Mutex::new(State::Created),
                changed: Condvar::new(),
                live_threads: Mutex::new(0),
                errors: Mutex::new(Vec::new()),
                tasks: Mutex::new(BTreeMap::new()),
                commits: AtomicU64::new(0),
                restored: AtomicU64::new(0),
                processed: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
            threads: Vec::new(),
            state_lock: None,
        }
    }

    pub fn state(&self) -> State {
        *self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn close_handle(&self) -> CloseHandle {
        CloseHandle(self.shared.clone())
    }

    /// The tasks this instance runs now, over all its threads.
    pub fn local_tasks(&self) -> Vec<TaskId> {
        let tasks = self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<TaskId> = tasks.values().flatten().copied().collect();
        all.sort();
        all
    }

    /// Offset commits made by the processing loops so far (not counting commits on revocation).
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Changelog records replayed into stores so far.
    pub fn restored_records(&self) -> u64 {
        self.shared.restored.load(Ordering::Relaxed)
    }

    /// Input records the tasks of this instance have processed so far (Kafka's process-total);
    /// their outputs may not be acknowledged yet.
    pub fn processed_records(&self) -> u64 {
        self.shared.processed.load(Ordering::Relaxed)
    }

    /// Records this instance's tasks dropped so far (Kafka's dropped-records-total): late for
    /// closed windows, without the key an aggregation or join needs, or unreadable and skipped
    /// by `LogAndContinueExceptionHandler`.
    pub fn dropped_records(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Validates the config, prepares the topics and starts the stream threads.
    pub fn start(&mut self) -> Result<(), StreamsError> {
        if self.state() != State::Created {
            return Err(StreamsError::Runtime(
                "start can be called once, on a new KafkaStreams".into(),
            ));
        }
        let settings = self.config.settings()?;
        let app = settings.application_id.clone();
        self.state_lock = Some(state_dir::StateDirLock::acquire(
            &settings.state_dir.join(&app),
        )?);
        // Its own thread and runtime, so start works inside or outside an async runtime.
        let (topology, config) = (self.topology.clone(), self.config.clone());
        let rf = settings.replication_factor;
        let prepared = std::thread::spawn(move || -> Result<(), StreamsError> {
            let rt = runtime()?;
            rt.block_on(async {
                let admin = sluice_client::Admin::new(config.admin(&app))
                    .map_err(|e| StreamsError::Config(format!("admin client: {e}")))?;
                let counts = topics::prepare(&admin, &topology, &app, rf).await?;
                tracing::info!(application = %app, partitions = ?counts, "internal topics ready");
                Ok(())
            })
        })
        .join()
        .map_err(|_| StreamsError::Runtime("start-up panicked".into()))?;
        if let Err(e) = prepared {
            self.shared.set_state(State::Error);
            return Err(e);
        }
        *self
            .shared
            .live_threads
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = settings.num_threads;
        for index in 1..=settings.num_threads {
            let t = thread::StreamThread {
                index,
                topology: self.topology.clone(),
                config: self.config.clone(),
                settings: settings.clone(),
                shared: self.shared.clone(),
            };
            let shared = self.shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{}-StreamThread-{index}", settings.application_id))
                .spawn(move || {
                    let result = runtime().and_then(|rt| rt.block_on(t.run()));
                    shared.thread_ended(index, result);
                })
                .map_err(|e| StreamsError::Runtime(format!("spawning a stream thread: {e}")))?;
            self.threads.push(handle);
        }
        self.shared.set_state(State::Running);
        Ok(())
    }

    /// Waits until every stream thread has stopped (after `close` from a [`CloseHandle`], or
    /// a failure), up to `timeout`; true if they have.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut live = self
            .shared
            .live_threads
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        while *live > 0 {
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(w) => w,
                    None => return false,
                },
                None => Duration::from_secs(3600),
            };
            live = self
                .shared
                .changed
                .wait_timeout(live, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Stops the threads: each finishes its batch, flushes its tasks, waits for its outputs,
    /// commits and leaves the group. Returns the first thread failure, if any.
    pub fn close(&mut self) -> Result<(), StreamsError> {
        if self.state() == State::Running {
            self.shared.set_state(State::PendingShutdown);
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                self.shared
                    .errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push("a stream thread panicked".into());
            }
        }
        self.state_lock = None;
        let errors = self
            .shared
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if errors.is_empty() {
            self.shared.set_state(State::NotRunning);
            Ok(())
        } else {
            self.shared.set_state(State::Error);
            Err(StreamsError::Runtime(errors.join("; ")))
        }
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            let _ = self.close();
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, StreamsError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StreamsError::Runtime(format!("cannot start a Tokio runtime: {e}")))
}
