//! `sluice consumer-groups` (kafka-consumer-groups.sh): list groups, describe their offsets and
//! lag, reset offsets of inactive groups, delete groups or some of their offsets.

use std::collections::{BTreeMap, BTreeSet};

use clap::{ArgGroup, Args};
use sluice_client::admin::{GroupDescription, OffsetSpec};
use sluice_client::{Admin, ClientError};
use sluice_protocol::ErrorCode;

use super::tool::{self, Connect};

type TopicPartition = (String, i32);

#[derive(Args)]
#[command(group(
    ArgGroup::new("action")
        .required(true)
        .args(["list", "describe", "reset_offsets", "delete", "delete_offsets"])
))]
#[command(group(
    ArgGroup::new("reset_spec").args(["to_earliest", "to_latest", "to_offset", "shift_by"])
))]
pub struct ConsumerGroupsArgs {
    #[command(flatten)]
    connect: Connect,
    /// List the groups
    #[arg(long)]
    list: bool,
    /// Show a group's committed offsets, log end offsets, lag and members
    #[arg(long)]
    describe: bool,
    /// Set a group's committed offsets (the group must have no active members)
    #[arg(long = "reset-offsets")]
    reset_offsets: bool,
    /// Delete groups and their committed offsets (they must have no active members)
    #[arg(long)]
    delete: bool,
    /// Delete a group's committed offsets of some topics
    #[arg(long = "delete-offsets")]
    delete_offsets: bool,
    /// The group (repeatable for --describe and --delete)
    #[arg(long, value_name = "GROUP")]
    group: Vec<String>,
    /// For --reset-offsets and --delete-offsets: TOPIC or TOPIC:P[,P...] (repeatable)
    #[arg(long, value_name = "TOPIC[:PARTITIONS]")]
    topic: Vec<String>,
    /// For --reset-offsets: every topic the group has committed offsets for
    #[arg(long = "all-topics", conflicts_with = "topic")]
    all_topics: bool,
    /// Reset to the earliest offset
    #[arg(long = "to-earliest")]
    to_earliest: bool,
    /// Reset to the log end offset
    #[arg(long = "to-latest")]
    to_latest: bool,
    /// Reset to this offset (kept within the partition's earliest and latest offsets)
    #[arg(long = "to-offset", value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// Move the committed offsets by N (negative to go back)
    #[arg(long = "shift-by", value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Only show the new offsets (the default)
    #[arg(long = "dry-run", conflicts_with = "execute")]
    dry_run: bool,
    /// Commit the new offsets
    #[arg(long)]
    execute: bool,
}

enum Reset {
    Earliest,
    Latest,
    To(i64),
    Shift(i64),
}

pub fn run(args: ConsumerGroupsArgs) -> Result<(), String> {
    check_flags(&args)?;
    let admin = args.connect.admin()?;
    tool::run(async move {
        if args.list {
            list(&admin).await
        } else if args.describe {
            for group in &args.group {
                describe(&admin, group).await?;
            }
            Ok(())
        } else if args.reset_offsets {
            reset(&admin, &args).await
        } else if args.delete {
            delete(&admin, &args.group).await
        } else {
            delete_offsets(&admin, &args).await
        }
    })
}

fn check_flags(a: &ConsumerGroupsArgs) -> Result<(), String> {
    if !a.list && a.group.is_empty() {
        return Err(
            "--group is required with --describe, --reset-offsets, --delete and --delete-offsets"
                .into(),
        );
    }
    if a.list && !a.group.is_empty() {
        return Err("--group cannot be used with --list".into());
    }
    if (a.reset_offsets || a.delete_offsets) && a.group.len() > 1 {
        return Err("--reset-offsets and --delete-offsets take one --group".into());
    }
    let reset_flags = a.to_earliest
        || a.to_latest
        || a.to_offset.is_some()
        || a.shift_by.is_some()
        || a.all_topics
        || a.dry_run
        || a.execute;
    if reset_flags && !a.reset_offsets {
        return Err("--to-earliest, --to-latest, --to-offset, --shift-by, --all-topics, --dry-run and --execute can only be used with --reset-offsets".into());
    }
    let takes_topics = a.reset_offsets || a.delete_offsets;
    if !takes_topics && !a.topic.is_empty() {
        return Err("--topic can only be used with --reset-offsets or --delete-offsets".into());
    }
    if a.reset_offsets {
        if a.topic.is_empty() && !a.all_topics {
            return Err("--reset-offsets needs --topic or --all-topics".into());
        }
        if reset_spec(a).is_none() {
            return Err(
                "--reset-offsets needs one of --to-earliest, --to-latest, --to-offset or --shift-by"
                    .into(),
            );
        }
    }
    if a.delete_offsets && a.topic.is_empty() {
        return Err("--delete-offsets needs --topic".into());
    }
    Ok(())
}

