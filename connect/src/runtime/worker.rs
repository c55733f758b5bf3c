//! `Worker`: builds connectors from the registry, splits them into tasks and runs each task on
//! a tokio task of its own. One failing task is recorded as FAILED and leaves the rest running.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use super::config::{ConnectorConfig, ConverterSpec, ErrorTolerance, WorkerConfig};
use super::offset_store::FileOffsetBackingStore;
use super::sink_task::WorkerSinkTask;
use super::source_task::WorkerSourceTask;
use super::status::{ConnectorStatus, ConnectorType, State, StatusStore};
use crate::connector::{Connector, ConnectorRegistry, Props};
use crate::converter::Converter;
use crate::error::{ConnectError, Result};
use crate::transforms::TransformationChain;

/// What every task loop needs besides its task.
pub(crate) struct TaskSetup {
    pub(crate) connector: String,
    pub(crate) id: usize,
    /// The task's own configuration, from the connector's `task_configs`.
    pub(crate) props: Props,
    pub(crate) config: Arc<WorkerConfig>,
    pub(crate) connector_config: Arc<ConnectorConfig>,
    pub(crate) key_converter: Box<dyn Converter>,
    pub(crate) value_converter: Box<dyn Converter>,
    /// The connector's `transforms`, applied to source records after poll and to sink records
    /// after conversion.
    pub(crate) transforms: TransformationChain,
    pub(crate) statuses: StatusStore,
    pub(crate) stop: watch::Receiver<bool>,
    /// True while the connector is paused: sources stop polling, sinks pause their partitions.
    pub(crate) paused: watch::Receiver<bool>,
}

impl TaskSetup {
    /// Applies `errors.tolerance` to a conversion or transform failure: `Ok` means skip the record.
    pub(crate) fn tolerate(&self, error: &ConnectError, what: &str) -> Result<()> {
        match self.connector_config.errors_tolerance {
            ErrorTolerance::None => Err(ConnectError::Connector(format!(
                "cannot convert {what} (errors.tolerance=none): {error}"
            ))),
            ErrorTolerance::All => {
                if self.connector_config.errors_log_enable {
                    tracing::error!(connector = %self.connector, task = self.id, error = %error, "skipping {what}");
                }
                Ok(())
            }
        }
    }
}

/// What a connector is asked to be doing (Kafka's target state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Started,
    Paused,
    /// No tasks run, but the configuration is kept.
    Stopped,
}

struct RunningConnector {
    connector: Option<Connector>,
    config: Arc<ConnectorConfig>,
    kind: ConnectorType,
    target: TargetState,
    task_configs: Vec<Props>,
    stop: watch::Sender<bool>,
    pause: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// A connector as the REST API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorInfo {
    pub name: String,
    pub config: Props,
    pub kind: ConnectorType,
    /// Task ids; empty while the connector is stopped or failed to start.
    pub tasks: Vec<usize>,
}

/// A registered connector class, for `GET /connector-plugins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub class: String,
    pub kind: ConnectorType,
    pub version: String,
}

/// Runs connectors and their tasks in this process (Kafka's `Worker`, standalone flavour).
pub struct Worker {
    config: Arc<WorkerConfig>,
    registry: ConnectorRegistry,
    offsets: Arc<FileOffsetBackingStore>,
    statuses: StatusStore,
    connectors: Mutex<BTreeMap<String, RunningConnector>>,
    cluster_id: tokio::sync::OnceCell<Option<String>>,
}

