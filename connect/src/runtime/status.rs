//! What each connector and task is doing, as Kafka's status API reports it. Shared between the
//! worker, which answers queries, and the task loops, which report their own failures.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Known but not running here (not started yet, or stopped).
    Unassigned,
    Running,
    Paused,
    Failed,
    /// Stopped on request: no tasks run, but the configuration is kept for a later resume.
    Stopped,
    /// Only in a restart request's answer, for what that request is restarting.
    Restarting,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Unassigned => "UNASSIGNED",
            State::Running => "RUNNING",
            State::Paused => "PAUSED",
            State::Failed => "FAILED",
            State::Stopped => "STOPPED",
            State::Restarting => "RESTARTING",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorType {
    Source,
    Sink,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    pub id: usize,
    pub state: State,
    /// The error that failed the task, for a FAILED task.
    pub trace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorStatus {
    pub name: String,
    pub kind: ConnectorType,
    pub state: State,
    pub trace: Option<String>,
    pub tasks: Vec<TaskStatus>,
}

/// Every connector's status, behind one lock.
#[derive(Debug, Clone, Default)]
pub struct StatusStore {
    inner: Arc<Mutex<BTreeMap<String, ConnectorStatus>>>,
}

impl StatusStore {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ConnectorStatus>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, connector: &str) -> Option<ConnectorStatus> {
        self.lock().get(connector).cloned()
    }

    pub fn all(&self) -> Vec<ConnectorStatus> {
        self.lock().values().cloned().collect()
    }

    pub(crate) fn insert(&self, name: &str, kind: ConnectorType) {
        self.lock().insert(
            name.to_string(),
            ConnectorStatus {
                name: name.to_string(),
                kind,
                state: State::Unassigned,
                trace: None,
                tasks: Vec::new(),
            },
        );
    }

    pub(crate) fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    pub(crate) fn connector_running(&self, name: &str, tasks: usize) {
        if let Some(s) = self.lock().get_mut(name) {
            s.state = State::Running;
            s.trace = None;
            s.tasks = (0..tasks)
                .map(|id| TaskStatus {
                    id,
                    state: State::Unassigned,
                    trace: None,
                })
                .collect();
        }
    }

    pub(crate) fn connector_failed(&self, name: &str, error: &str) {
        if let Some(s) = self.lock().get_mut(name) {
            s.state = State::Failed;
            s.trace = Some(error.to_string());
        }
    }

    /// The connector object alone came back; its tasks kept running and keep their states.
    pub(crate) fn connector_restarted(&self, name: &str, paused: bool) {
        if let Some(s) = self.lock().get_mut(name) {
            s.state = if paused {
                State::Paused
            } else {
                State::Running
            };
            s.trace = None;
        }
    }

    /// A stopped connector is no longer running here; a failure stays visible.
    pub(crate) fn connector_stopped(&self, name: &str) {
        if let Some(s) = self.lock().get_mut(name) {
            if s.state != State::Failed {
                s.state = State::Unassigned;
            }
        }
    }

    /// A task that starts under a paused connector is paused from its first moment.
    pub(crate) fn task_running(&self, name: &str, id: usize) {
        let paused = self.get(name).is_some_and(|s| s.state == State::Paused);
        self.update_task(name, id, |t| {
            t.state = if paused {
                State::Paused
            } else {
                State::Running
            };
            t.trace = None;
        });
    }

    /// Pausing or resuming moves the connector and its live tasks; failures stay as they are.
    pub(crate) fn connector_paused(&self, name: &str, paused: bool) {
        let (from, to) = if paused {
            (State::Running, State::Paused)
        } else {
            (State::Paused, State::Running)
        };
        if let Some(s) = self.lock().get_mut(name) {
            if s.state == from {
                s.state = to;
            }
            for t in s.tasks.iter_mut().filter(|t| t.state == from) {
                t.state = to;
            }
        }
    }

    /// A connector stopped on request keeps no tasks, as Kafka reports it.
    pub(crate) fn connector_halted(&self, name: &str) {
        if let Some(s) = self.lock().get_mut(name) {
            s.state = State::Stopped;
            s.trace = None;
            s.tasks.clear();
        }
    }

    pub(crate) fn task_failed(&self, name: &str, id: usize, error: &str) {
        self.update_task(name, id, |t| {
            t.state = State::Failed;
            t.trace = Some(error.to_string());
        });
    }

    /// A cleanly stopped task is unassigned; a failed one keeps its failure on record.
    pub(crate) fn task_stopped(&self, name: &str, id: usize) {
        self.update_task(name, id, |t| {
            if t.state != State::Failed {
                t.state = State::Unassigned;
            }
        });
    }

    fn update_task(&self, name: &str, id: usize, f: impl FnOnce(&mut TaskStatus)) {
        if let Some(t) = self
            .lock()
            .get_mut(name)
            .and_then(|s| s.tasks.iter_mut().find(|t| t.id == id))
        {
            f(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_and_failure_stays_visible_after_stop() {
        let s = StatusStore::default();
        s.insert("c", ConnectorType::Source);
        assert_eq!(s.get("c").unwrap().state, State::Unassigned);
        s.connector_running("c", 2);
        let st = s.get("c").unwrap();
        assert_eq!(st.state, State::Running);
        assert_eq!(st.tasks.len(), 2);
        assert!(st.tasks.iter().all(|t| t.state == State::Unassigned));

        s.task_running("c", 0);
        s.task_running("c", 1);
        s.task_failed("c", 1, "boom");
        let st = s.get("c").unwrap();
        assert_eq!(st.tasks[0].state, State::Running);
        assert_eq!(st.tasks[1].state, State::Failed);
        assert_eq!(st.tasks[1].trace.as_deref(), Some("boom"));
        // One failed task does not fail its connector.
        assert_eq!(st.state, State::Running);

        s.task_stopped("c", 0);
        s.task_stopped("c", 1);
        s.connector_stopped("c");
        let st = s.get("c").unwrap();
        assert_eq!(st.state, State::Unassigned);
        assert_eq!(st.tasks[0].state, State::Unassigned);
        assert_eq!(st.tasks[1].state, State::Failed);
        assert_eq!(st.tasks[1].trace.as_deref(), Some("boom"));
        assert_eq!(State::Failed.to_string(), "FAILED");

        s.connector_failed("c", "cannot start");
        s.connector_stopped("c");
        assert_eq!(s.get("c").unwrap().state, State::Failed);
        // Restarting the connector object alone clears its failure but not its tasks'.
        s.connector_restarted("c", false);
        let st = s.get("c").unwrap();
        assert_eq!((st.state, st.trace), (State::Running, None));
        assert_eq!(st.tasks[1].state, State::Failed);
        s.task_failed("missing", 0, "ignored");
        assert!(s.get("missing").is_none());
    }
}
