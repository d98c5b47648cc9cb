//! Consumer-group and producer-id operations: FindCoordinator, ListGroups, DescribeGroups,
//! OffsetFetch, OffsetCommit and InitProducerId.
//!
//! Group requests go to the group's coordinator, cached per group and dropped when a broker
//! answers NOT_COORDINATOR (see [`Error::retry`]). Commits are made as a non-member
//! (generation -1, empty member id), which Kafka accepts only for groups without live
//! members: exactly the rule strait needs, since it must never write to an active group.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    DescribeGroupsRequest, FindCoordinatorRequest, GroupId, InitProducerIdRequest,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::connection::Connection;
use super::error::{Context, Error, Result};
use super::{KafkaClient, topic_name};

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    /// Group id.
    pub group_id: String,
    /// Protocol type (`consumer` for consumer groups; empty for offset-only groups).
    pub protocol_type: String,
    /// State (`Stable`, `Empty`, ...), empty when the broker does not report it.
    pub state: String,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State: `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance` or `Dead`.
    pub state: String,
    /// Protocol type.
    pub protocol_type: String,
    /// Live member ids.
    pub members: Vec<String>,
}

impl GroupDescription {
    /// True when the group has live members (it is being consumed right now).
    pub fn is_active(&self) -> bool {
        !self.members.is_empty()
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Next offset to read.
    pub offset: i64,
    /// Leader epoch of the committed record, -1 if unknown.
    pub leader_epoch: i32,
    /// Commit metadata string.
    pub metadata: Option<String>,
}

/// A producer id and epoch from InitProducerId.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
}

fn group_id(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_owned()))
}

impl KafkaClient {
    /// The coordinator node for a group, from the cache or FindCoordinator.
    pub async fn find_coordinator(&self, group: &str) -> Result<i32> {
        if let Some(n) = self.cached_coordinator(group) {
            return Ok(n);
        }
        let node = self
            .lookup_coordinator(group, 0, Context::group(group))
            .await?;
        self.set_coordinator(group, node);
        Ok(node)
    }

    /// The transaction coordinator node for a transactional id (FindCoordinator key type 1;
    /// not cached: strait uses transactions only to probe a target).
    pub async fn find_transaction_coordinator(&self, transactional_id: &str) -> Result<i32> {
        self.lookup_coordinator(transactional_id, 1, Context::default())
            .await
    }

    /// FindCoordinator for one key of `key_type` (0 group, 1 transaction).
    async fn lookup_coordinator(&self, key: &str, key_type: i8, context: Context) -> Result<i32> {
        let conn = self.any_connection().await?;
        let version = conn.version_for::<FindCoordinatorRequest>()?;
        let key = StrBytes::from_string(key.to_owned());
        // v4+ batches keys; older versions take one key.
        let req = if version >= 4 {
            FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_key(key)
        };
        let resp = conn
            .send_version(&req, version, self.config().request_timeout)
            .await?;
        let (code, node, msg) = match resp.coordinators.first() {
            Some(c) => (c.error_code, c.node_id.0, c.error_message.clone()),
            None => (resp.error_code, resp.node_id.0, resp.error_message.clone()),
        };
        if code != 0 {
            return Err(Error::broker(
                "FindCoordinator",
                code,
                context,
                msg.map(|m| m.to_string()),
            ));
        }
        Ok(node)
    }

    async fn coordinator_connection(&self, group: &str) -> Result<Arc<Connection>> {
        let node = self.find_coordinator(group).await?;
        self.broker_connection(node).await
    }

    /// Lists the groups known to every broker in the cluster.
    pub async fn list_groups(&self) -> Result<Vec<ListedGroup>> {
        // Refresh broker list: every broker coordinates a share of the groups.
        self.refresh_metadata(Some(&[])).await?;
        let mut nodes: Vec<i32> = self.brokers().into_keys().collect();
        nodes.sort_unstable();
        let mut out = BTreeMap::new();
        for node in nodes {
            let conn = self.broker_connection(node).await?;
            let resp = conn.send(&ListGroupsRequest::default()).await?;
            if resp.error_code != 0 {
                return Err(Error::broker(
                    "ListGroups",
                    resp.error_code,
                    Context::default(),
                    None::<String>,
                ));
            }
            for g in resp.groups {
                let id = g.group_id.0.to_string();
                out.insert(
                    id.clone(),
                    ListedGroup {
                        group_id: id,
                        protocol_type: g.protocol_type.to_string(),
                        state: g.group_state.to_string(),
                    },
                );
            }
        }
        Ok(out.into_values().collect())
    }

