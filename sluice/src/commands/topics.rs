//! `sluice topics` (kafka-topics.sh): create, list, describe and delete topics, with Kafka's
//! flags and output format.

use std::collections::BTreeMap;

use clap::{ArgGroup, Args};
use sluice_client::admin::{format_topic_id, ConfigSource, NewTopic, TopicDescription};
use sluice_client::Admin;
use sluice_protocol::ErrorCode;

use super::tool::{self, Connect};

#[derive(Args)]
#[command(group(
    ArgGroup::new("action")
        .required(true)
        .args(["create", "list", "describe", "delete", "alter"])
))]
pub struct TopicsArgs {
    #[command(flatten)]
    connect: Connect,
    /// Create a topic
    #[arg(long)]
    create: bool,
    /// List the topics' names
    #[arg(long)]
    list: bool,
    /// Describe topics: partitions, leaders, replicas and config overrides
    #[arg(long)]
    describe: bool,
    /// Delete a topic
    #[arg(long)]
    delete: bool,
    /// Raise a topic's partition count (with --partitions)
    #[arg(long)]
    alter: bool,
    /// The topic to act on (for --list and --describe: only this one)
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,
    /// Partition count for --create (default: the broker's num.partitions)
    #[arg(long, value_name = "N")]
    partitions: Option<i32>,
    /// Replication factor for --create (default: the broker's default.replication.factor)
    #[arg(long = "replication-factor", value_name = "N")]
    replication_factor: Option<i16>,
    /// A topic config override for --create (repeatable)
    #[arg(long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
    /// With --create: succeed quietly if the topic exists
    #[arg(long = "if-not-exists")]
    if_not_exists: bool,
    /// With --describe, --delete or --alter: succeed quietly if the topic does not exist
    #[arg(long = "if-exists")]
    if_exists: bool,
    /// With --list or --describe: leave out internal topics
    #[arg(long = "exclude-internal")]
    exclude_internal: bool,
}

pub fn run(args: TopicsArgs) -> Result<(), String> {
    check_flags(&args)?;
    let admin = args.connect.admin()?;
    tool::run(async move {
        if args.create {
            create(&admin, &args).await
        } else if args.list {
            list(&admin, &args).await
        } else if args.describe {
            describe(&admin, &args).await
        } else if args.alter {
            alter(&admin, &args).await
        } else {
            delete(&admin, &args).await
        }
    })
}

/// Kafka's tool refuses flags that the chosen action would ignore; so does this one.
fn check_flags(a: &TopicsArgs) -> Result<(), String> {
    let needs_topic = a.create || a.delete || a.alter;
    if needs_topic && a.topic.is_none() {
        return Err("--topic is required with --create, --delete and --alter".into());
    }
    if !a.create {
        for (given, flag) in [
            (a.replication_factor.is_some(), "--replication-factor"),
            (!a.configs.is_empty(), "--config"),
            (a.if_not_exists, "--if-not-exists"),
        ] {
            if given {
                return Err(format!("{flag} can only be used with --create"));
            }
        }
    }
    if a.partitions.is_some() && !(a.create || a.alter) {
        return Err("--partitions can only be used with --create or --alter".into());
    }
    if a.if_exists && !(a.describe || a.delete || a.alter) {
        return Err("--if-exists can only be used with --describe, --delete or --alter".into());
    }
    if a.exclude_internal && !(a.list || a.describe) {
        return Err("--exclude-internal can only be used with --list or --describe".into());
    }
    if a.partitions.is_some_and(|p| p < 1) {
        return Err("--partitions must be at least 1".into());
    }
    if a.replication_factor.is_some_and(|r| r < 1) {
        return Err("--replication-factor must be at least 1".into());
    }
    Ok(())
}

fn no_such_topic(topic: &str) -> String {
    format!("Topic '{topic}' does not exist.")
}