fn reset_spec(a: &ConsumerGroupsArgs) -> Option<Reset> {
    if a.to_earliest {
        Some(Reset::Earliest)
    } else if a.to_latest {
        Some(Reset::Latest)
    } else if let Some(o) = a.to_offset {
        Some(Reset::To(o))
    } else {
        a.shift_by.map(Reset::Shift)
    }
}

fn err(e: ClientError) -> String {
    e.to_string()
}

async fn list(admin: &Admin) -> Result<(), String> {
    for g in admin.list_groups().await.map_err(err)? {
        println!("{}", g.group_id);
    }
    Ok(())
}

async fn describe_one(admin: &Admin, group: &str) -> Result<GroupDescription, String> {
    admin
        .describe_groups(&[group.to_string()])
        .await
        .map_err(err)?
        .remove(group)
        .unwrap_or_else(|| {
            Err(ClientError::Invalid(format!(
                "no description of group {group}"
            )))
        })
        .map_err(err)
}

fn dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

async fn describe(admin: &Admin, group: &str) -> Result<(), String> {
    let g = describe_one(admin, group).await?;
    match g.state.as_str() {
        "Dead" => return Err(format!("Consumer group '{group}' does not exist.")),
        // Notes go to stderr, as kafka-consumer-groups.sh sends them, so stdout is the table.
        "Empty" => eprintln!("\nConsumer group '{group}' has no active members."),
        "PreparingRebalance" | "CompletingRebalance" => {
            eprintln!("\nWarning: Consumer group '{group}' is rebalancing.")
        }
        _ => {}
    }
    let committed = admin.list_group_offsets(group).await.map_err(err)?;
    let mut owner: BTreeMap<TopicPartition, usize> = BTreeMap::new();
    for (i, m) in g.members.iter().enumerate() {
        for tp in m.assignment.iter().flatten() {
            owner.insert(tp.clone(), i);
        }
    }
    let partitions: Vec<TopicPartition> = committed
        .keys()
        .chain(owner.keys())
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let log_end = admin
        .list_offsets(&partitions, OffsetSpec::Latest)
        .await
        .map_err(err)?;
    let mut rows = Vec::new();
    for tp in &partitions {
        let current = committed.get(tp).map(|c| c.offset);
        let end = log_end
            .get(tp)
            .and_then(|r| r.as_ref().ok())
            .map(|o| o.offset);
        let lag = current.zip(end).map(|(c, e)| (e - c).max(0));
        let member = owner.get(tp).map(|i| &g.members[*i]);
        rows.push(vec![
            group.to_string(),
            tp.0.clone(),
            tp.1.to_string(),
            dash(current),
            dash(end),
            dash(lag),
            dash(member.map(|m| &m.member_id)),
            dash(member.map(|m| &m.host)),
            dash(member.map(|m| &m.client_id)),
        ]);
    }
    // Members without partitions still show who is in the group.
    for m in &g.members {
        if m.assignment.as_ref().map_or(true, |a| a.is_empty()) {
            let mut row = vec![group.to_string()];
            row.extend(vec!["-".to_string(); 5]);
            row.extend([m.member_id.clone(), m.host.clone(), m.client_id.clone()]);
            rows.push(row);
        }
    }
    println!();
    tool::print_table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        &[15, 15, 10, 15, 15, 15, 15, 15, 0],
        &rows,
    );
    Ok(())
}

