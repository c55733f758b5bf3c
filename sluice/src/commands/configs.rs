//! `sluice configs` (kafka-configs.sh) for topics: describe the configs set on a topic (or all
//! of them) and add or delete overrides key by key.

use clap::{ArgGroup, Args};
use sluice_client::admin::{AlterConfigOp, ConfigEntry, ConfigSource};
use sluice_client::{Admin, ClientError};
use sluice_protocol::ErrorCode;

use super::tool::{self, Connect};

#[derive(Args)]
#[command(group(ArgGroup::new("action").required(true).args(["describe", "alter"])))]
pub struct ConfigsArgs {
    #[command(flatten)]
    connect: Connect,
    /// Show the entity's configs
    #[arg(long)]
    describe: bool,
    /// Add or delete config overrides
    #[arg(long)]
    alter: bool,
    /// The kind of entity: topics (the only kind supported so far)
    #[arg(long = "entity-type", value_name = "TYPE")]
    entity_type: Option<String>,
    /// The entity's name (for --describe, leave out to describe every topic)
    #[arg(long = "entity-name", value_name = "NAME")]
    entity_name: Option<String>,
    /// Shorthand for --entity-type topics --entity-name TOPIC
    #[arg(long, value_name = "TOPIC", conflicts_with_all = ["entity_type", "entity_name"])]
    topic: Option<String>,
    /// Overrides to set: KEY=VALUE[,KEY=VALUE...]; a list value is written KEY=[A,B]
    #[arg(long = "add-config", value_name = "KEY=VALUE,...")]
    add_config: Vec<String>,
    /// Overrides to remove: KEY[,KEY...]
    #[arg(long = "delete-config", value_name = "KEY,...")]
    delete_config: Vec<String>,
    /// With --describe: every config, inherited defaults included
    #[arg(long)]
    all: bool,
}

pub fn run(args: ConfigsArgs) -> Result<(), String> {
    let topic = entity(&args)?;
    if args.describe && !(args.add_config.is_empty() && args.delete_config.is_empty()) {
        return Err("--add-config and --delete-config can only be used with --alter".into());
    }
    if args.all && !args.describe {
        return Err("--all can only be used with --describe".into());
    }
    let admin = args.connect.admin()?;
    tool::run(async move {
        if args.describe {
            describe(&admin, topic, args.all).await
        } else {
            let topic = topic.ok_or("--alter needs --entity-name")?;
            alter(&admin, &topic, &args).await
        }
    })
}

/// The topic named by the flags, or `None` for every topic.
fn entity(a: &ConfigsArgs) -> Result<Option<String>, String> {
    if a.topic.is_some() {
        return Ok(a.topic.clone());
    }
    match a.entity_type.as_deref() {
        None => Err("--entity-type is required (or give --topic)".into()),
        Some("topics") => Ok(a.entity_name.clone()),
        Some(t @ ("brokers" | "broker-loggers" | "users" | "clients" | "ips" | "groups")) => Err(
            format!("--entity-type {t} is not supported yet; only topics are"),
        ),
        Some(t) => Err(format!(
            "invalid --entity-type {t}: expected topics, brokers, broker-loggers, users, clients, ips or groups"
        )),
    }
}

fn failed(topic: &str, e: ClientError) -> String {
    if tool::is(&e, ErrorCode::UnknownTopicOrPartition) {
        format!("Topic '{topic}' does not exist.")
    } else {
        e.to_string()
    }
}

async fn describe(admin: &Admin, topic: Option<String>, all: bool) -> Result<(), String> {
    let topics = match topic {
        Some(t) => vec![t],
        None => admin
            .list_topics(true)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|t| t.name)
            .collect(),
    };
    for topic in topics {
        let mut entries = admin
            .describe_configs(&topic)
            .await
            .map_err(|e| failed(&topic, e))?;
        if !all {
            entries.retain(|e| e.source == ConfigSource::DynamicTopic);
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let which = if all { "All" } else { "Dynamic" };
        println!("{which} configs for topic {topic} are:");
        for e in &entries {
            println!("  {}", entry_line(e));
        }
    }
    Ok(())
}

/// `name=value sensitive=false synonyms={SOURCE:name=value, ...}` as kafka-configs.sh prints.
fn entry_line(e: &ConfigEntry) -> String {
    let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "null".into());
    let synonyms: Vec<String> = e
        .synonyms
        .iter()
        .map(|s| format!("{}:{}={}", s.source.name(), s.name, value(&s.value)))
        .collect();
    format!(
        "{}={} sensitive={} synonyms={{{}}}",
        e.name,
        if e.sensitive {
            "null".into()
        } else {
            value(&e.value)
        },
        e.sensitive,
        synonyms.join(", ")
    )
}

async fn alter(admin: &Admin, topic: &str, a: &ConfigsArgs) -> Result<(), String> {
    let mut ops = Vec::new();
    for item in a
        .add_config
        .iter()
        .flat_map(|s| tool::split_outside_brackets(s))
    {
        let (k, v) = tool::key_value(&item, "--add-config")?;
        let v = v
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(&v)
            .to_string();
        ops.push(AlterConfigOp::set(k, v));
    }
    let deletes: Vec<String> = a
        .delete_config
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    if ops.is_empty() && deletes.is_empty() {
        return Err("--alter needs --add-config or --delete-config".into());
    }
    // As kafka-configs.sh does, deleting a key the topic does not override is a mistake
    // worth naming rather than a silent no-op.
    let current = admin
        .describe_configs(topic)
        .await
        .map_err(|e| failed(topic, e))?;
    let unset: Vec<&str> = deletes
        .iter()
        .filter(|k| {
            !current
                .iter()
                .any(|c| &c.name == *k && c.source == ConfigSource::DynamicTopic)
        })
        .map(String::as_str)
        .collect();
    if !unset.is_empty() {
        return Err(format!("Invalid config(s): {}", unset.join(",")));
    }
    ops.extend(deletes.into_iter().map(AlterConfigOp::delete));
    admin
        .incremental_alter_configs(topic, &ops)
        .await
        .map_err(|e| failed(topic, e))?;
    println!("Completed updating config for topic {topic}.");
    Ok(())
}
