//! `Worker`: builds connectors from the registry, splits them into tasks and runs each task on
//! a tokio task of its own. One failing task is recorded as FAILED and leaves the rest running.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use super::config::{ConnectorConfig, ConverterSpec, ErrorTolerance, WorkerConfig};
use super::offset_store::{FileOffsetBackingStore, OffsetBackingStore};
use super::sink_task::WorkerSinkTask;
use super::source_task::WorkerSourceTask;
use super::status::{ConnectorStatus, ConnectorType, State, StatusStore};
use super::validation::{self, ConfigInfos};
use crate::connector::{
    ConfigKey, Connector, ConnectorRegistry, Props, SourceOffset, SourcePartition,
};
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

/// One task's loop and its own stop signal, so a single task can be restarted.
struct RunningTask {
    stop: watch::Sender<bool>,
    /// Taken when awaited: a finished handle must not be awaited twice.
    handle: Option<JoinHandle<()>>,
}

impl RunningTask {
    async fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }
}

struct RunningConnector {
    connector: Option<Connector>,
    config: Arc<ConnectorConfig>,
    kind: ConnectorType,
    target: TargetState,
    task_configs: Vec<Props>,
    pause: watch::Sender<bool>,
    /// Indexed by task id.
    tasks: Vec<RunningTask>,
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

/// A connector's position in one partition, as `GET /connectors/{name}/offsets` lists it.
/// A source's partitions and offsets are the maps its records carried; a sink's are
/// `{"kafka_topic", "kafka_partition"}` and `{"kafka_offset"}`, its group's committed offsets.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorOffset {
    pub partition: SourcePartition,
    /// `None`, in a change request, erases the partition's offset.
    pub offset: Option<SourceOffset>,
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
        // send_replace: the value must change even while no task is listening.
        running.pause.send_replace(paused);
        self.statuses.connector_paused(name, paused);
        Ok(())
    }

    /// Restarts what a restart request covers (Kafka's KIP-745): the connector unless
    /// `only_failed` and it has not failed; with `include_tasks`, its tasks, or with
    /// `only_failed` its failed ones. Returns the status as the request found it, with
    /// RESTARTING for everything restarted. A stopped connector has nothing to restart.
    pub async fn restart_connector(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<ConnectorStatus> {
        let mut connectors = self.connectors.lock().await;
        let running = connectors.get_mut(name).ok_or_else(|| not_found(name))?;
        let mut plan = self.statuses.get(name).ok_or_else(|| not_found(name))?;
        if running.target == TargetState::Stopped {
            return Ok(plan);
        }
        let restart_connector = !only_failed || plan.state == State::Failed;
        let mut tasks = Vec::new();
        if restart_connector {
            plan.state = State::Restarting;
            plan.trace = None;
        }
        for t in plan.tasks.iter_mut() {
            if include_tasks && (!only_failed || t.state == State::Failed) {
                t.state = State::Restarting;
                t.trace = None;
                tasks.push(t.id);
            }
        }
        if restart_connector && self.restart_instance(running).await? {
            // Its tasks were replaced along with their configurations.
            return Ok(plan);
        }
        for id in tasks {
            self.restart_task_of(running, id).await?;
        }
        Ok(plan)
    }

    /// Stops one task and starts it again with the configuration it had.
    pub async fn restart_task(&self, name: &str, id: usize) -> Result<()> {
        let mut connectors = self.connectors.lock().await;
        let running = connectors.get_mut(name).ok_or_else(|| not_found(name))?;
        if id >= running.tasks.len() {
            return Err(ConnectError::NotFound(format!(
                "Task {name}-{id} not found"
            )));
        }
        self.restart_task_of(running, id).await
    }

    async fn restart_task_of(&self, running: &mut RunningConnector, id: usize) -> Result<()> {
        running.tasks[id].stop().await;
        let fresh = self.spawn_task(running, id)?;
        running.tasks[id] = fresh;
        Ok(())
    }

    /// Restarts the connector object alone. Its tasks keep running unless it now splits the
    /// work differently, in which case they are replaced with the new configurations, as Kafka
    /// reconfigures tasks. Returns whether the tasks were replaced.
    async fn restart_instance(&self, running: &mut RunningConnector) -> Result<bool> {
        let name = running.config.name.clone();
        if let Some(old) = running.connector.take() {
            stop_instance(&name, old).await;
        }
        let (connector, configs) = self.start_instance(&running.config, running.kind).await?;
        running.connector = Some(connector);
        match configs {
            Err(e) => {
                // As in Kafka, a connector that fails leaves the tasks it had running.
                tracing::error!(connector = %name, error = %e, "connector failed to restart");
                self.statuses.connector_failed(&name, &e.to_string());
                Ok(false)
            }
            Ok(configs) if configs == running.task_configs => {
                let paused = running.target == TargetState::Paused;
                self.statuses.connector_restarted(&name, paused);
                Ok(false)
            }
            Ok(configs) => {
                stop_tasks(running).await;
                self.run_tasks(running, configs)?;
                Ok(true)
            }
        }
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

    /// The settings plugin `plugin` declares for itself.
    pub fn plugin_config(&self, plugin: &str) -> Result<Vec<ConfigKey>> {
        Ok(validation::connector_keys(&self.registry.create(plugin)?))
    }

    /// Checks a configuration for plugin `plugin` without starting anything. A
    /// `connector.class` naming another plugin is refused; a missing one is the plugin.
    pub fn validate_config(&self, plugin: &str, mut props: Props) -> Result<ConfigInfos> {
        let class = self.registry.resolve(plugin)?.to_string();
        if let Some(named) = props
            .get("connector.class")
            .filter(|c| !c.trim().is_empty())
        {
            if self.registry.resolve(named).ok() != Some(class.as_str()) {
                return Err(ConnectError::Config(format!(
                    "connector.class {named} is not the plugin being validated, {class}"
                )));
            }
        }
        props.insert("connector.class".into(), class.clone());
        let connector = self.registry.create(&class)?;
        Ok(validation::validate(&connector, &class, &props))
    }

    /// Where connector `name` has got to: a source's saved offsets, or the offsets its sink
    /// group has committed.
    pub async fn connector_offsets(&self, name: &str) -> Result<Vec<ConnectorOffset>> {
        let (kind, config) = {
            let connectors = self.connectors.lock().await;
            let running = connectors.get(name).ok_or_else(|| not_found(name))?;
            (running.kind, running.config.clone())
        };
        if kind == ConnectorType::Source {
            return Ok(self
                .offsets
                .connector_offsets(name)
                .into_iter()
                .map(|(partition, offset)| ConnectorOffset {
                    partition,
                    offset: Some(offset),
                })
                .collect());
        }
        let group = sink_group(&config);
        let committed = self
            .admin(name)?
            .list_group_offsets(&group)
            .await
            .map_err(|e| client_failure(&format!("reading the offsets of group {group}"), e))?;
        Ok(committed
            .into_iter()
            .map(|((topic, partition), c)| ConnectorOffset {
                partition: SourcePartition::from([
                    ("kafka_topic".to_string(), topic.into()),
                    ("kafka_partition".to_string(), partition.into()),
                ]),
                offset: Some(SourceOffset::from([(
                    "kafka_offset".to_string(),
                    c.offset.into(),
                )])),
            })
            .collect())
    }

    /// Erases every offset of a stopped connector, so that once resumed it starts afresh: a
    /// source's saved offsets, or a sink's whole consumer group.
    pub async fn reset_connector_offsets(&self, name: &str) -> Result<()> {
        // Held throughout, so the connector cannot be resumed halfway through.
        let connectors = self.connectors.lock().await;
        let running = stopped(&connectors, name)?;
        if running.kind == ConnectorType::Source {
            self.offsets.remove(name, None);
            return self.offsets.flush();
        }
        let group = sink_group(&running.config);
        let what = format!("deleting group {group}");
        let deleted = self
            .admin(name)?
            .delete_groups(std::slice::from_ref(&group))
            .await
            .map_err(|e| client_failure(&what, e))?;
        match deleted.into_values().next() {
            Some(Err(e)) if !group_missing(&e) => Err(client_failure(&what, e)),
            _ => Ok(()),
        }
    }

    /// Sets or (for a `None` offset) erases some offsets of a stopped connector.
    pub async fn alter_connector_offsets(
        &self,
        name: &str,
        offsets: Vec<ConnectorOffset>,
    ) -> Result<()> {
        let connectors = self.connectors.lock().await;
        let running = stopped(&connectors, name)?;
        if offsets.is_empty() {
            return Err(ConnectError::Config(
                "no offsets to change were given".into(),
            ));
        }
        if running.kind == ConnectorType::Source {
            let (set, erase): (Vec<_>, Vec<_>) =
                offsets.into_iter().partition(|o| o.offset.is_some());
            let erase: Vec<SourcePartition> = erase.into_iter().map(|o| o.partition).collect();
            self.offsets.remove(name, Some(&erase));
            self.offsets.set(
                name,
                set.into_iter()
                    .filter_map(|o| Some((o.partition, o.offset?)))
                    .collect(),
            );
            return self.offsets.flush();
        }
        let mut set = BTreeMap::new();
        let mut erase = Vec::new();
        for o in &offsets {
            let (tp, offset) = sink_position(o)?;
            match offset {
                Some(offset) => {
                    set.insert(tp, offset);
                }
                None => erase.push(tp),
            }
        }
        let group = sink_group(&running.config);
        let admin = self.admin(name)?;
        if !set.is_empty() {
            admin
                .alter_group_offsets(&group, &set)
                .await
                .map_err(|e| client_failure(&format!("committing offsets for group {group}"), e))?;
        }
        if !erase.is_empty() {
            let what = format!("deleting offsets of group {group}");
            let deleted = match admin.delete_group_offsets(&group, &erase).await {
                Err(e) if group_missing(&e) => BTreeMap::new(),
                other => other.map_err(|e| client_failure(&what, e))?,
            };
            if let Some(Err(e)) = deleted.into_values().find(|r| r.is_err()) {
                return Err(client_failure(&what, e));
            }
        }
        Ok(())
    }

    fn admin(&self, name: &str) -> Result<sluice_client::Admin> {
        let client = self
            .config
            .client_config(&format!("connector-adminclient-{name}"), &[]);
        sluice_client::Admin::new(client)
            .map_err(|e| ConnectError::Connector(format!("cannot create an admin client: {e}")))
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
        self.statuses.insert(&name, kind);
        let (pause, _) = watch::channel(target == TargetState::Paused);
        let mut running = RunningConnector {
            connector: None,
            config: config.clone(),
            kind,
            target,
            task_configs: Vec::new(),
            pause,
            tasks: Vec::new(),
        };
        if target == TargetState::Stopped {
            self.statuses.connector_halted(&name);
            return Ok(running);
        }
        let (connector, configs) = self.start_instance(&config, kind).await?;
        running.connector = Some(connector);
        match configs {
            Ok(configs) => self.run_tasks(&mut running, configs)?,
            Err(e) => {
                tracing::error!(connector = %name, error = %e, "connector failed to start");
                self.statuses.connector_failed(&name, &e.to_string());
            }
        }
        Ok(running)
    }

    /// Builds and starts the connector object and asks it for its tasks' configurations. The
    /// outer error is for what a person must fix; the inner one is the connector failing.
    async fn start_instance(
        &self,
        config: &ConnectorConfig,
        kind: ConnectorType,
    ) -> Result<(Connector, Result<Vec<Props>>)> {
        let mut connector = self.registry.create(&config.class)?;
        let configs = start_and_split(&mut connector, config)
            .await
            .map(|configs| {
                configs
                    .into_iter()
                    .map(|mut props| {
                        if kind == ConnectorType::Sink {
                            // The worker subscribes for the task, so it passes on what the
                            // connector was told to read, whatever the connector put in the
                            // task's configuration.
                            for key in ["topics", "topics.regex"] {
                                match config.props.get(key) {
                                    Some(v) => props.insert(key.to_string(), v.clone()),
                                    None => props.remove(key),
                                };
                            }
                        }
                        props
                    })
                    .collect()
            });
        Ok((connector, configs))
    }

    /// Records the connector as running with `configs` and starts one task for each.
    fn run_tasks(&self, running: &mut RunningConnector, configs: Vec<Props>) -> Result<()> {
        let name = running.config.name.clone();
        self.statuses.connector_running(&name, configs.len());
        if running.target == TargetState::Paused {
            self.statuses.connector_paused(&name, true);
        }
        running.task_configs = configs;
        for id in 0..running.task_configs.len() {
            let task = self.spawn_task(running, id)?;
            running.tasks.push(task);
        }
        Ok(())
    }

    /// Starts task `id` of a running connector with its configuration.
    fn spawn_task(&self, running: &RunningConnector, id: usize) -> Result<RunningTask> {
        let config = &running.config;
        let name = config.name.clone();
        let Some(connector) = &running.connector else {
            return Err(ConnectError::Connector(format!(
                "connector {name} is not running"
            )));
        };
        let (stop, stop_rx) = watch::channel(false);
        let setup = TaskSetup {
            connector: name.clone(),
            id,
            props: running.task_configs[id].clone(),
            config: self.config.clone(),
            connector_config: config.clone(),
            key_converter: self.key_spec(config).build(true)?,
            value_converter: self.value_spec(config).build(false)?,
            transforms: TransformationChain::from_props(&config.props)?,
            statuses: self.statuses.clone(),
            stop: stop_rx,
            paused: running.pause.subscribe(),
        };
        let work = match connector {
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
        let statuses = self.statuses.clone();
        // A panicking task must still show as FAILED rather than RUNNING forever.
        let handle = tokio::spawn(async move {
            if let Err(e) = work.await {
                statuses.task_failed(&name, id, &format!("task panicked: {e}"));
            }
        });
        Ok(RunningTask {
            stop,
            handle: Some(handle),
        })
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

    async fn stop_running(&self, name: &str, mut running: RunningConnector) {
        stop_tasks(&mut running).await;
        if let Some(connector) = running.connector {
            stop_instance(name, connector).await;
        }
        self.statuses.connector_stopped(name);
    }
}

/// Stops every task of a connector, all signalled before any is awaited so they wind down
/// together, and forgets their configurations.
async fn stop_tasks(running: &mut RunningConnector) {
    for task in &running.tasks {
        let _ = task.stop.send(true);
    }
    for task in running.tasks.iter_mut() {
        task.stop().await;
    }
    running.tasks.clear();
    running.task_configs.clear();
}

async fn stop_instance(name: &str, connector: Connector) {
    let stopped = match connector {
        Connector::Source(mut c) => c.stop().await,
        Connector::Sink(mut c) => c.stop().await,
    };
    if let Err(e) = stopped {
        tracing::warn!(connector = %name, error = %e, "connector stop failed");
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

/// The group a sink connector's tasks consume in: `connect-<name>`, unless the connector
/// overrides `group.id` for its consumers, as the sink task's consumer settings allow.
fn sink_group(config: &ConnectorConfig) -> String {
    config
        .consumer_overrides
        .get("group.id")
        .cloned()
        .unwrap_or_else(|| format!("connect-{}", config.name))
}

/// Offsets may only change while nothing uses them, so Kafka requires STOPPED.
fn stopped<'a>(
    connectors: &'a BTreeMap<String, RunningConnector>,
    name: &str,
) -> Result<&'a RunningConnector> {
    let running = connectors.get(name).ok_or_else(|| not_found(name))?;
    if running.target != TargetState::Stopped {
        return Err(ConnectError::Config(format!(
            "connector {name} must be stopped (PUT /connectors/{name}/stop) before its offsets can change"
        )));
    }
    Ok(running)
}

/// The broker's GROUP_ID_NOT_FOUND: a group that does not exist has no offsets to erase.
fn group_missing(e: &sluice_client::ClientError) -> bool {
    const GROUP_ID_NOT_FOUND: i16 = 69;
    e.code().is_some_and(|c| c.code() == GROUP_ID_NOT_FOUND)
}

fn client_failure(what: &str, e: sluice_client::ClientError) -> ConnectError {
    ConnectError::Connector(format!("{what}: {e}"))
}

/// A sink offset as the REST API writes it, read back into a partition and an offset.
/// Numbers are accepted as JSON numbers or as text, since both turn up in hand-written bodies.
fn sink_position(o: &ConnectorOffset) -> Result<((String, i32), Option<i64>)> {
    let whole =
        |map: &std::collections::BTreeMap<String, serde_json::Value>, key: &str| -> Option<i64> {
            match map.get(key)? {
                serde_json::Value::Number(n) => n.as_i64(),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
        };
    let bad = |what: &str| {
        ConnectError::Config(format!(
            "a sink offset needs {what}: {}",
            serde_json::to_string(&o.partition).unwrap_or_default()
        ))
    };
    let topic = o
        .partition
        .get("kafka_topic")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("a kafka_topic string"))?;
    let partition = whole(&o.partition, "kafka_partition")
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p >= 0)
        .ok_or_else(|| bad("a kafka_partition of at least 0"))?;
    let offset = match &o.offset {
        None => None,
        Some(offset) => Some(
            whole(offset, "kafka_offset")
                .filter(|o| *o >= 0)
                .ok_or_else(|| bad("a kafka_offset of at least 0"))?,
        ),
    };
    Ok(((topic.to_string(), partition), offset))
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