async fn create(admin: &Admin, a: &TopicsArgs) -> Result<(), String> {
    let name = a.topic.clone().unwrap_or_default();
    let mut topic = NewTopic::new(&name)
        .partitions(a.partitions.unwrap_or(-1))
        .replication_factor(a.replication_factor.unwrap_or(-1));
    for c in &a.configs {
        let (k, v) = tool::key_value(c, "--config")?;
        topic = topic.config(k, v);
    }
    let mut results = admin
        .create_topics(&[topic], false)
        .await
        .map_err(|e| e.to_string())?;
    match results.remove(&name) {
        Some(Ok(_)) => {
            println!("Created topic {name}.");
            Ok(())
        }
        Some(Err(e)) if a.if_not_exists && tool::is(&e, ErrorCode::TopicAlreadyExists) => Ok(()),
        Some(Err(e)) if tool::is(&e, ErrorCode::TopicAlreadyExists) => {
            Err(format!("Topic '{name}' already exists."))
        }
        Some(Err(e)) => Err(e.to_string()),
        None => Err(format!("the broker did not answer for topic {name}")),
    }
}

/// The topics an action covers: the one named, or every topic.
async fn selected(admin: &Admin, a: &TopicsArgs) -> Result<Vec<String>, String> {
    let listed = admin
        .list_topics(!a.exclude_internal)
        .await
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = listed.into_iter().map(|t| t.name).collect();
    match &a.topic {
        None => Ok(names),
        Some(t) if names.contains(t) => Ok(vec![t.clone()]),
        Some(_) if a.if_exists || a.list => Ok(Vec::new()),
        Some(t) => Err(no_such_topic(t)),
    }
}

async fn list(admin: &Admin, a: &TopicsArgs) -> Result<(), String> {
    for name in selected(admin, a).await? {
        println!("{name}");
    }
    Ok(())
}

async fn describe(admin: &Admin, a: &TopicsArgs) -> Result<(), String> {
    let names = selected(admin, a).await?;
    let described = admin
        .describe_topics(&names)
        .await
        .map_err(|e| e.to_string())?;
    for (name, result) in described {
        let topic = match result {
            Ok(t) => t,
            // Deleted between the listing and the description.
            Err(e) if tool::is(&e, ErrorCode::UnknownTopicOrPartition) && a.topic.is_none() => {
                continue
            }
            Err(e) if tool::is(&e, ErrorCode::UnknownTopicOrPartition) => {
                return Err(no_such_topic(&name))
            }
            Err(e) => return Err(e.to_string()),
        };
        let overrides = admin
            .describe_configs(&name)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|c| !c.default && c.source != ConfigSource::Default)
            .map(|c| {
                let value = c.value.unwrap_or_else(|| "null".into());
                (c.name, value)
            })
            .collect();
        print_topic(&topic, &overrides);
    }
    Ok(())
}

fn print_topic(t: &TopicDescription, overrides: &BTreeMap<String, String>) {
    let replication_factor = t.partitions.first().map_or(0, |p| p.replicas.len());
    let configs: Vec<String> = overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
        t.name,
        format_topic_id(&t.id),
        t.partitions.len(),
        replication_factor,
        configs.join(",")
    );
    let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    for p in &t.partitions {
        println!(
            "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
            t.name,
            p.partition,
            p.leader
                .map_or_else(|| "none".to_string(), |l| l.to_string()),
            ids(&p.replicas),
            ids(&p.isr)
        );
    }
}

/// One topic's answer to a change: with --if-exists a missing topic is no error.
fn topic_outcome(
    result: Option<sluice_client::Result<()>>,
    name: &str,
    if_exists: bool,
) -> Result<(), String> {
    match result {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) if tool::is(&e, ErrorCode::UnknownTopicOrPartition) => {
            if if_exists {
                Ok(())
            } else {
                Err(no_such_topic(name))
            }
        }
        Some(Err(e)) => Err(e.to_string()),
        None => Err(format!("the broker did not answer for topic {name}")),
    }
}

async fn alter(admin: &Admin, a: &TopicsArgs) -> Result<(), String> {
    let name = a.topic.clone().unwrap_or_default();
    let count = a
        .partitions
        .ok_or("--alter needs --partitions N (the new total)")?;
    let mut results = admin
        .create_partitions(&BTreeMap::from([(name.clone(), count)]), false)
        .await
        .map_err(|e| e.to_string())?;
    topic_outcome(results.remove(&name), &name, a.if_exists)
}

async fn delete(admin: &Admin, a: &TopicsArgs) -> Result<(), String> {
    let name = a.topic.clone().unwrap_or_default();
    let mut results = admin
        .delete_topics(std::slice::from_ref(&name))
        .await
        .map_err(|e| e.to_string())?;
    // Like kafka-topics.sh, a successful delete prints nothing.
    topic_outcome(results.remove(&name), &name, a.if_exists)
}
