//! Administrative operations: topics, partitions, configs, DeleteRecords, ACLs and producers.
//!
//! Cluster-wide requests go to any broker (KRaft brokers forward to the controller);
//! partition-scoped ones (DeleteRecords, DescribeProducers) go to each partition's leader.
//! APIs a broker does not advertise fail with [`Error::UnsupportedApi`] before anything is
//! sent, because some Kafka-compatible brokers close the connection on unknown requests.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreateAclsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteAclsRequest,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeAclsRequest, DescribeConfigsRequest,
    DescribeLogDirsRequest, DescribeProducersRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::data::PartitionResults;
use super::error::{Context, Error, Result};
use super::{KafkaClient, topic_name};

/// Config resource type code for topics.
const RESOURCE_TOPIC: i8 = 2;
/// Config resource type code for brokers.
const RESOURCE_BROKER: i8 = 4;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor (-1 = broker default).
    pub replication_factor: i16,
    /// Topic configs to set at creation.
    pub configs: BTreeMap<String, String>,
}

/// One config entry as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Config name.
    pub name: String,
    /// Value (`None` for sensitive or unset values).
    pub value: Option<String>,
    /// Where the value comes from (Kafka's ConfigSource code: 1 = topic, 5 = default, ...).
    pub source: i8,
    /// Whether it cannot be changed.
    pub read_only: bool,
    /// Whether the broker hides the value.
    pub sensitive: bool,
}

impl ConfigEntry {
    /// True when the value was set explicitly on the topic (DYNAMIC_TOPIC_CONFIG).
    pub fn is_topic_override(&self) -> bool {
        self.source == 1
    }
}

/// Most ACL filters strait puts in one DeleteAcls request.
pub const ACL_FILTERS_PER_REQUEST: usize = 1_000;

/// IncrementalAlterConfigs operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterOp {
    /// Set a value.
    Set(String),
    /// Remove the override (back to the default).
    Delete,
}

/// ACL resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum AclResource {
    /// Match any resource type (filters only).
    Any = 1,
    /// A topic.
    Topic = 2,
    /// A consumer group.
    Group = 3,
    /// The cluster.
    Cluster = 4,
}

/// ACL pattern types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum AclPattern {
    /// Match any pattern type (filters only).
    Any = 1,
    /// The name is matched exactly.
    Literal = 3,
    /// The name is a prefix.
    Prefixed = 4,
}

/// ACL operations (the subset strait uses; codes per the Kafka protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum AclOperation {
    /// Any operation (filters only).
    Any = 1,
    /// All operations.
    All = 2,
    /// Read.
    Read = 3,
    /// Write.
    Write = 4,
    /// Describe.
    Describe = 8,
}

/// ACL permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum AclPermission {
    /// Any permission (filters only).
    Any = 1,
    /// Deny.
    Deny = 2,
    /// Allow.
    Allow = 3,
}

/// An ACL binding (also used as a filter for describe/delete, where `Any` values and empty
/// strings match everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// Resource type.
    pub resource: AclResource,
    /// Resource name (empty in a filter = any).
    pub name: String,
    /// Pattern type.
    pub pattern: AclPattern,
    /// Principal, e.g. `User:alice` (empty in a filter = any; `User:*` = everyone).
    pub principal: String,
    /// Host (`*` = any host).
    pub host: String,
    /// Operation.
    pub operation: AclOperation,
    /// Permission.
    pub permission: AclPermission,
}

/// A producer the broker reports as active on a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i32,
    /// Last sequence number written.
    pub last_sequence: i32,
    /// Timestamp of its last write (ms), -1 if unknown.
    pub last_timestamp: i64,
    /// Start offset of its open transaction, -1 if none.
    pub current_txn_start_offset: i64,
}

/// Reads a CreateAcls or DeleteAcls answer: one result per ACL sent (a broker that answers
/// fewer does not really manage ACLs: the whole request fails), each ACL's own outcome in
/// order (an error names its ACL's topic).
fn acl_answers<'a>(
    api: &'static str,
    broker: &str,
    acls: &[Acl],
    answers: impl ExactSizeIterator<Item = (i16, &'a Option<StrBytes>)>,
) -> Result<Vec<Result<()>>> {
    if answers.len() != acls.len() {
        return Err(Error::Protocol {
            broker: broker.to_owned(),
            api,
            message: format!(
                "{} results for {} ACLs: the broker does not really manage ACLs",
                answers.len(),
                acls.len()
            ),
        });
    }
    Ok(acls
        .iter()
        .zip(answers)
        .map(|(a, (code, message))| {
            if code == 0 {
                Ok(())
            } else {
                Err(Error::broker(
                    api,
                    code,
                    Context::topic(&a.name),
                    message.as_ref().map(|m| m.to_string()),
                ))
            }
        })
        .collect())
}

