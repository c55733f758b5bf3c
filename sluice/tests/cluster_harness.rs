//! The cluster harness's own promise to later tests: clients, replica fetchers and the quorum
//! can be routed through proxies, so one node's links can be cut alone.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use common::cluster::{Addressing, Cluster, TestDir};
use common::fault_proxy::FaultProxy;

#[test]
fn every_link_can_go_through_a_proxy_of_its_own() {
    let dir = TestDir::new();
    // (viewer, voter) -> the proxy viewer uses to reach voter's controller listener.
    let quorum_links: Rc<RefCell<BTreeMap<(i32, i32), FaultProxy>>> = Default::default();
    let client_links: Rc<RefCell<BTreeMap<i32, FaultProxy>>> = Default::default();
    let addressing = {
        let (quorum_links, client_links) = (quorum_links.clone(), client_links.clone());
        Addressing {
            advertised: Box::new(move |id, bound| {
                let proxy = FaultProxy::start(bound);
                let addr = proxy.addr;
                client_links.borrow_mut().insert(id, proxy);
                addr
            }),
            voter: Box::new(move |viewer, voter, bound| {
                if viewer == voter {
                    return bound;
                }
                let proxy = FaultProxy::start(bound);
                let addr = proxy.addr;
                quorum_links.borrow_mut().insert((viewer, voter), proxy);
                addr
            }),
        }
    };
    // Each node knows its peers' controller listeners only through proxies, so the quorum
    // formed (start waits for every node to list all three brokers) over them.
    let mut cluster = Cluster::start_with(dir.path(), 3, &[], Some(addressing));
    assert_eq!(quorum_links.borrow().len(), 6, "one proxy per ordered pair");

    // Metadata hands out the proxies' addresses, and the tools work through them.
    let advertised: BTreeSet<String> = client_links
        .borrow()
        .values()
        .map(|p| p.addr.to_string())
        .collect();
    let listed: BTreeSet<String> = cluster
        .metadata(1, &[])
        .unwrap()
        .brokers
        .iter()
        .map(|b| format!("{}:{}", b.host, b.port))
        .collect();
    assert_eq!(listed, advertised);
    let bootstrap = cluster.bootstrap();
    for addr in bootstrap.split(',') {
        assert!(advertised.contains(addr), "{bootstrap}");
    }
    cluster.create_topic(&bootstrap, "proxied", &["--replication-factor", "3"]);
    // Followers reach the leader through its advertised proxy too: they fetch and join the ISR.
    cluster.wait_for_partitions("proxied", 30, "all three replicas in sync", |p| {
        p[0].leader.is_some() && p[0].isr.len() == 3
    });
}
