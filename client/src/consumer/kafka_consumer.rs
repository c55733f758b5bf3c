//! `Consumer`: the application's handle. `poll` is where everything the application must see
//! happens: rebalances and their listener calls, position lookups, auto-commits and records.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;

use super::config::{ConsumerConfig, OffsetReset};
use super::coordinator::{
    CommitFuture, ConsumerCoordinator, JoinFailure, JoinInput, JoinOutcome, Phase,
};
use super::fetcher::{reset_positions, FetchOutcome, Fetcher};
use super::subscription::{Subscription, SubscriptionState};
use super::{ConsumerRecord, OffsetAndMetadata, RebalanceListener, TopicPartition};
use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};

/// This member's place in its group, as Kafka's ConsumerGroupMetadata names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    pub group_id: String,
    /// -1 outside a generation.
    pub generation_id: i32,
    /// Empty before the first join.
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// A Kafka consumer, standalone (`assign`) or a member of a consumer group (`subscribe`).
///
/// It is driven by its owner's calls: `poll` runs the group protocol's client side (rebalances,
/// listener callbacks, auto-commits) and returns buffered records while the next fetches are
/// already on the wire. Heartbeats, the join/sync exchange, commits and fetches run on tasks of
/// their own, so none of them waits for the application. The consumer itself belongs to one
/// task (`&mut self` everywhere): its subscription, positions and buffered records need no
/// locks; only the group membership is shared with its tasks.
pub struct Consumer {
    config: ConsumerConfig,
    cluster: Arc<Cluster>,
    subscriptions: SubscriptionState,
    fetcher: Fetcher,
    group: Option<ConsumerCoordinator>,
    listener: Option<Box<dyn RebalanceListener>>,
    next_auto_commit: Instant,
    next_metadata_check: Instant,
    closed: bool,
}

enum Event {
    Fetched(Option<FetchOutcome>),
    Joined(std::result::Result<Result<JoinOutcome, JoinFailure>, tokio::task::JoinError>),
    Woken,
    Timer,
}

impl Consumer {
    /// A consumer from Kafka-named settings (bootstrap.servers, group.id, ...). Nothing is
    /// connected until the first call that needs the cluster.
    pub fn new(config: ClientConfig) -> Result<Consumer> {
        let config = ConsumerConfig::from_config(&config)?;
        let cluster = Cluster::new(config.common.clone(), config.allow_auto_create_topics);
        let fetcher = Fetcher::new(cluster.clone(), &config);
        let group = config
            .group_id
            .clone()
            .map(|g| ConsumerCoordinator::new(cluster.clone(), &config, g));
        let now = Instant::now();
        Ok(Consumer {
            next_auto_commit: now + config.auto_commit_interval,
            next_metadata_check: now,
            config,
            cluster,
            subscriptions: SubscriptionState::new(),
            fetcher,
            group,
            listener: None,
            closed: false,
        })
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    // ---- subscriptions -------------------------------------------------------------------

    /// Joins the group for `topics`; the group shares their partitions among its members.
    /// Replaces any earlier subscription (and its listener).
    pub fn subscribe<I, S>(&mut self, topics: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subscribe_topics(topics.into_iter().map(Into::into).collect(), None)
    }

    /// `subscribe`, with a listener told of every partition that comes and goes.
    pub fn subscribe_with_listener<I, S>(
        &mut self,
        topics: I,
        listener: impl RebalanceListener + 'static,
    ) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subscribe_topics(
            topics.into_iter().map(Into::into).collect(),
            Some(Box::new(listener)),
        )
    }

    fn subscribe_topics(
        &mut self,
        topics: BTreeSet<String>,
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<()> {
        self.check_can_subscribe()?;
        if topics.iter().any(|t| t.trim().is_empty()) {
            return Err(ClientError::Invalid("topic names must not be empty".into()));
        }
        if topics.is_empty() {
            return Err(ClientError::Invalid(
                "subscribe needs at least one topic (unsubscribe to stop)".into(),
            ));
        }
        let changed =
            !matches!(&self.subscriptions.subscription, Subscription::Topics(t) if *t == topics);
        self.subscriptions.subscription = Subscription::Topics(topics);
        self.listener = listener;
        if changed {
            self.subscription_changed();
        }
        Ok(())
    }

    /// Joins the group for every topic whose whole name matches `pattern` (a regular
    /// expression), now and as topics are created or deleted (checked every
    /// metadata.max.age.ms).
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        self.subscribe_regex(pattern, None)
    }