fn opt_str(s: &str) -> Option<StrBytes> {
    (!s.is_empty()).then(|| StrBytes::from_string(s.to_owned()))
}

impl KafkaClient {
    /// Creates topics. Returns per topic `Ok(())` or its error (TOPIC_ALREADY_EXISTS included).
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        timeout: Duration,
        validate_only: bool,
    ) -> Result<BTreeMap<String, Result<()>>> {
        let conn = self.any_connection().await?;
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(timeout.as_millis().try_into().unwrap_or(i32::MAX))
            .with_validate_only(validate_only)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(topic_name(&t.name))
                            .with_num_partitions(t.partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(StrBytes::from_string(k.clone()))
                                            .with_value(Some(StrBytes::from_string(v.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let resp = conn.send_with_extra_time(&req, timeout).await?;
        let out = resp
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let r = if t.error_code == 0 {
                    Ok(())
                } else {
                    Err(Error::broker(
                        "CreateTopics",
                        t.error_code,
                        Context::topic(&name),
                        t.error_message.map(|m| m.to_string()),
                    ))
                };
                (name, r)
            })
            .collect();
        for t in topics {
            self.invalidate_topic(&t.name);
        }
        Ok(out)
    }

    /// Grows a topic to `total` partitions.
    pub async fn create_partitions(
        &self,
        topic: &str,
        total: i32,
        timeout: Duration,
    ) -> Result<()> {
        let conn = self.any_connection().await?;
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(timeout.as_millis().try_into().unwrap_or(i32::MAX))
            .with_topics(vec![
                // Null assignments: the controller places the new partitions. (An empty list
                // means "exactly these zero assignments" and is rejected.)
                CreatePartitionsTopic::default()
                    .with_name(topic_name(topic))
                    .with_count(total)
                    .with_assignments(None),
            ]);
        let resp = conn.send_with_extra_time(&req, timeout).await?;
        self.invalidate_topic(topic);
        for r in resp.results {
            if r.error_code != 0 {
                return Err(Error::broker(
                    "CreatePartitions",
                    r.error_code,
                    Context::topic(topic),
                    r.error_message.map(|m| m.to_string()),
                ));
            }
        }
        Ok(())
    }

    /// Describes the configs of topics (all keys, defaults included where the broker lists them).
    pub async fn describe_topic_configs(
        &self,
        topics: &[String],
    ) -> Result<BTreeMap<String, Result<Vec<ConfigEntry>>>> {
        let conn = self.any_connection().await?;
        let req = DescribeConfigsRequest::default().with_resources(
            topics
                .iter()
                .map(|t| {
                    DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(StrBytes::from_string(t.clone()))
                        .with_configuration_keys(None)
                })
                .collect(),
        );
        let resp = conn.send(&req).await?;
        Ok(resp
            .results
            .into_iter()
            .map(|r| {
                let name = r.resource_name.to_string();
                let v = if r.error_code == 0 {
                    Ok(r.configs
                        .into_iter()
                        .map(|c| ConfigEntry {
                            name: c.name.to_string(),
                            value: c.value.map(|v| v.to_string()),
                            source: c.config_source,
                            read_only: c.read_only,
                            sensitive: c.is_sensitive,
                        })
                        .collect())
                } else {
                    Err(Error::broker(
                        "DescribeConfigs",
                        r.error_code,
                        Context::topic(&name),
                        r.error_message.map(|m| m.to_string()),
                    ))
                };
                (name, v)
            })
            .collect())
    }

    /// Sets or deletes topic configs incrementally.
    pub async fn alter_topic_configs(
        &self,
        topic: &str,
        changes: &BTreeMap<String, AlterOp>,
        validate_only: bool,
    ) -> Result<()> {
        let conn = self.any_connection().await?;
        let configs = changes
            .iter()
            .map(|(k, op)| {
                let (code, value) = match op {
                    AlterOp::Set(v) => (0, Some(StrBytes::from_string(v.clone()))),
                    AlterOp::Delete => (1, None),
                };
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(code)
                    .with_value(value)
            })
            .collect();
        let req = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(StrBytes::from_string(topic.to_owned()))
                    .with_configs(configs),
            ]);
        let resp = conn.send(&req).await?;
        for r in resp.responses {
            if r.error_code != 0 {
                return Err(Error::broker(
                    "IncrementalAlterConfigs",
                    r.error_code,
                    Context::topic(topic),
                    r.error_message.map(|m| m.to_string()),
                ));
            }
        }
        Ok(())
    }

    /// Deletes records before `offset` in each partition (raises the log start offset).
    /// Returns the new low watermark per partition.
    pub async fn delete_records(
        &self,
        partitions: &[((String, i32), i64)],
        timeout: Duration,
    ) -> PartitionResults<i64> {
        let (by_leader, failed) = self
            .group_by_leader(partitions, |((t, p), _)| (t, *p))
            .await;
        let mut out: PartitionResults<i64> = failed
            .into_iter()
            .map(|f| {
                (
                    (f.topic, f.partition),
                    Err(f.error.expect("grouping failure has an error")),
                )
            })
            .collect();
        for (leader, ps) in by_leader {
            let keys: Vec<(String, i32)> = ps.iter().map(|(k, _)| k.clone()).collect();
            match self.delete_records_on(leader, &ps, timeout).await {
                Ok(r) => out.extend(r),
                Err(e) => out.extend(keys.into_iter().map(|k| (k, Err(e.clone())))),
            }
        }
        out
    }

    async fn delete_records_on(
        &self,
        node: i32,
        partitions: &[((String, i32), i64)],
        timeout: Duration,
    ) -> Result<PartitionResults<i64>> {
        let conn = self.broker_connection(node).await?;
        let mut topics: BTreeMap<&str, Vec<DeleteRecordsPartition>> = BTreeMap::new();
        for ((t, p), off) in partitions {
            topics.entry(t).or_default().push(
                DeleteRecordsPartition::default()
                    .with_partition_index(*p)
                    .with_offset(*off),
            );
        }
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(timeout.as_millis().try_into().unwrap_or(i32::MAX))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        DeleteRecordsTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let resp = conn.send_with_extra_time(&req, timeout).await?;
        let mut out = BTreeMap::new();
        for t in resp.topics {
            let topic = t.name.0.to_string();
            for p in t.partitions {
                let r = if p.error_code == 0 {
                    Ok(p.low_watermark)
                } else {
                    Err(Error::broker(
                        "DeleteRecords",
                        p.error_code,
                        Context::partition(&topic, p.partition_index),
                        None::<String>,
                    ))
                };
                out.insert((topic.clone(), p.partition_index), r);
            }
        }
        Ok(out)
    }

    /// Creates ACL bindings. Fails on the first binding the broker rejects.
    pub async fn create_acls(&self, acls: &[Acl]) -> Result<()> {
        self.create_acls_each(acls).await?.into_iter().collect()
    }

    /// Creates ACL bindings, one CreateAcls request per [`ACL_FILTERS_PER_REQUEST`], and
    /// returns each binding's own outcome in order: a broker answers every binding (all
    /// SECURITY_DISABLED without an authorizer), so one refused binding needs no request of
    /// its own to be told apart from the others. `Err` when a request failed as a whole
    /// (connection, a broker that does not really manage ACLs).
    pub async fn create_acls_each(&self, acls: &[Acl]) -> Result<Vec<Result<()>>> {
        let mut out = Vec::with_capacity(acls.len());
        for chunk in acls.chunks(ACL_FILTERS_PER_REQUEST) {
            let conn = self.any_connection().await?;
            let req = CreateAclsRequest::default().with_creations(
                chunk
                    .iter()
                    .map(|a| {
                        AclCreation::default()
                            .with_resource_type(a.resource as i8)
                            .with_resource_name(StrBytes::from_string(a.name.clone()))
                            .with_resource_pattern_type(a.pattern as i8)
                            .with_principal(StrBytes::from_string(a.principal.clone()))
                            .with_host(StrBytes::from_string(a.host.clone()))
                            .with_operation(a.operation as i8)
                            .with_permission_type(a.permission as i8)
                    })
                    .collect(),
            );
            let resp = conn.send(&req).await?;
            let answers = resp
                .results
                .iter()
                .map(|r| (r.error_code, &r.error_message));
            out.extend(acl_answers("CreateAcls", conn.broker(), chunk, answers)?);
        }
        Ok(out)
    }

    /// Deletes the ACLs matching any of `filters`, in one DeleteAcls request per
    /// [`ACL_FILTERS_PER_REQUEST`] filters (a request per ACL made lifting a fence of 1,000
    /// topics take a round trip per topic and principal, inside the cutover's write pause);
    /// returns how many were deleted. Stops at the first filter the broker refuses.
    pub async fn delete_acls(&self, filters: &[Acl]) -> Result<usize> {
        let mut n = 0;
        for chunk in filters.chunks(ACL_FILTERS_PER_REQUEST) {
            let conn = self.any_connection().await?;
            let req = DeleteAclsRequest::default().with_filters(
                chunk
                    .iter()
                    .map(|filter| {
                        DeleteAclsFilter::default()
                            .with_resource_type_filter(filter.resource as i8)
                            .with_resource_name_filter(opt_str(&filter.name))
                            .with_pattern_type_filter(filter.pattern as i8)
                            .with_principal_filter(opt_str(&filter.principal))
                            .with_host_filter(opt_str(&filter.host))
                            .with_operation(filter.operation as i8)
                            .with_permission_type(filter.permission as i8)
                    })
                    .collect(),
            );
            let resp = conn.send(&req).await?;
            let answers = resp
                .filter_results
                .iter()
                .map(|r| (r.error_code, &r.error_message));
            acl_answers("DeleteAcls", conn.broker(), chunk, answers)?
                .into_iter()
                .collect::<Result<()>>()?;
            n += resp
                .filter_results
                .iter()
                .map(|r| r.matching_acls.len())
                .sum::<usize>();
        }
        Ok(n)
    }

    /// Lists the ACLs matching `filter` as raw (resource type, name, pattern, principal, host,
    /// operation, permission) codes.
    pub async fn describe_acls(
        &self,
        filter: &Acl,
    ) -> Result<Vec<(i8, String, i8, String, String, i8, i8)>> {
        let conn = self.any_connection().await?;
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource as i8)
            .with_resource_name_filter(opt_str(&filter.name))
            .with_pattern_type_filter(filter.pattern as i8)
            .with_principal_filter(opt_str(&filter.principal))
            .with_host_filter(opt_str(&filter.host))
            .with_operation(filter.operation as i8)
            .with_permission_type(filter.permission as i8);
        let resp = conn.send(&req).await?;
        if resp.error_code != 0 {
            return Err(Error::broker(
                "DescribeAcls",
                resp.error_code,
                Context::default(),
                resp.error_message.map(|m| m.to_string()),
            ));
        }
        let mut out = Vec::new();
        for r in resp.resources {
            for a in r.acls {
                out.push((
                    r.resource_type,
                    r.resource_name.to_string(),
                    r.pattern_type,
                    a.principal.to_string(),
                    a.host.to_string(),
                    a.operation,
                    a.permission_type,
                ));
            }
        }
        Ok(out)
    }

    /// Active producers per partition (DescribeProducers, KIP-664). Brokers without the API
    /// yield [`Error::UnsupportedApi`] for every partition.
    pub async fn describe_producers(
        &self,
        partitions: &[(String, i32)],
    ) -> PartitionResults<Vec<ActiveProducer>> {
        let (by_leader, failed) = self.group_by_leader(partitions, |(t, p)| (t, *p)).await;
        let mut out: PartitionResults<Vec<ActiveProducer>> = failed
            .into_iter()
            .map(|f| {
                (
                    (f.topic, f.partition),
                    Err(f.error.expect("grouping failure has an error")),
                )
            })
            .collect();
        for (leader, ps) in by_leader {
            match self.describe_producers_on(leader, &ps).await {
                Ok(r) => out.extend(r),
                Err(e) => out.extend(ps.into_iter().map(|k| (k, Err(e.clone())))),
            }
        }
        out
    }

    async fn describe_producers_on(
        &self,
        node: i32,
        partitions: &[(String, i32)],
    ) -> Result<PartitionResults<Vec<ActiveProducer>>> {
        let conn = self.broker_connection(node).await?;
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            topics.entry(t).or_default().push(*p);
        }
        let req = DescribeProducersRequest::default().with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    TopicRequest::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(ps)
                })
                .collect(),
        );
        let resp = conn.send(&req).await?;
        let mut out = BTreeMap::new();
        for t in resp.topics {
            let topic = t.name.0.to_string();
            for p in t.partitions {
                let r = if p.error_code == 0 {
                    Ok(p.active_producers
                        .iter()
                        .map(|s| ActiveProducer {
                            producer_id: s.producer_id.0,
                            producer_epoch: s.producer_epoch,
                            last_sequence: s.last_sequence,
                            last_timestamp: s.last_timestamp,
                            current_txn_start_offset: s.current_txn_start_offset,
                        })
                        .collect())
                } else {
                    Err(Error::broker(
                        "DescribeProducers",
                        p.error_code,
                        Context::partition(&topic, p.partition_index),
                        p.error_message.map(|m| m.to_string()),
                    ))
                };
                out.insert((topic.clone(), p.partition_index), r);
            }
        }
        Ok(out)
    }

    /// Deletes topics by name. Returns per topic `Ok(())` or its error
    /// (UNKNOWN_TOPIC_OR_PARTITION included).
    pub async fn delete_topics(
        &self,
        topics: &[String],
        timeout: Duration,
    ) -> Result<BTreeMap<String, Result<()>>> {
        let conn = self.any_connection().await?;
        let version = conn.version_for::<DeleteTopicsRequest>()?;
        // v6 names topics in `topics` (name or id); older versions in `topic_names`.
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(timeout.as_millis().try_into().unwrap_or(i32::MAX));
        let req = if version >= 6 {
            req.with_topics(
                topics
                    .iter()
                    .map(|t| {
                        kafka_protocol::messages::delete_topics_request::DeleteTopicState::default()
                            .with_name(Some(topic_name(t)))
                    })
                    .collect(),
            )
        } else {
            req.with_topic_names(topics.iter().map(|t| topic_name(t)).collect())
        };
        let resp = conn
            .send_version(&req, version, self.config().request_timeout + timeout)
            .await?;
        let mut out = BTreeMap::new();
        for r in resp.responses {
            let Some(name) = r.name.map(|n| n.0.to_string()) else {
                continue;
            };
            let v = if r.error_code == 0 {
                Ok(())
            } else {
                Err(Error::broker(
                    "DeleteTopics",
                    r.error_code,
                    Context::topic(&name),
                    r.error_message.map(|m| m.to_string()),
                ))
            };
            out.insert(name, v);
        }
        for t in topics {
            self.invalidate_topic(t);
        }
        Ok(out)
    }

    /// Describes one broker's configs (all keys the broker lists, defaults included).
    pub async fn describe_broker_configs(&self, node: i32) -> Result<Vec<ConfigEntry>> {
        let conn = self.broker_connection(node).await?;
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_BROKER)
                .with_resource_name(StrBytes::from_string(node.to_string()))
                .with_configuration_keys(None),
        ]);
        let resp = conn.send(&req).await?;
        let mut out = Vec::new();
        for r in resp.results {
            if r.error_code != 0 {
                return Err(Error::broker(
                    "DescribeConfigs",
                    r.error_code,
                    Context::default(),
                    r.error_message.map(|m| m.to_string()),
                ));
            }
            out.extend(r.configs.into_iter().map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: c.config_source,
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            }));
        }
        Ok(out)
    }

    /// On-disk size in bytes of each of `partitions` that broker `node` hosts
    /// (DescribeLogDirs). Replicas being moved between log dirs (future replicas) are left
    /// out. Brokers without the API yield [`Error::UnsupportedApi`].
    pub async fn describe_log_dirs(
        &self,
        node: i32,
        partitions: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), u64>> {
        let conn = self.broker_connection(node).await?;
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            topics.entry(t).or_default().push(*p);
        }
        let req = DescribeLogDirsRequest::default().with_topics(Some(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    DescribableLogDirTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        ));
        let resp = conn.send(&req).await?;
        if resp.error_code != 0 {
            return Err(Error::broker(
                "DescribeLogDirs",
                resp.error_code,
                Context::default(),
                None::<String>,
            ));
        }
        let mut out = BTreeMap::new();
        for dir in resp.results {
            if dir.error_code != 0 {
                continue; // an offline log dir: its replicas are reported by no one
            }
            for t in dir.topics {
                let topic = t.name.0.to_string();
                for p in t.partitions.into_iter().filter(|p| !p.is_future_key) {
                    let size = u64::try_from(p.partition_size).unwrap_or(0);
                    *out.entry((topic.clone(), p.partition_index)).or_insert(0) += size;
                }
            }
        }
        Ok(out)
    }
}
