//! The REST endpoints: each turns a request into a `Worker` call and its answer into the JSON
//! Kafka Connect returns, errors included (`{"error_code": .., "message": ..}`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::connector::Props;
use crate::error::ConnectError;
use crate::runtime::{self, ConnectorInfo, ConnectorType, TargetState, Worker};

#[derive(Clone)]
struct Api {
    worker: Arc<Worker>,
    /// What status answers give as `worker_id`: this worker's REST address.
    worker_id: String,
}

pub(super) fn router(worker: Arc<Worker>, worker_id: String) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/connectors", get(list).post(create))
        .route("/connectors/{name}", get(info).delete(delete))
        .route("/connectors/{name}/config", get(config).put(put_config))
        .route("/connectors/{name}/status", get(status))
        .route("/connectors/{name}/tasks", get(tasks))
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connectors/{name}/stop", put(stop))
        .route("/connectors/{name}/restart", post(restart))
        .route("/connector-plugins", get(plugins))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Not found".into()) })
        .with_state(Api { worker, worker_id })
}

struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: String) -> ApiError {
        ApiError { status, message }
    }
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> ApiError {
        let status = match &e {
            ConnectError::NotFound(_) => StatusCode::NOT_FOUND,
            ConnectError::Config(_) | ConnectError::UnknownClass { .. } | ConnectError::Data(_) => {
                StatusCode::BAD_REQUEST
            }
            ConnectError::Connector(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.status.as_u16(), "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

type Answer = Result<Response, ApiError>;

fn not_found(name: &str) -> ApiError {
    ConnectError::NotFound(format!("Connector {name} not found")).into()
}

fn kind_name(kind: ConnectorType) -> &'static str {
    match kind {
        ConnectorType::Source => "source",
        ConnectorType::Sink => "sink",
    }
}

fn info_json(info: &ConnectorInfo) -> Value {
    json!({
        "name": info.name,
        "config": info.config,
        "tasks": info.tasks.iter()
            .map(|t| json!({"connector": info.name, "task": t}))
            .collect::<Vec<_>>(),
        "type": kind_name(info.kind),
    })
}

/// Kafka's configs are string maps, but people write `"tasks.max": 1`; scalars are accepted
/// as their text, anything nested is refused with the key named.
fn props_from(value: &Value) -> Result<Props, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let map = value
        .as_object()
        .ok_or_else(|| bad("the connector configuration must be a JSON object".into()))?;
    map.iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(bad(format!("config {k} must be a string"))),
            };
            Ok((k.clone(), text))
        })
        .collect()
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request body is not JSON: {e}"),
        )
    })
}

async fn described(api: &Api, name: &str) -> Result<Value, ApiError> {
    let info = api
        .worker
        .connector_info(name)
        .await
        .ok_or_else(|| not_found(name))?;
    Ok(info_json(&info))
}

async fn root(State(api): State<Api>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": option_env!("SLUICE_GIT_COMMIT").unwrap_or("unknown"),
        "kafka_cluster_id": api.worker.kafka_cluster_id().await,
    }))
}

async fn list(State(api): State<Api>) -> Json<Vec<String>> {
    Json(api.worker.connector_names().await)
}

async fn create(State(api): State<Api>, body: Bytes) -> Answer {
    let body = parse_body(&body)?;
    let bad = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, m.to_string());
    let config = body.get("config").ok_or_else(|| bad("config is missing"))?;
    let mut props = props_from(config)?;
    let name = match body.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        Some(_) => return Err(bad("name must be a non-empty string")),
        None => props
            .get("name")
            .cloned()
            .ok_or_else(|| bad("name is missing"))?,
    };
    props.entry("name".into()).or_insert_with(|| name.clone());
    if api.worker.connector_info(&name).await.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Connector {name} already exists"),
        ));
    }
    api.worker.start_connector(&name, props).await?;
    Ok((StatusCode::CREATED, Json(described(&api, &name).await?)).into_response())
}

async fn info(State(api): State<Api>, Path(name): Path<String>) -> Answer {
    Ok(Json(described(&api, &name).await?).into_response())
}

async fn delete(State(api): State<Api>, Path(name): Path<String>) -> Answer {
    api.worker.stop_connector(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn config(State(api): State<Api>, Path(name): Path<String>) -> Answer {
    let info = api
        .worker
        .connector_info(&name)
        .await
        .ok_or_else(|| not_found(&name))?;
    Ok(Json(info.config).into_response())
}

async fn put_config(State(api): State<Api>, Path(name): Path<String>, body: Bytes) -> Answer {
    let props = props_from(&parse_body(&body)?)?;
    let created = api.worker.put_connector_config(&name, props).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(described(&api, &name).await?)).into_response())
}

async fn status(State(api): State<Api>, Path(name): Path<String>) -> Answer {
    let s = api
        .worker
        .connector_status(&name)
        .ok_or_else(|| not_found(&name))?;
    let with_trace = |mut v: Value, state: runtime::State, trace: &Option<String>| {
        if state == runtime::State::Failed {
            if let Some(t) = trace {
                v["trace"] = json!(t);
            }
        }
        v
    };
    let connector = with_trace(
        json!({"state": s.state.to_string(), "worker_id": api.worker_id}),
        s.state,
        &s.trace,
    );
    let tasks: Vec<Value> = s
        .tasks
        .iter()
        .map(|t| {
            with_trace(
                json!({"id": t.id, "state": t.state.to_string(), "worker_id": api.worker_id}),
                t.state,
                &t.trace,
            )
        })
        .collect();
    Ok(Json(json!({
        "name": s.name,
        "connector": connector,
        "tasks": tasks,
        "type": kind_name(s.kind),
    }))
    .into_response())
}

async fn tasks(State(api): State<Api>, Path(name): Path<String>) -> Answer {
    let configs = api
        .worker
        .task_configs(&name)
        .await
        .ok_or_else(|| not_found(&name))?;
    let tasks: Vec<Value> = configs
        .iter()
        .enumerate()
        .map(|(id, config)| json!({"id": {"connector": name, "task": id}, "config": config}))
        .collect();
    Ok(Json(tasks).into_response())
}

async fn target(api: &Api, name: &str, target: TargetState) -> Answer {
    api.worker.set_target_state(name, target).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn pause(State(api): State<Api>, Path(name): Path<String>) -> Answer {
    target(&api, &name, TargetState::Paused).await
}

async fn resume(State(api): State<Api>, Path(name): Path<String>) -> Answer {
    target(&api, &name, TargetState::Started).await
}

async fn stop(State(api): State<Api>, Path(name): Path<String>) -> Answer {
    target(&api, &name, TargetState::Stopped).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestartQuery {
    #[serde(default)]
    include_tasks: bool,
    #[serde(default)]
    only_failed: bool,
}

async fn restart(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(q): Query<RestartQuery>,
) -> Answer {
    api.worker
        .restart_connector(&name, q.include_tasks, q.only_failed)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn plugins(State(api): State<Api>) -> Json<Vec<BTreeMap<&'static str, String>>> {
    Json(
        api.worker
            .plugins()
            .into_iter()
            .map(|p| {
                BTreeMap::from([
                    ("class", p.class),
                    ("type", kind_name(p.kind).to_string()),
                    ("version", p.version),
                ])
            })
            .collect(),
    )
}