impl Worker {
    /// Opens the offset file, so a bad one is reported before any connector starts.
    pub fn new(config: WorkerConfig, registry: ConnectorRegistry) -> Result<Worker> {
        let offsets = Arc::new(FileOffsetBackingStore::open(&config.offset_storage_file)?);
        Ok(Worker {
            config: Arc::new(config),
            registry,
            offsets,
            statuses: StatusStore::default(),
            connectors: Mutex::new(BTreeMap::new()),
            cluster_id: tokio::sync::OnceCell::new(),
        })
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    pub fn offset_store(&self) -> &Arc<FileOffsetBackingStore> {
        &self.offsets
    }

    /// Starts connector `name` from its properties (`connector.class`, `tasks.max`, ...).
    pub async fn start_connector(&self, name: &str, props: Props) -> Result<()> {
        self.start(parse_config(name, props)?).await
    }

    /// Starts a connector whose configuration is already parsed. Errors are returned only for
    /// what a person must fix (an unknown class, a duplicate name, a rejected configuration);
    /// a connector that fails while starting is recorded as FAILED, as Kafka does.
    pub async fn start(&self, config: ConnectorConfig) -> Result<()> {
        let mut connectors = self.connectors.lock().await;
        if connectors.contains_key(&config.name) {
            return Err(ConnectError::Config(format!(
                "connector {} is already running",
                config.name
            )));
        }
        let running = self.launch(Arc::new(config), TargetState::Started).await?;
        connectors.insert(running.config.name.clone(), running);
        Ok(())
    }

    /// Creates connector `name` or replaces its configuration, keeping its target state.
    /// Returns true when it was created. A rejected configuration leaves the old one running.
    pub async fn put_connector_config(&self, name: &str, props: Props) -> Result<bool> {
        let config = Arc::new(parse_config(name, props)?);
        // Checked before the old one is stopped, so a typo does not take a connector down.
        self.check(&config)?;
        let mut connectors = self.connectors.lock().await;
        let (created, target) = match connectors.remove(name) {
            Some(old) => {
                let target = old.target;
                self.stop_running(name, old).await;
                (false, target)
            }
            None => (true, TargetState::Started),
        };
        let running = self.launch(config, target).await?;
        connectors.insert(name.to_string(), running);
        Ok(created)
    }

    /// Names of every connector this worker knows, stopped ones included, sorted.
    pub async fn connector_names(&self) -> Vec<String> {
        self.connectors.lock().await.keys().cloned().collect()
    }

    pub async fn connector_info(&self, name: &str) -> Option<ConnectorInfo> {
        let connectors = self.connectors.lock().await;
        let running = connectors.get(name)?;
        Some(ConnectorInfo {
            name: name.to_string(),
            config: running.config.props.clone(),
            kind: running.kind,
            tasks: (0..running.task_configs.len()).collect(),
        })
    }

    /// The configuration each task was started with.
    pub async fn task_configs(&self, name: &str) -> Option<Vec<Props>> {
        let connectors = self.connectors.lock().await;
        connectors.get(name).map(|r| r.task_configs.clone())
    }

    /// Pauses, resumes or stops a connector. Pausing and resuming a running connector only
    /// flips its tasks' pause signal; leaving or entering STOPPED shuts down or starts tasks.
    pub async fn set_target_state(&self, name: &str, target: TargetState) -> Result<()> {
        let mut connectors = self.connectors.lock().await;
        let Some(running) = connectors.get_mut(name) else {
            return Err(not_found(name));
        };
        if running.target == target {
            return Ok(());
        }
        let was_stopped = running.target == TargetState::Stopped;
        if target == TargetState::Stopped || was_stopped {
            let old = connectors.remove(name).expect("present");
            let config = old.config.clone();
            self.stop_running(name, old).await;
            let running = self.launch(config, target).await?;
            connectors.insert(name.to_string(), running);
            return Ok(());
        }
        running.target = target;
        let paused = target == TargetState::Paused;
        let _ = running.pause.send(paused);
        self.statuses.connector_paused(name, paused);
        Ok(())
    }

    /// Restarts a connector and its tasks with the configuration it has. With `only_failed`,
    /// nothing happens unless the connector or (with `include_tasks`) one of its tasks failed.
    pub async fn restart_connector(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<()> {
        let mut connectors = self.connectors.lock().await;
        if !connectors.contains_key(name) {
            return Err(not_found(name));
        }
        if only_failed {
            let failed = self.statuses.get(name).is_some_and(|s| {
                s.state == State::Failed
                    || (include_tasks && s.tasks.iter().any(|t| t.state == State::Failed))
            });
            if !failed {
                return Ok(());
            }
        }
        let old = connectors.remove(name).expect("present");
        let (config, target) = (old.config.clone(), old.target);
        self.stop_running(name, old).await;
        let running = self.launch(config, target).await?;
        connectors.insert(name.to_string(), running);
        Ok(())
    }

    /// Every registered connector class with its kind and version, sorted by class.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        let mut plugins: Vec<PluginInfo> = self
            .registry
            .classes()
            .filter_map(|class| {
                let (kind, version) = match self.registry.create(class).ok()? {
                    Connector::Source(c) => (ConnectorType::Source, c.version()),
                    Connector::Sink(c) => (ConnectorType::Sink, c.version()),
                };
                Some(PluginInfo {
                    class: class.to_string(),
                    kind,
                    version,
                })
            })
            .collect();
        plugins.sort_by(|a, b| a.class.cmp(&b.class));
        plugins.dedup_by(|a, b| a.class == b.class);
        plugins
    }

    /// The Kafka cluster's id, asked for once; `None` when the cluster cannot be reached.
    pub async fn kafka_cluster_id(&self) -> Option<String> {
        self.cluster_id
            .get_or_init(|| async {
                let client = self.config.client_config("connect-cluster-id", &[]);
                let admin = sluice_client::Admin::new(client).ok()?;
                let described =
                    tokio::time::timeout(Duration::from_secs(5), admin.describe_cluster()).await;
                described.ok()?.ok()?.cluster_id
            })
            .await
            .clone()
    }

    /// Refuses what a person must fix: an unknown class, a rejected configuration, a
    /// converter that cannot be built.
    fn check(&self, config: &ConnectorConfig) -> Result<ConnectorType> {
        let kind = match self.registry.create(&config.class)? {
            Connector::Source(c) => {
                c.validate(&config.props)?;
                ConnectorType::Source
            }
            Connector::Sink(c) => {
                c.validate(&config.props)?;
                ConnectorType::Sink
            }
        };
        // Transforms and converters are built before anything runs, so a bad one fails the start.
        TransformationChain::from_props(&config.props)?;
        self.key_spec(config).build(true)?;
        self.value_spec(config).build(false)?;
        Ok(kind)
    }

    fn key_spec(&self, config: &ConnectorConfig) -> ConverterSpec {
        config
            .key_converter
            .clone()
            .unwrap_or_else(|| self.config.key_converter.clone())
    }

    fn value_spec(&self, config: &ConnectorConfig) -> ConverterSpec {
        config
            .value_converter
            .clone()
            .unwrap_or_else(|| self.config.value_converter.clone())
    }

    /// Builds and starts a connector and its tasks in `target` state; the caller holds the
    /// connectors lock and records the result.
    async fn launch(
        &self,
        config: Arc<ConnectorConfig>,
        target: TargetState,
    ) -> Result<RunningConnector> {
        let kind = self.check(&config)?;
        let name = config.name.clone();
        let (key_spec, value_spec) = (self.key_spec(&config), self.value_spec(&config));
        self.statuses.insert(&name, kind);
        let (stop, stop_rx) = watch::channel(false);
        let (pause, pause_rx) = watch::channel(target == TargetState::Paused);
        let mut running = RunningConnector {
            connector: None,
            config: config.clone(),
            kind,
            target,
            task_configs: Vec::new(),
            stop,
            pause,
            tasks: Vec::new(),
        };
        if target == TargetState::Stopped {
            self.statuses.connector_halted(&name);
            return Ok(running);
        }
        let mut connector = self.registry.create(&config.class)?;
        let task_configs = match start_and_split(&mut connector, &config).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(connector = %name, error = %e, "connector failed to start");
                self.statuses.connector_failed(&name, &e.to_string());
                running.connector = Some(connector);
                return Ok(running);
            }
        };
        self.statuses.connector_running(&name, task_configs.len());
        if target == TargetState::Paused {
            self.statuses.connector_paused(&name, true);
        }
        for (id, mut props) in task_configs.into_iter().enumerate() {
            if kind == ConnectorType::Sink {
                // The worker subscribes for the task, so it passes on what the connector was
                // told to read, whatever the connector put in the task's configuration.
                for key in ["topics", "topics.regex"] {
                    match config.props.get(key) {
                        Some(v) => props.insert(key.to_string(), v.clone()),
                        None => props.remove(key),
                    };
                }
            }
            running.task_configs.push(props.clone());
            let setup = TaskSetup {
                connector: name.clone(),
                id,
                props,
                config: self.config.clone(),
                connector_config: config.clone(),
                key_converter: key_spec.build(true)?,
                value_converter: value_spec.build(false)?,
                transforms: TransformationChain::from_props(&config.props)?,
                statuses: self.statuses.clone(),
                stop: stop_rx.clone(),
                paused: pause_rx.clone(),
            };
            let statuses = self.statuses.clone();
            let work = match &connector {
                Connector::Source(c) => tokio::spawn(
                    WorkerSourceTask {
                        setup,
                        task: c.create_task(),
                        store: self.offsets.clone(),
                    }
                    .run(),
                ),
                Connector::Sink(c) => tokio::spawn(
                    WorkerSinkTask {
                        setup,
                        task: c.create_task(),
                    }
                    .run(),
                ),
            };
            let task_name = name.clone();
            // A panicking task must still show as FAILED rather than RUNNING forever.
            running.tasks.push(tokio::spawn(async move {
                if let Err(e) = work.await {
                    statuses.task_failed(&task_name, id, &format!("task panicked: {e}"));
                }
            }));
        }
        running.connector = Some(connector);
        Ok(running)
    }

    pub fn connector_status(&self, name: &str) -> Option<ConnectorStatus> {
        self.statuses.get(name)
    }

    pub fn statuses(&self) -> Vec<ConnectorStatus> {
        self.statuses.all()
    }

    /// Stops one connector's tasks (each flushing or committing its offsets), then the
    /// connector itself, and forgets it.
    pub async fn stop_connector(&self, name: &str) -> Result<()> {
        let running = self.connectors.lock().await.remove(name);
        let Some(running) = running else {
            return Err(not_found(name));
        };
        self.stop_running(name, running).await;
        self.statuses.remove(name);
        Ok(())
    }

    /// Stops every connector; their statuses stay queryable (UNASSIGNED, or FAILED).
    pub async fn stop(&self) {
        let all = std::mem::take(&mut *self.connectors.lock().await);
        for (name, running) in all {
            self.stop_running(&name, running).await;
        }
    }

    async fn stop_running(&self, name: &str, running: RunningConnector) {
        let _ = running.stop.send(true);
        for task in running.tasks {
            let _ = task.await;
        }
        let stopped = match running.connector {
            Some(Connector::Source(mut c)) => c.stop().await,
            Some(Connector::Sink(mut c)) => c.stop().await,
            None => Ok(()),
        };
        if let Err(e) = stopped {
            tracing::warn!(connector = %name, error = %e, "connector stop failed");
        }
        self.statuses.connector_stopped(name);
    }
}

fn parse_config(name: &str, mut props: Props) -> Result<ConnectorConfig> {
    props
        .entry("name".to_string())
        .or_insert_with(|| name.to_string());
    let config = ConnectorConfig::from_props(props, &format!("connector {name}"))?;
    if config.name != name {
        return Err(ConnectError::Config(format!(
            "connector {name} has name={} in its properties",
            config.name
        )));
    }
    Ok(config)
}

fn not_found(name: &str) -> ConnectError {
    ConnectError::NotFound(format!("Connector {name} not found"))
}

async fn start_and_split(
    connector: &mut Connector,
    config: &ConnectorConfig,
) -> Result<Vec<Props>> {
    let configs = match connector {
        Connector::Source(c) => {
            c.start(config.props.clone()).await?;
            c.task_configs(config.tasks_max)?
        }
        Connector::Sink(c) => {
            c.start(config.props.clone()).await?;
            c.task_configs(config.tasks_max)?
        }
    };
    // A connector asking for more tasks than allowed is capped, not trusted.
    Ok(configs.into_iter().take(config.tasks_max).collect())
}
