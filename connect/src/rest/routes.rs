//! The REST endpoints: each turns a request into a `Worker` call and its answer into the JSON
//! Kafka Connect returns, errors included (`{"error_code": .., "message": ..}`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::connector::{ConfigKey, Props};
use crate::error::ConnectError;
use crate::runtime::{
    self, ConfigInfos, ConnectorInfo, ConnectorOffset, ConnectorStatus, ConnectorType, TargetState,
    TaskStatus, Worker,
};

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
        .route("/connectors/{name}/tasks/{task}/status", get(task_status))
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(restart_task),
        )
        .route(
            "/connectors/{name}/offsets",
            get(offsets).delete(reset_offsets).patch(alter_offsets),
        )
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connectors/{name}/stop", put(stop))
        .route("/connectors/{name}/restart", post(restart))
        .route("/connector-plugins", get(plugins))
        .route("/connector-plugins/{plugin}/config", get(plugin_config))
        .route(
            "/connector-plugins/{plugin}/config/validate",
            put(validate_config),
        )
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

/// `?expand=status` and `?expand=info` (repeatable) turn the list of names into an object
/// keyed by name holding those parts; expansions Kafka does not know are ignored, as there.
async fn list(State(api): State<Api>, RawQuery(query): RawQuery) -> Json<Value> {
    let names = api.worker.connector_names().await;
    let expand: Vec<&str> = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == "expand")
        .map(|(_, v)| v)
        .collect();
    if expand.is_empty() {
        return Json(json!(names));
    }
    let mut out = serde_json::Map::new();
    for name in names {
        let mut parts = serde_json::Map::new();
        if expand.contains(&"status") {
            // Gone between listing and asking: left out rather than half described.
            let Some(s) = api.worker.connector_status(&name) else {
                continue;
            };
            parts.insert("status".into(), status_json(&api, &s));
        }
        if expand.contains(&"info") {
            let Some(info) = api.worker.connector_info(&name).await else {
                continue;
            };
            parts.insert("info".into(), info_json(&info));
        }
        out.insert(name, Value::Object(parts));
    }
    Json(Value::Object(out))
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

fn task_json(api: &Api, t: &TaskStatus) -> Value {
    with_trace(
        json!({"id": t.id, "state": t.state.to_string(), "worker_id": api.worker_id}),
        t.state,
        &t.trace,
    )
}

/// Kafka gives a trace only for what has failed.
fn with_trace(mut v: Value, state: runtime::State, trace: &Option<String>) -> Value {
    if state == runtime::State::Failed {
        if let Some(t) = trace {
            v["trace"] = json!(t);
        }
    }
    v
}

fn status_json(api: &Api, s: &ConnectorStatus) -> Value {
    let connector = with_trace(
        json!({"state": s.state.to_string(), "worker_id": api.worker_id}),
        s.state,
        &s.trace,
    );
    let tasks: Vec<Value> = s.tasks.iter().map(|t| task_json(api, t)).collect();
    json!({
        "name": s.name,
        "connector": connector,
        "tasks": tasks,
        "type": kind_name(s.kind),
    })
}

async fn status(State(api): State<Api>, Path(name): Path<String>) -> Answer {
    let s = api
        .worker
        .connector_status(&name)
        .ok_or_else(|| not_found(&name))?;
    Ok(Json(status_json(&api, &s)).into_response())
}

/// Task ids in paths are numbers; anything else names no task, hence 404 as for a missing one.
fn task_id(name: &str, task: &str) -> Result<usize, ApiError> {
    task.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Task {name}-{task} not found"),
        )
    })
}

async fn task_status(State(api): State<Api>, Path((name, task)): Path<(String, String)>) -> Answer {
    let id = task_id(&name, &task)?;
    let t = api
        .worker
        .connector_status(&name)
        .and_then(|s| s.tasks.into_iter().find(|t| t.id == id))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("No status found for task {name}-{id}"),
            )
        })?;
    Ok(Json(task_json(&api, &t)).into_response())
}