    pub fn subscribe_pattern_with_listener(
        &mut self,
        pattern: &str,
        listener: impl RebalanceListener + 'static,
    ) -> Result<()> {
        self.subscribe_regex(pattern, Some(Box::new(listener)))
    }

    fn subscribe_regex(
        &mut self,
        pattern: &str,
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<()> {
        self.check_can_subscribe()?;
        // Kafka matches the whole topic name, as Java's Matcher.matches does.
        let regex = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| ClientError::Invalid(format!("bad topic pattern {pattern:?}: {e}")))?;
        self.subscriptions.subscription = Subscription::Pattern(regex, BTreeSet::new());
        self.listener = listener;
        self.subscription_changed();
        // The matching topics are learnt from the next metadata check: make it now.
        self.next_metadata_check = Instant::now();
        Ok(())
    }

    fn check_can_subscribe(&self) -> Result<()> {
        self.check_open()?;
        if self.group.is_none() {
            return Err(ClientError::Invalid(
                "subscribe needs a group.id (use assign to read without a group)".into(),
            ));
        }
        if matches!(self.subscriptions.subscription, Subscription::Manual) {
            return Err(ClientError::Invalid(
                "subscribe and assign do not mix: unsubscribe first".into(),
            ));
        }
        Ok(())
    }

    fn subscription_changed(&mut self) {
        if let Some(g) = &self.group {
            g.shared.request_rejoin("the subscription changed");
        }
    }

    /// Reads exactly `partitions`, outside any group rebalancing (commits, with a group.id,
    /// still go to the group). An empty list is `unsubscribe`.
    pub fn assign<I>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = TopicPartition>,
    {
        self.check_open()?;
        if self.subscriptions.is_group_managed() {
            return Err(ClientError::Invalid(
                "subscribe and assign do not mix: unsubscribe first".into(),
            ));
        }
        let partitions: BTreeSet<TopicPartition> = partitions.into_iter().collect();
        if partitions
            .iter()
            .any(|tp| tp.partition < 0 || tp.topic.is_empty())
        {
            return Err(ClientError::Invalid("invalid partition in assign".into()));
        }
        // What is dropped from the assignment has its progress kept, as Kafka's consumer does.
        if self.config.enable_auto_commit {
            let dropped: Vec<TopicPartition> = self
                .subscriptions
                .assigned()
                .difference(&partitions)
                .cloned()
                .collect();
            let offsets = self.subscriptions.consumed(Some(&dropped));
            if let Some(g) = self.group.as_mut() {
                if !offsets.is_empty() {
                    drop(g.commit(offsets, false, self.config.common.request_timeout, true));
                }
            }
        }
        if partitions.is_empty() {
            self.subscriptions.subscription = Subscription::None;
        } else {
            self.subscriptions.subscription = Subscription::Manual;
        }
        self.subscriptions.set_assignment(partitions);
        Ok(())
    }

    /// Stops reading: a group member commits (with auto-commit), gives up its partitions
    /// (telling the listener) and leaves the group.
    pub async fn unsubscribe(&mut self) -> Result<()> {
        self.check_open()?;
        if self.subscriptions.is_group_managed() {
            self.give_up_partitions().await;
            if let Some(g) = self.group.as_mut() {
                g.shared.leave_group("the consumer unsubscribed").await;
                g.shared.lock().rejoin_needed = false;
            }
        }
        self.subscriptions.subscription = Subscription::None;
        self.subscriptions.set_assignment([]);
        self.listener = None;
        Ok(())
    }

    pub fn subscription(&self) -> BTreeSet<String> {
        match &self.subscriptions.subscription {
            Subscription::Topics(t) | Subscription::Pattern(_, t) => t.clone(),
            _ => BTreeSet::new(),
        }
    }