    /// Describes one group on its coordinator.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let conn = self.coordinator_connection(group).await?;
        let req = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
        let resp = conn.send(&req).await?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol {
                broker: conn.broker().to_owned(),
                api: "DescribeGroups",
                message: "empty response".to_owned(),
            })?;
        // Kafka 4's group coordinator answers GROUP_ID_NOT_FOUND for a group it does not
        // know; older brokers describe it as Dead. Both mean: no members, no state.
        if g.error_code == 69 {
            return Ok(GroupDescription {
                group_id: group.to_owned(),
                state: "Dead".to_owned(),
                protocol_type: String::new(),
                members: Vec::new(),
            });
        }
        if g.error_code != 0 {
            return Err(Error::broker(
                "DescribeGroups",
                g.error_code,
                Context::group(group),
                g.error_message.map(|m| m.to_string()),
            ));
        }
        Ok(GroupDescription {
            group_id: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            members: g.members.iter().map(|m| m.member_id.to_string()).collect(),
        })
    }

    /// Committed offsets of a group: all partitions (`None`) or the given ones. Partitions
    /// without a commit are left out.
    pub async fn offset_fetch(
        &self,
        group: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<BTreeMap<(String, i32), CommittedOffset>> {
        let conn = self.coordinator_connection(group).await?;
        let version = conn.version_for::<OffsetFetchRequest>()?;
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions.unwrap_or_default() {
            by_topic.entry(t).or_default().push(*p);
        }
        // v8+ batches groups; older versions name one group at the top level.
        let req = if version >= 8 {
            let topics = partitions.map(|_| {
                by_topic
                    .iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopics::default()
                            .with_name(topic_name(t))
                            .with_partition_indexes(ps.clone())
                    })
                    .collect()
            });
            OffsetFetchRequest::default()
                .with_groups(vec![
                    OffsetFetchRequestGroup::default()
                        .with_group_id(group_id(group))
                        .with_topics(topics),
                ])
                .with_require_stable(true)
        } else {
            let topics = partitions.map(|_| {
                by_topic
                    .iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partition_indexes(ps.clone())
                    })
                    .collect()
            });
            OffsetFetchRequest::default()
                .with_group_id(group_id(group))
                .with_topics(topics)
                .with_require_stable(version >= 7)
        };
        let resp = conn
            .send_version(&req, version, self.config().request_timeout)
            .await?;
        let mut out = BTreeMap::new();
        let mut put = |topic: String,
                       p: i32,
                       offset: i64,
                       epoch: i32,
                       meta: Option<StrBytes>,
                       code: i16|
         -> Result<()> {
            if code != 0 {
                return Err(Error::broker(
                    "OffsetFetch",
                    code,
                    Context {
                        group: Some(group.to_owned()),
                        ..Context::partition(&topic, p)
                    },
                    None::<String>,
                ));
            }
            if offset >= 0 {
                out.insert(
                    (topic, p),
                    CommittedOffset {
                        offset,
                        leader_epoch: epoch,
                        metadata: meta.map(|m| m.to_string()),
                    },
                );
            }
            Ok(())
        };
        if version >= 8 {
            for g in resp.groups {
                if g.error_code != 0 {
                    return Err(Error::broker(
                        "OffsetFetch",
                        g.error_code,
                        Context::group(group),
                        None::<String>,
                    ));
                }
                for t in g.topics {
                    for p in t.partitions {
                        put(
                            t.name.0.to_string(),
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata,
                            p.error_code,
                        )?;
                    }
                }
            }
        } else {
            if resp.error_code != 0 {
                return Err(Error::broker(
                    "OffsetFetch",
                    resp.error_code,
                    Context::group(group),
                    None::<String>,
                ));
            }
            for t in resp.topics {
                for p in t.partitions {
                    put(
                        t.name.0.to_string(),
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.metadata,
                        p.error_code,
                    )?;
                }
            }
        }
        Ok(out)
    }

    /// Commits offsets for a group as a non-member. Kafka refuses this for a group with live
    /// members (UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION), which protects active consumers.
    pub async fn offset_commit(
        &self,
        group: &str,
        offsets: &BTreeMap<(String, i32), CommittedOffset>,
    ) -> Result<()> {
        let conn = self.coordinator_connection(group).await?;
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((t, p), c) in offsets {
            by_topic.entry(t).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(c.offset)
                    .with_committed_leader_epoch(c.leader_epoch)
                    .with_committed_metadata(c.metadata.clone().map(StrBytes::from_string)),
            );
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::default())
            .with_retention_time_ms(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let resp = conn.send(&req).await?;
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    let topic = t.name.0.to_string();
                    return Err(Error::broker(
                        "OffsetCommit",
                        p.error_code,
                        Context {
                            group: Some(group.to_owned()),
                            ..Context::partition(&topic, p.partition_index)
                        },
                        None::<String>,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Allocates a producer id (idempotent, or transactional when `transactional_id` is set).
    pub async fn init_producer_id(
        &self,
        transactional_id: Option<&str>,
        transaction_timeout: Duration,
    ) -> Result<ProducerIdentity> {
        let conn = match transactional_id {
            // Transactional ids are owned by their transaction coordinator.
            Some(_) => self.any_connection().await?,
            None => self.any_connection().await?,
        };
        let req = InitProducerIdRequest::default()
            .with_transactional_id(
                transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_owned()))),
            )
            .with_transaction_timeout_ms(
                transaction_timeout
                    .as_millis()
                    .try_into()
                    .unwrap_or(i32::MAX),
            )
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let resp = conn.send(&req).await?;
        if resp.error_code != 0 {
            return Err(Error::broker(
                "InitProducerId",
                resp.error_code,
                Context::default(),
                None::<String>,
            ));
        }
        Ok(ProducerIdentity {
            producer_id: resp.producer_id.0,
            producer_epoch: resp.producer_epoch,
        })
    }
}