/// The partitions --topic names: all of a topic's, or the listed ones, checked against
/// the topic's metadata.
async fn named_partitions(admin: &Admin, specs: &[String]) -> Result<Vec<TopicPartition>, String> {
    let parsed = specs
        .iter()
        .map(|s| tool::topic_partitions(s))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = parsed.iter().map(|(t, _)| t.clone()).collect();
    let described = admin.describe_topics(&names).await.map_err(err)?;
    let mut out = BTreeSet::new();
    for (topic, wanted) in parsed {
        let t = match described.get(&topic) {
            Some(Ok(t)) => t,
            Some(Err(e)) if tool::is(e, ErrorCode::UnknownTopicOrPartition) => {
                return Err(format!("Topic '{topic}' does not exist."))
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err(format!("no metadata for topic {topic}")),
        };
        let existing: Vec<i32> = t.partitions.iter().map(|p| p.partition).collect();
        for p in wanted.unwrap_or_else(|| existing.clone()) {
            if !existing.contains(&p) {
                return Err(format!("Topic '{topic}' has no partition {p}."));
            }
            out.insert((topic.clone(), p));
        }
    }
    Ok(out.into_iter().collect())
}

async fn offsets(
    admin: &Admin,
    partitions: &[TopicPartition],
    spec: OffsetSpec,
) -> Result<BTreeMap<TopicPartition, i64>, String> {
    admin
        .list_offsets(partitions, spec)
        .await
        .map_err(err)?
        .into_iter()
        .map(|(tp, r)| r.map(|o| (tp, o.offset)).map_err(err))
        .collect()
}

async fn reset(admin: &Admin, a: &ConsumerGroupsArgs) -> Result<(), String> {
    let group = &a.group[0];
    let g = describe_one(admin, group).await?;
    // Dead is a group that does not exist yet: resetting creates it, as in Kafka.
    if !matches!(g.state.as_str(), "Empty" | "Dead") {
        return Err(format!(
            "Assignments can only be reset if the group '{group}' is inactive, but the current state is {}.",
            g.state
        ));
    }
    let committed = admin.list_group_offsets(group).await.map_err(err)?;
    let partitions = if a.all_topics {
        committed.keys().cloned().collect()
    } else {
        named_partitions(admin, &a.topic).await?
    };
    let earliest = offsets(admin, &partitions, OffsetSpec::Earliest).await?;
    let latest = offsets(admin, &partitions, OffsetSpec::Latest).await?;
    let mut new = BTreeMap::new();
    for tp in &partitions {
        let (lo, hi) = (earliest[tp], latest[tp]);
        let offset = match reset_spec(a).expect("checked in check_flags") {
            Reset::Earliest => lo,
            Reset::Latest => hi,
            Reset::To(o) => o.clamp(lo, hi),
            Reset::Shift(n) => {
                let from = committed.get(tp).map(|c| c.offset).ok_or_else(|| {
                    format!(
                        "--shift-by needs a committed offset, and group '{group}' has none for {}-{}",
                        tp.0, tp.1
                    )
                })?;
                from.saturating_add(n).clamp(lo, hi)
            }
        };
        new.insert(tp.clone(), offset);
    }
    if a.execute {
        admin.alter_group_offsets(group, &new).await.map_err(err)?;
    } else if !a.dry_run {
        eprintln!("WARN: No action will be performed as the --execute option is missing. Add --dry-run to say so explicitly.");
    }
    let rows: Vec<Vec<String>> = new
        .iter()
        .map(|((t, p), o)| vec![group.clone(), t.clone(), p.to_string(), o.to_string()])
        .collect();
    println!();
    tool::print_table(
        &["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
        &[30, 30, 10, 0],
        &rows,
    );
    Ok(())
}

async fn delete(admin: &Admin, groups: &[String]) -> Result<(), String> {
    let results = admin.delete_groups(groups).await.map_err(err)?;
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for (group, result) in results {
        match result {
            Ok(()) => deleted.push(format!("'{group}'")),
            Err(e) => failed.push(format!(
                "Group '{group}' could not be deleted: {}",
                group_error(&e)
            )),
        }
    }
    if !deleted.is_empty() {
        println!(
            "Deletion of requested consumer groups ({}) was successful.",
            deleted.join(", ")
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

fn group_error(e: &ClientError) -> String {
    match e.code() {
        Some(ErrorCode::GroupIdNotFound) => "The group id does not exist.".into(),
        Some(ErrorCode::NonEmptyGroup) => "The group is not empty.".into(),
        _ => e.to_string(),
    }
}

async fn delete_offsets(admin: &Admin, a: &ConsumerGroupsArgs) -> Result<(), String> {
    let group = &a.group[0];
    let partitions = named_partitions(admin, &a.topic).await?;
    let results = admin
        .delete_group_offsets(group, &partitions)
        .await
        .map_err(|e| match e.code() {
            Some(ErrorCode::GroupIdNotFound) => format!("Group '{group}' does not exist."),
            Some(ErrorCode::NonEmptyGroup) => format!(
                "Deleting offsets of consumer group '{group}' is forbidden while it has members."
            ),
            _ => e.to_string(),
        })?;
    let mut failures = 0;
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|((t, p), r)| {
            let status = match r {
                Ok(()) => "Successful".to_string(),
                Err(e) => {
                    failures += 1;
                    match e.code() {
                        Some(ErrorCode::GroupSubscribedToTopic) => {
                            "Error: the group is subscribed to the topic".to_string()
                        }
                        _ => format!("Error: {e}"),
                    }
                }
            };
            vec![t.clone(), p.to_string(), status]
        })
        .collect();
    if failures == 0 {
        println!(
            "Request succeed for deleting offsets with topic {} group {group}",
            a.topic.join(", ")
        );
    }
    println!();
    tool::print_table(&["TOPIC", "PARTITION", "STATUS"], &[30, 15, 0], &rows);
    if failures > 0 {
        return Err(format!(
            "{failures} partition(s) kept their offsets; see the STATUS column"
        ));
    }
    Ok(())
}
