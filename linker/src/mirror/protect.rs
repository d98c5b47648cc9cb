//! Write protection of mirror topics on the target (`[mirror] protect_principals`).
//!
//! While strait mirrors a topic, nobody else should write to its target copy: such a write
//! would be detected (a foreign write stops the partition), but on a target that enforces
//! ACLs it can also be *prevented*. strait adds `DENY WRITE` ACLs on each mirror topic for the
//! configured principals (typically `User:*`); strait's own target principal must be a super
//! user, which Kafka exempts from ACLs.
//!
//! ```text
//!  discovery: topic mirrored, not held ──▶ CreateAcls DENY WRITE (once; again every
//!                                          config-sync interval, to heal removals)
//!  cutover promotion (topics held)     ──▶ DeleteAcls: the target becomes the primary
//!  failback releases the topics        ──▶ discovery protects them again
//! ```

use crate::client::admin::{Acl, AclOperation, AclPattern, AclPermission, AclResource};
use crate::client::{KafkaClient, Result};

/// The DENY WRITE ACLs protecting `topic` from `principals`.
pub fn protection_acls(topic: &str, principals: &[String]) -> Vec<Acl> {
    principals
        .iter()
        .map(|p| Acl {
            resource: AclResource::Topic,
            name: topic.to_owned(),
            pattern: AclPattern::Literal,
            principal: p.clone(),
            host: "*".into(),
            operation: AclOperation::Write,
            permission: AclPermission::Deny,
        })
        .collect()
}

/// Adds the protection of `topic` (creating an ACL that exists is a no-op in Kafka).
pub async fn protect(target: &KafkaClient, topic: &str, principals: &[String]) -> Result<()> {
    target
        .create_acls(&protection_acls(topic, principals))
        .await
}

/// Removes the protection of `topics` (what a promotion does); returns how many ACLs were
/// removed. Only the ACLs strait adds are removed.
pub async fn unprotect(
    target: &KafkaClient,
    topics: &[String],
    principals: &[String],
) -> Result<usize> {
    let mut removed = 0;
    for t in topics {
        for acl in protection_acls(t, principals) {
            removed += target.delete_acls(&acl).await?;
        }
    }
    Ok(removed)
}