    pub fn assignment(&self) -> BTreeSet<TopicPartition> {
        self.subscriptions.assigned()
    }

    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        let g = self.group.as_ref()?;
        let s = g.shared.lock();
        Some(ConsumerGroupMetadata {
            group_id: g.shared.settings.group_id.clone(),
            generation_id: s.generation,
            member_id: s.member_id.clone(),
            group_instance_id: g.shared.settings.instance_id.clone(),
        })
    }

    // ---- poll ----------------------------------------------------------------------------

    /// Up to max.poll.records records, waiting up to `timeout` for some. Also where the group
    /// membership advances: joins and their listener calls, auto-commits, metadata checks. A
    /// group member must call it at least every max.poll.interval.ms to stay in the group.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        self.check_open()?;
        if matches!(self.subscriptions.subscription, Subscription::None) {
            return Err(ClientError::Invalid(
                "poll needs a subscription or an assignment".into(),
            ));
        }
        let deadline = Instant::now() + timeout;
        loop {
            // Time spent waiting inside poll is not the application being stuck: the
            // max.poll.interval.ms watchdog counts from the latest pass here.
            if let Some(g) = &self.group {
                g.shared.lock().last_poll = Instant::now();
            }
            self.check_metadata().await;
            self.group_step().await?;
            self.maybe_auto_commit();
            match self.update_positions(deadline).await {
                // The coordinator or a leader is away: this poll goes on without those
                // positions and the next one asks again.
                Err(e) if e.is_retriable() => {
                    tracing::debug!(error = %e, "positions not known yet")
                }
                other => other?,
            }
            self.fetcher.collect_ready(&mut self.subscriptions)?;
            let records = self
                .fetcher
                .drain(&mut self.subscriptions, self.config.max_poll_records)?;
            // Before returning: the next fetches are on the wire while the application works.
            self.fetcher.send_fetches(&mut self.subscriptions).await;
            if !records.is_empty() {
                return Ok(records);
            }
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            match self.wait(deadline).await {
                Event::Fetched(Some(outcome)) => {
                    self.fetcher.handle(outcome, &mut self.subscriptions)?
                }
                Event::Joined(result) => {
                    let g = self.group.as_mut().expect("only groups join");
                    let result = g.take_join_result(result);
                    self.apply_join(result).await?;
                }
                Event::Fetched(None) | Event::Woken | Event::Timer => {}
            }
        }
    }

    /// Sleeps until something `poll` must act on: a fetch answer, the end of a join, a wake-up
    /// from the heartbeat task, or the next timer (deadline, auto-commit, metadata check,
    /// backoff).
    async fn wait(&mut self, deadline: Instant) -> Event {
        // Only instants still ahead count: one already past has been acted on (or has nothing
        // to act on), and waking for it again would spin.
        let now = Instant::now();
        let mut timers = vec![deadline];
        if self.subscriptions.is_group_managed() {
            timers.push(self.next_metadata_check);
        }
        if self.config.enable_auto_commit && self.group.is_some() {
            timers.push(self.next_auto_commit);
        }
        timers.extend(
            self.subscriptions
                .assignment
                .values()
                .filter_map(|s| s.backoff_until),
        );
        if let Some(t) = self.group.as_ref().and_then(|g| g.join_backoff_until) {
            timers.push(t);
        }
        let until = timers
            .into_iter()
            .filter(|t| *t > now)
            .min()
            .unwrap_or(deadline);
        let Consumer { fetcher, group, .. } = self;
        let (join, shared) = match group {
            Some(g) => {
                let shared = g.shared.clone();
                (g.join_handle(), Some(shared))
            }
            None => (None, None),
        };
        tokio::select! {
            outcome = fetcher.recv() => Event::Fetched(outcome),
            result = async {
                match join {
                    Some(j) => j.await,
                    None => std::future::pending().await,
                }
            } => Event::Joined(result),
            _ = async {
                match &shared {
                    Some(s) => s.wake.notified().await,
                    None => std::future::pending().await,
                }
            } => Event::Woken,
            _ = tokio::time::sleep_until(until.into()) => Event::Timer,
        }
    }

    // ---- the group -----------------------------------------------------------------------

    /// Advances the membership: applies a finished join, gives up lost partitions, and starts
    /// a join when one is due (revoking first what the rebalance protocol requires).
    async fn group_step(&mut self) -> Result<()> {
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        if let Some(e) = g.shared.fatal() {
            return Err(e);
        }
        if !self.subscriptions.is_group_managed() {
            return Ok(());
        }
        if let Some(result) = g.finished_join().await {
            self.apply_join(result).await?;
        }
        let g = self.group.as_mut().expect("checked");
        let lost = std::mem::take(&mut g.shared.lock().lost);
        if lost {
            self.lose_partitions();
        }
        let g = self.group.as_mut().expect("checked");
        if !g.needs_join(Instant::now()) {
            return Ok(());
        }
        let cooperative = g.cooperative;
        let topics = self.subscriptions.topics();
        if cooperative {
            // Partitions of topics no longer subscribed go before the join, so the leader never
            // sees them claimed.
            let gone: Vec<TopicPartition> = self
                .subscriptions
                .assigned()
                .into_iter()
                .filter(|tp| !topics.contains(&tp.topic))
                .collect();
            if !gone.is_empty() {
                self.revoke(&gone).await;
            }
        } else {
            // Eager: everything is given up before joining; the new assignment starts clean.
            let owned: Vec<TopicPartition> = self.subscriptions.assigned().into_iter().collect();
            if !owned.is_empty() {
                self.revoke(&owned).await;
            }
        }
        let owned: Vec<TopicPartition> = self.subscriptions.assigned().into_iter().collect();
        let g = self.group.as_mut().expect("checked");
        let reason = if g.shared.lock().generation < 0 {
            "joining".to_string()
        } else {
            "rejoining after a rebalance was asked for".to_string()
        };
        g.ensure_heartbeat();
        g.start_join(JoinInput {
            topics: topics.into_iter().collect(),
            owned,
            reason,
        });
        Ok(())
    }

    async fn apply_join(&mut self, result: Result<JoinOutcome, JoinFailure>) -> Result<()> {
        let g = self.group.as_mut().expect("only groups join");
        match result {
            Ok(outcome) => {
                g.watched = outcome.watched;
                let cooperative = g.cooperative;
                let new: BTreeSet<TopicPartition> = outcome.assignment.into_iter().collect();
                let owned = self.subscriptions.assigned();
                let added: Vec<TopicPartition> = new.difference(&owned).cloned().collect();
                if cooperative {
                    let revoked: Vec<TopicPartition> = owned.difference(&new).cloned().collect();
                    if !revoked.is_empty() {
                        self.revoke(&revoked).await;
                        // KIP-429: what this member gave up is assigned in the next generation,
                        // which starts when we rejoin.
                        if let Some(g) = &self.group {
                            g.shared.request_rejoin("partitions were revoked");
                        }
                    }
                    self.subscriptions.add(&added);
                } else {
                    self.subscriptions.set_assignment(new.iter().cloned());
                }
                tracing::debug!(generation = outcome.generation, assigned = ?added, "assignment applied");
                let assigned = if cooperative {
                    added
                } else {
                    new.into_iter().collect()
                };
                if let Some(l) = self.listener.as_mut() {
                    l.on_partitions_assigned(&assigned);
                }
                Ok(())
            }
            Err(JoinFailure::Lost(e)) => {
                tracing::info!(error = %e, "membership lost while joining");
                self.lose_partitions();
                Ok(())
            }
            Err(JoinFailure::Retry(e)) => {
                tracing::warn!(error = %e, "join failed; retrying");
                g.shared.lock().phase = Phase::Unjoined;
                g.join_backoff_until = Some(Instant::now() + self.config.common.retry_backoff);
                Ok(())
            }
            Err(JoinFailure::Fatal(e)) => {
                if let ClientError::Broker { code, context, .. } = &e {
                    g.shared.lock().fatal = Some((*code, context.clone()));
                }
                g.shared.lock().phase = Phase::Unjoined;
                Err(e)
            }
        }
    }

    /// Gives up `partitions` in an orderly way: commit what was consumed (with auto-commit),
    /// tell the listener, forget them.
    async fn revoke(&mut self, partitions: &[TopicPartition]) {
        if self.config.enable_auto_commit {
            let offsets = self.subscriptions.consumed(Some(partitions));
            if !offsets.is_empty() {
                if let Err(e) = self.commit_offsets(offsets).await {
                    tracing::warn!(error = %e, "commit before revoking partitions failed");
                }
            }
        } else if let Some(hook) = self
            .listener
            .as_mut()
            .and_then(|l| l.commit_before_revoke(partitions))
        {
            match hook.await {
                Ok(offsets) if !offsets.is_empty() => {
                    if let Err(e) = self.commit_offsets(offsets).await {
                        tracing::warn!(error = %e, "commit before revoking partitions failed");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "nothing committed before revoking partitions")
                }
            }
        }
        if let Some(l) = self.listener.as_mut() {
            l.on_partitions_revoked(partitions);
        }
        self.subscriptions.remove(partitions);
    }

    /// Partitions whose membership ended without a rebalance: no commit, another member may own
    /// them already.
    fn lose_partitions(&mut self) {
        let owned: Vec<TopicPartition> = self.subscriptions.assigned().into_iter().collect();
        if owned.is_empty() {
            return;
        }
        tracing::info!(partitions = ?owned, "partitions lost");
        if let Some(l) = self.listener.as_mut() {
            l.on_partitions_lost(&owned);
        }
        self.subscriptions.set_assignment([]);
    }

    /// Revokes (or loses, outside a generation) everything, for close and unsubscribe.
    async fn give_up_partitions(&mut self) {
        if let Some(g) = self.group.as_mut() {
            g.abort_join();
        }
        let in_generation = self.group.as_ref().is_some_and(|g| {
            let s = g.shared.lock();
            s.generation >= 0 && matches!(s.phase, Phase::Stable | Phase::Joining)
        });
        if let Some(g) = &self.group {
            // An aborted join leaves the member as it was before it: back to its generation.
            let mut s = g.shared.lock();
            if s.phase == Phase::Joining {
                s.phase = if s.generation >= 0 {
                    Phase::Stable
                } else {
                    Phase::Unjoined
                };
            }
        }
        let owned: Vec<TopicPartition> = self.subscriptions.assigned().into_iter().collect();
        if owned.is_empty() {
            return;
        }
        if in_generation {
            self.revoke(&owned).await;
        } else {
            self.lose_partitions();
        }
    }

    /// Rejoins when the subscribed topics change: a pattern matching a new (or no longer a
    /// deleted) topic, or a partition count change on a watched topic.
    async fn check_metadata(&mut self) {
        let now = Instant::now();
        if now < self.next_metadata_check || !self.subscriptions.is_group_managed() {
            return;
        }
        self.next_metadata_check = now + self.config.common.metadata_max_age;
        let Some(g) = self.group.as_mut() else {
            return;
        };
        let snapshot = match &self.subscriptions.subscription {
            Subscription::Pattern(..) => self.cluster.refresh(None).await,
            _ => {
                let topics: Vec<String> = self
                    .subscriptions
                    .topics()
                    .into_iter()
                    .chain(g.watched.keys().cloned())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                self.cluster.refresh(Some(&topics)).await
            }
        };
        let snapshot = match snapshot {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "metadata check failed");
                self.next_metadata_check = now
                    + self
                        .config
                        .common
                        .retry_backoff
                        .max(Duration::from_millis(500));
                return;
            }
        };
        if let Subscription::Pattern(regex, matched) = &mut self.subscriptions.subscription {
            let now_matching: BTreeSet<String> = snapshot
                .topics
                .values()
                .filter(|t| !(t.internal && self.config.exclude_internal_topics))
                .filter(|t| regex.is_match(&t.name))
                .map(|t| t.name.clone())
                .collect();
            if now_matching != *matched {
                tracing::info!(topics = ?now_matching, "the subscription pattern matches new topics");
                *matched = now_matching;
                g.shared.request_rejoin("the pattern's topics changed");
            }
        }
        if g.shared.lock().phase != Phase::Stable {
            return;
        }
        let subscribed = self.subscriptions.topics();
        for topic in subscribed.iter().chain(g.watched.clone().keys()) {
            let count = snapshot
                .topics
                .get(topic)
                .map_or(0, |t| t.partitions.len() as i32);
            match g.watched.get(topic) {
                None => {
                    g.watched.insert(topic.clone(), count);
                }
                Some(&before) if before != count => {
                    tracing::info!(topic = %topic, before, now = count, "partition count changed; rebalancing");
                    g.watched.insert(topic.clone(), count);
                    g.shared
                        .request_rejoin("a subscribed topic's partitions changed");
                }
                Some(_) => {}
            }
        }
    }

    fn maybe_auto_commit(&mut self) {
        let now = Instant::now();
        if !self.config.enable_auto_commit || now < self.next_auto_commit {
            return;
        }
        self.next_auto_commit = now + self.config.auto_commit_interval;
        let group_managed = self.subscriptions.is_group_managed();
        let Some(g) = self.group.as_mut() else {
            return;
        };
        if group_managed && g.shared.lock().phase != Phase::Stable {
            return;
        }
        let offsets = self.subscriptions.consumed(None);
        if !offsets.is_empty() {
            // Fire and forget: the committer logs failures, and the next interval tries again.
            drop(g.commit(
                offsets,
                group_managed,
                self.config.common.request_timeout,
                true,
            ));
        }
    }

    /// Gives every partition without a position one: its committed offset, else the
    /// auto.offset.reset policy (a ListOffsets to its leader).
    async fn update_positions(&mut self, deadline: Instant) -> Result<()> {
        let needing = self.subscriptions.needing_committed();
        if !needing.is_empty() {
            let committed = match self.group.as_ref() {
                Some(g) => g.shared.fetch_committed(&needing, deadline).await?,
                None => BTreeMap::new(),
            };
            let mut without = Vec::new();
            for tp in needing {
                match committed.get(&tp).cloned().flatten() {
                    Some(o) => self.subscriptions.seek(&tp, o.offset, o.leader_epoch),
                    None => without.push(tp),
                }
            }
            if !without.is_empty() {
                match self.config.auto_offset_reset {
                    OffsetReset::None => {
                        let names: Vec<String> = without.iter().map(|tp| tp.to_string()).collect();
                        return Err(ClientError::Invalid(format!(
                            "no committed offset for {} and auto.offset.reset is none; seek to choose where to start",
                            names.join(", ")
                        )));
                    }
                    reset => {
                        for tp in &without {
                            self.subscriptions.request_reset(tp, reset);
                        }
                    }
                }
            }
        }
        reset_positions(
            &self.cluster,
            &mut self.subscriptions,
            self.config.common.retry_backoff,
        )
        .await;
        Ok(())
    }

    // ---- offsets -------------------------------------------------------------------------

    fn group_for_commits(&mut self) -> Result<&mut ConsumerCoordinator> {
        self.group.as_mut().ok_or_else(|| {
            ClientError::Invalid("offsets are committed to a group: set group.id".into())
        })
    }

    async fn commit_offsets(
        &mut self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        let group_managed = self.subscriptions.is_group_managed();
        let timeout = self.config.default_api_timeout;
        let g = self.group_for_commits()?;
        g.commit(offsets, group_managed, timeout, false).await
    }

    /// Commits `offsets` (by default, the position of every assigned partition: everything
    /// `poll` has returned) and waits for the group to store them. Commits go out in the order
    /// they are made, after any `commit_async` made before. A group member cannot commit while
    /// it rejoins (REBALANCE_IN_PROGRESS): poll, then commit what it still owns.
    pub async fn commit_sync(
        &mut self,
        offsets: Option<BTreeMap<TopicPartition, OffsetAndMetadata>>,
    ) -> Result<()> {
        self.check_open()?;
        let offsets = offsets.unwrap_or_else(|| self.subscriptions.consumed(None));
        self.commit_offsets(offsets).await
    }

    /// Starts a commit and returns at once; await the future for its outcome.
    pub fn commit_async(
        &mut self,
        offsets: Option<BTreeMap<TopicPartition, OffsetAndMetadata>>,
    ) -> CommitFuture {
        if let Err(e) = self.check_open() {
            return CommitFuture::failed(e);
        }
        let offsets = offsets.unwrap_or_else(|| self.subscriptions.consumed(None));
        let group_managed = self.subscriptions.is_group_managed();
        let timeout = self.config.common.request_timeout;
        match self.group_for_commits() {
            Ok(g) => g.commit(offsets, group_managed, timeout, false),
            Err(e) => CommitFuture::failed(e),
        }
    }

    /// The group's committed offsets for `partitions`; `None` where it has none.
    pub async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndMetadata>>> {
        self.check_open()?;
        let deadline = Instant::now() + self.config.default_api_timeout;
        let g = self.group_for_commits()?;
        g.shared.fetch_committed(partitions, deadline).await
    }

    /// The offset of the next record `poll` returns for `partition`, looked up (committed
    /// offset or reset policy) if not known yet.
    pub async fn position(&mut self, partition: &TopicPartition) -> Result<i64> {
        self.check_open()?;
        let deadline = Instant::now() + self.config.default_api_timeout;
        loop {
            let state = self
                .subscriptions
                .assignment
                .get(partition)
                .ok_or_else(|| not_assigned(partition))?;
            if let (Some(p), None) = (state.position, state.reset) {
                return Ok(p.offset);
            }
            self.update_positions(deadline).await?;
            let known = self
                .subscriptions
                .assignment
                .get(partition)
                .is_some_and(|s| s.position.is_some() && s.reset.is_none());
            if !known {
                if Instant::now() >= deadline {
                    return Err(ClientError::Timeout(format!("the position of {partition}")));
                }
                tokio::time::sleep(self.config.common.retry_backoff).await;
            }
        }
    }

    /// The next `poll` returns `partition`'s records from `offset` on.
    pub fn seek(&mut self, partition: &TopicPartition, offset: i64) -> Result<()> {
        self.check_open()?;
        if offset < 0 {
            return Err(ClientError::Invalid(format!(
                "cannot seek {partition} to {offset}"
            )));
        }
        if !self.subscriptions.assignment.contains_key(partition) {
            return Err(not_assigned(partition));
        }
        self.subscriptions.seek(partition, offset, None);
        Ok(())
    }

    /// Moves `partitions` (every assigned one if empty) to the start of their logs, looked up
    /// on the next `poll` or `position`.
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.reset_to(partitions, OffsetReset::Earliest)
    }

    /// Moves `partitions` (every assigned one if empty) to the end of their logs.
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.reset_to(partitions, OffsetReset::Latest)
    }

    fn reset_to(&mut self, partitions: &[TopicPartition], reset: OffsetReset) -> Result<()> {
        self.check_open()?;
        let targets: Vec<TopicPartition> = if partitions.is_empty() {
            self.subscriptions.assigned().into_iter().collect()
        } else {
            partitions.to_vec()
        };
        if let Some(tp) = targets
            .iter()
            .find(|tp| !self.subscriptions.assignment.contains_key(tp))
        {
            return Err(not_assigned(tp));
        }
        for tp in &targets {
            self.subscriptions.request_reset(tp, reset);
        }
        Ok(())
    }

    // ---- flow control ----------------------------------------------------------------------

    /// Stops returning (and fetching) records of `partitions` until `resume`; what is already
    /// buffered waits. Pausing does not leave the group or give the partitions up.
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.set_paused(partitions, true)
    }

    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.set_paused(partitions, false)
    }

    fn set_paused(&mut self, partitions: &[TopicPartition], paused: bool) -> Result<()> {
        self.check_open()?;
        if let Some(tp) = partitions
            .iter()
            .find(|tp| !self.subscriptions.assignment.contains_key(tp))
        {
            return Err(not_assigned(tp));
        }
        for tp in partitions {
            if let Some(s) = self.subscriptions.get_mut(tp) {
                s.paused = paused;
            }
        }
        Ok(())
    }

    /// How many records `partition` has on the broker past the position, by the high
    /// watermark of the last fetch response that included it (Kafka's `currentLag`): no request
    /// is made. `None` before such a response or while the position is unknown.
    pub fn current_lag(&self, partition: &TopicPartition) -> Option<i64> {
        let state = self.subscriptions.assignment.get(partition)?;
        let position = state.position?.offset;
        (state.high_watermark >= 0).then(|| (state.high_watermark - position).max(0))
    }

    pub fn paused(&self) -> BTreeSet<TopicPartition> {
        self.subscriptions
            .assignment
            .iter()
            .filter(|(_, s)| s.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    // ---- closing -------------------------------------------------------------------------

    /// Commits (with auto-commit), gives the partitions up (telling the listener) and leaves
    /// the group (a static member stays, for its session, so a restart keeps its partitions).
    ///
    /// Dropping a consumer without `close` abandons it instead: no commit and no LeaveGroup;
    /// the group notices when its session times out.
    pub async fn close(mut self) -> Result<()> {
        self.check_open()?;
        let mut result = Ok(());
        if self.subscriptions.is_group_managed() {
            self.give_up_partitions().await;
        } else if self.config.enable_auto_commit {
            let offsets = self.subscriptions.consumed(None);
            if !offsets.is_empty() {
                result = self.commit_offsets(offsets).await;
            }
        }
        if let Some(g) = self.group.as_mut() {
            if self.subscriptions.is_group_managed() {
                g.shared.leave_group("the consumer is closing").await;
            }
            g.shutdown();
        }
        self.closed = true;
        result
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(ClientError::Closed)
        } else {
            Ok(())
        }
    }
}

fn not_assigned(tp: &TopicPartition) -> ClientError {
    ClientError::Invalid(format!("{tp} is not assigned to this consumer"))
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group_id", &self.config.group_id)
            .field("assignment", &self.subscriptions.assigned())
            .finish()
    }
}
