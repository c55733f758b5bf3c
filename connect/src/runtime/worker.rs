//! `Worker`: builds connectors from the registry, splits them into tasks and runs each task on
//! a tokio task of its own. One failing task is recorded as FAILED and leaves the rest running.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use super::config::{ConnectorConfig, ErrorTolerance, WorkerConfig};
use super::offset_store::FileOffsetBackingStore;
use super::sink_task::WorkerSinkTask;
use super::source_task::WorkerSourceTask;
use super::status::{ConnectorStatus, ConnectorType, StatusStore};
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

struct RunningConnector {
    connector: Option<Connector>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Runs connectors and their tasks in this process (Kafka's `Worker`, standalone flavour).
pub struct Worker {
    config: Arc<WorkerConfig>,
    registry: ConnectorRegistry,
    offsets: Arc<FileOffsetBackingStore>,
    statuses: StatusStore,
    connectors: Mutex<BTreeMap<String, RunningConnector>>,
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
        })
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    pub fn offset_store(&self) -> &Arc<FileOffsetBackingStore> {
        &self.offsets
    }

    /// Starts connector `name` from its properties (`connector.class`, `tasks.max`, ...).
    pub async fn start_connector(&self, name: &str, mut props: Props) -> Result<()> {
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
        self.start(config).await
    }

    /// Starts a connector whose configuration is already parsed. Errors are returned only for
    /// what a person must fix (an unknown class, a duplicate name, a rejected configuration);
    /// a connector that fails while starting is recorded as FAILED, as Kafka does.
    pub async fn start(&self, config: ConnectorConfig) -> Result<()> {
        let mut connectors = self.connectors.lock().await;
        let name = config.name.clone();
        if connectors.contains_key(&name) {
            return Err(ConnectError::Config(format!(
                "connector {name} is already running"
            )));
        }
        let mut connector = self.registry.create(&config.class)?;
        let kind = match &connector {
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
        let key_spec = config
            .key_converter
            .clone()
            .unwrap_or_else(|| self.config.key_converter.clone());
        let value_spec = config
            .value_converter
            .clone()
            .unwrap_or_else(|| self.config.value_converter.clone());
        key_spec.build(true)?;
        value_spec.build(false)?;

        self.statuses.insert(&name, kind);
        let (stop, stop_rx) = watch::channel(false);
        let mut running = RunningConnector {
            connector: None,
            stop,
            tasks: Vec::new(),
        };
        let task_configs = match start_and_split(&mut connector, &config).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(connector = %name, error = %e, "connector failed to start");
                self.statuses.connector_failed(&name, &e.to_string());
                running.connector = Some(connector);
                connectors.insert(name, running);
                return Ok(());
            }
        };
        self.statuses.connector_running(&name, task_configs.len());
        let connector_config = Arc::new(config);
        for (id, mut props) in task_configs.into_iter().enumerate() {
            if kind == ConnectorType::Sink {
                // The worker subscribes for the task, so it passes on what the connector was
                // told to read, whatever the connector put in the task's configuration.
                for key in ["topics", "topics.regex"] {
                    match connector_config.props.get(key) {
                        Some(v) => props.insert(key.to_string(), v.clone()),
                        None => props.remove(key),
                    };
                }
            }
            let setup = TaskSetup {
                connector: name.clone(),
                id,
                props,
                config: self.config.clone(),
                connector_config: connector_config.clone(),
                key_converter: key_spec.build(true)?,
                value_converter: value_spec.build(false)?,
                transforms: TransformationChain::from_props(&connector_config.props)?,
                statuses: self.statuses.clone(),
                stop: stop_rx.clone(),
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
        connectors.insert(name, running);
        Ok(())
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
            return Err(ConnectError::Config(format!("no connector named {name}")));
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
