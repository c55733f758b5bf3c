//! The tests' own Kafka clients for driving an app end to end: a runtime with an admin client
//! and a producer, topics created, records sent, and a topic read back up to given offsets.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice_client::admin::{NewTopic, OffsetSpec};
use sluice_client::{
    Admin, ClientConfig, Consumer, ConsumerRecord, Producer, ProducerRecord, TopicPartition,
};

pub struct TestClients {
    pub rt: tokio::runtime::Runtime,
    pub bootstrap: String,
    pub admin: Admin,
    pub producer: Producer,
}

impl TestClients {
    pub fn new(bootstrap: &str) -> TestClients {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let cfg = ClientConfig::new().set("bootstrap.servers", bootstrap);
        let admin = Admin::new(cfg.clone()).unwrap();
        let producer = rt
            .block_on(Producer::new(cfg.set("linger.ms", "5")))
            .unwrap();
        TestClients {
            rt,
            bootstrap: bootstrap.to_string(),
            admin,
            producer,
        }
    }

    pub fn create(&self, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
        let mut t = NewTopic::new(topic).partitions(partitions);
        for (k, v) in configs {
            t = t.config(*k, *v);
        }
        let r = self
            .rt
            .block_on(self.admin.create_topics(&[t], false))
            .unwrap();
        r[topic].as_ref().unwrap();
    }

    /// Sends one record and waits for its acknowledgement, so records are in the log in the
    /// order of the calls. A `None` value is a tombstone.
    pub fn send(&self, topic: &str, key: &str, value: Option<&str>, timestamp: Option<i64>) {
        let mut r = ProducerRecord::new(topic).key(key.as_bytes().to_vec());
        if let Some(v) = value {
            r = r.value(v.as_bytes().to_vec());
        }
        if let Some(ts) = timestamp {
            r = r.timestamp(ts);
        }
        self.rt.block_on(async {
            let delivery = self.producer.send(r).await.unwrap();
            delivery.await.unwrap();
        });
    }

    pub fn partitions(&self, topic: &str) -> Vec<TopicPartition> {
        let d = self
            .rt
            .block_on(self.admin.describe_topics(&[topic.to_string()]))
            .unwrap();
        let d = d[topic].as_ref().unwrap();
        d.partitions
            .iter()
            .map(|p| TopicPartition::new(topic, p.partition))
            .collect()
    }

    pub fn end_offsets(&self, topic: &str) -> BTreeMap<i32, i64> {
        let tps: Vec<(String, i32)> = self
            .partitions(topic)
            .into_iter()
            .map(|tp| (tp.topic, tp.partition))
            .collect();
        let r = self
            .rt
            .block_on(self.admin.list_offsets(&tps, OffsetSpec::Latest))
            .unwrap();
        r.into_iter()
            .map(|((_, p), o)| (p, o.unwrap().offset))
            .collect()
    }

    /// The group's committed offsets of `topic`, by partition.
    pub fn committed(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        let r = self
            .rt
            .block_on(self.admin.list_group_offsets(group))
            .unwrap();
        r.into_iter()
            .filter(|((t, _), _)| t == topic)
            .map(|((_, p), o)| (p, o.offset))
            .collect()
    }

    /// Every record of `topic` up to its end now, partition by partition in offset order.
    pub fn read(&self, topic: &str) -> Vec<ConsumerRecord> {
        self.read_range(topic, &BTreeMap::new(), None)
    }

    /// The records of `topic` from `from` (per partition, default 0) up to `to` (default: the
    /// end now), partition by partition in offset order.
    pub fn read_range(
        &self,
        topic: &str,
        from: &BTreeMap<i32, i64>,
        to: Option<&BTreeMap<i32, i64>>,
    ) -> Vec<ConsumerRecord> {
        let ends = match to {
            Some(t) => t.clone(),
            None => self.end_offsets(topic),
        };
        let tps = self.partitions(topic);
        self.rt.block_on(async {
            let mut c =
                Consumer::new(ClientConfig::new().set("bootstrap.servers", &self.bootstrap))
                    .unwrap();
            c.assign(tps.clone()).unwrap();
            for tp in &tps {
                c.seek(tp, from.get(&tp.partition).copied().unwrap_or(0))
                    .unwrap();
            }
            let mut out = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let mut done = true;
                for tp in &tps {
                    if c.position(tp).await.unwrap() < ends[&tp.partition] {
                        done = false;
                    }
                }
                if done {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "could not read {topic} to its end"
                );
                for r in c.poll(Duration::from_millis(200)).await.unwrap() {
                    if r.offset < ends[&r.partition] {
                        out.push(r);
                    }
                }
            }
            out.sort_by_key(|r| (r.partition, r.offset));
            out
        })
    }
}
