//! DescribeCluster: the cluster id, the controller and the brokers, as the Java AdminClient's
//! `describeCluster` reads them. A standalone broker is the whole cluster and its own
//! controller; in a cluster the committed metadata lists the brokers.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;

use crate::server::Context;

const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;

/// Without ACLs every client may do everything Kafka defines on the cluster resource: create
/// (5), alter (7), describe (8), cluster action (9), describe configs (10), alter configs (11)
/// and idempotent write (12), bits numbered by Kafka's AclOperation codes.
const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    // v0 has no endpoint type on the wire and decodes as brokers, so only v1 gets here with
    // anything else; Kafka answers with these codes from v1 on.
    match request.endpoint_type {
        ENDPOINT_BROKERS => {}
        ENDPOINT_CONTROLLERS => {
            // Kafka's brokers answer the same: controllers are described by a controller
            // listener, and clients asking for them are expected to have bootstrapped to one.
            return refusal(
                ErrorCode::MismatchedEndpointType,
                "this is a broker endpoint; controllers are described by a controller endpoint"
                    .into(),
            );
        }
        other => {
            return refusal(
                ErrorCode::UnsupportedEndpointType,
                format!("endpoint type {other} is neither brokers (1) nor controllers (2)"),
            );
        }
    }
    let node_id = ctx.config.node_id;
    let (controller_id, brokers) = match &ctx.controller {
        // The unfenced brokers of the committed metadata, as Metadata lists them; Kafka names a
        // random broker as "controller" here, the active controller's id is more useful.
        Some(controller) => {
            let image = controller.image().borrow().clone();
            let brokers = image
                .brokers()
                .filter(|b| !b.fenced)
                .filter_map(|b| {
                    let e = b.endpoint(crate::cluster::INTER_BROKER_LISTENER)?;
                    Some(DescribeClusterBroker {
                        broker_id: b.id,
                        host: e.host.clone(),
                        port: e.port as i32,
                        rack: b.rack.clone(),
                    })
                })
                .collect();
            (controller.leader_id().unwrap_or(-1), brokers)
        }
        None => (
            node_id,
            vec![DescribeClusterBroker {
                broker_id: node_id,
                host: ctx.advertised.host.clone(),
                port: ctx.advertised.port as i32,
                rack: None,
            }],
        ),
    };
    DescribeClusterResponse {
        throttle_time_ms: 0,
        error_code: 0,
        error_message: None,
        endpoint_type: ENDPOINT_BROKERS,
        cluster_id: ctx.cluster_id.clone(),
        controller_id,
        brokers,
        cluster_authorized_operations: if request.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            i32::MIN
        },
    }
}

/// An error answer carries nothing else: the spec's defaults everywhere (no cluster id, no
/// controller, no brokers), as Kafka sends it.
fn refusal(code: ErrorCode, message: String) -> DescribeClusterResponse {
    DescribeClusterResponse {
        error_code: code.code(),
        error_message: Some(message),
        ..Default::default()
    }
}