async fn restart_task(
    State(api): State<Api>,
    Path((name, task)): Path<(String, String)>,
) -> Answer {
    let id = task_id(&name, &task)?;
    api.worker.restart_task(&name, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
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

/// Without parameters the old form of the call, answered 204; with either, Kafka's newer
/// form (KIP-745), answered 202 with what is being restarted marked RESTARTING.
async fn restart(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(q): Query<RestartQuery>,
) -> Answer {
    let plan = api
        .worker
        .restart_connector(&name, q.include_tasks, q.only_failed)
        .await?;
    if !q.include_tasks && !q.only_failed {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok((StatusCode::ACCEPTED, Json(status_json(&api, &plan))).into_response())
}

fn offsets_json(offsets: &[ConnectorOffset]) -> Value {
    let offsets: Vec<Value> = offsets
        .iter()
        .map(|o| json!({"partition": o.partition, "offset": o.offset}))
        .collect();
    json!({ "offsets": offsets })
}

async fn offsets(State(api): State<Api>, Path(name): Path<String>) -> Answer {
    let offsets = api.worker.connector_offsets(&name).await?;
    Ok(Json(offsets_json(&offsets)).into_response())
}

async fn reset_offsets(State(api): State<Api>, Path(name): Path<String>) -> Answer {
    api.worker.reset_connector_offsets(&name).await?;
    Ok(
        Json(json!({"message": format!("The offsets of connector {name} were reset")}))
            .into_response(),
    )
}

/// The body is what `GET .../offsets` answers, with `"offset": null` to erase a partition's.
async fn alter_offsets(State(api): State<Api>, Path(name): Path<String>, body: Bytes) -> Answer {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let body = parse_body(&body)?;
    let entries = body
        .get("offsets")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("the body needs an \"offsets\" array".into()))?;
    let offsets = entries
        .iter()
        .map(|e| {
            let map = |key: &str, nullable: bool| match e.get(key) {
                Some(Value::Object(m)) => Ok(Some(
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<std::collections::BTreeMap<_, _>>(),
                )),
                Some(Value::Null) | None if nullable => Ok(None),
                _ => Err(bad(format!("each offset needs a \"{key}\" object: {e}"))),
            };
            Ok(ConnectorOffset {
                partition: map("partition", false)?.unwrap_or_default().into(),
                offset: map("offset", true)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    api.worker.alter_connector_offsets(&name, offsets).await?;
    Ok(
        Json(json!({"message": format!("The offsets of connector {name} were changed")}))
            .into_response(),
    )
}

/// The plugin is part of the path, so naming an unknown one is a 404, not a bad request.
fn plugin_error(e: ConnectError) -> ApiError {
    match e {
        ConnectError::UnknownClass { .. } => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        other => other.into(),
    }
}

/// Kafka's `ConfigKeyInfo`. `order` counts from 1 within the key's group; a key outside any
/// group has none (-1). Sluice does not size form fields or chain keys, hence the fixed
/// `width` and empty `dependents`.
fn definitions_json<'a>(keys: impl IntoIterator<Item = &'a ConfigKey>) -> Vec<Value> {
    let mut counts: BTreeMap<&str, i32> = BTreeMap::new();
    keys.into_iter()
        .map(|k| {
            let order = match &k.group {
                Some(g) => {
                    let n = counts.entry(g.as_str()).or_insert(0);
                    *n += 1;
                    *n
                }
                None => -1,
            };
            json!({
                "name": k.name,
                "type": k.kind.name(),
                "required": k.required,
                "default_value": k.default,
                "importance": k.importance.name(),
                "documentation": k.documentation,
                "group": k.group,
                "order": order,
                "width": "NONE",
                "display_name": k.display_name,
                "dependents": [],
            })
        })
        .collect()
}

async fn plugin_config(State(api): State<Api>, Path(plugin): Path<String>) -> Answer {
    let keys = api.worker.plugin_config(&plugin).map_err(plugin_error)?;
    Ok(Json(definitions_json(&keys)).into_response())
}

fn validation_json(v: &ConfigInfos) -> Value {
    let definitions = definitions_json(v.configs.iter().map(|c| &c.definition));
    let configs: Vec<Value> = v
        .configs
        .iter()
        .zip(definitions)
        .map(|(c, definition)| {
            json!({
                "definition": definition,
                "value": {
                    "name": c.definition.name,
                    "value": c.value,
                    // Sluice's keys have no value lists to offer, and none hides another.
                    "recommended_values": [],
                    "errors": c.errors,
                    "visible": true,
                },
            })
        })
        .collect();
    json!({
        "name": v.name,
        "error_count": v.error_count,
        "groups": v.groups,
        "configs": configs,
    })
}

async fn validate_config(
    State(api): State<Api>,
    Path(plugin): Path<String>,
    body: Bytes,
) -> Answer {
    let props = props_from(&parse_body(&body)?)?;
    let infos = api
        .worker
        .validate_config(&plugin, props)
        .map_err(plugin_error)?;
    Ok(Json(validation_json(&infos)).into_response())
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
