//! Write protection of mirror topics on the target (`[mirror] protect_principals`).
//!
//! While strait mirrors a topic, nobody else should write to its target copy: such a write
//! would be detected (a foreign write stops the partition), but on a target that enforces
//! ACLs it can also be *prevented*. strait adds `DENY WRITE` ACLs on each mirror topic for the
//! configured principals (typically `User:*`); strait's own target principal must be a super
//! user, which Kafka exempts from ACLs.
//!
//! ```text
//!  discovery: topics mirrored, not held ──▶ CreateAcls DENY WRITE, all in one request (once;
//!                                          again every config-sync interval, to heal removals)
//!  cutover promotion (topics held)     ──▶ DeleteAcls: the target becomes the primary
//!  failback releases the topics        ──▶ discovery protects them again
//! ```

use crate::client::admin::{
    ACL_FILTERS_PER_REQUEST, Acl, AclOperation, AclPattern, AclPermission, AclResource,
};
use crate::client::{KafkaClient, Result};

/// The DENY WRITE ACLs protecting `topics` from `principals` (also the cutover's source
/// fence: the same literal-topic DENY WRITE bindings).
pub fn protection_acls(topics: &[String], principals: &[String]) -> Vec<Acl> {
    topics
        .iter()
        .flat_map(|t| {
            principals.iter().map(move |p| Acl {
                resource: AclResource::Topic,
                name: t.clone(),
                pattern: AclPattern::Literal,
                principal: p.clone(),
                host: "*".into(),
                operation: AclOperation::Write,
                permission: AclPermission::Deny,
            })
        })
        .collect()
}

/// Adds the protection of `topics` (creating an ACL that exists is a no-op in Kafka), in one
/// CreateAcls request per thousand ACLs. Stops at the first ACL the broker refuses.
pub async fn protect(target: &KafkaClient, topics: &[String], principals: &[String]) -> Result<()> {
    let acls = protection_acls(topics, principals);
    for chunk in acls.chunks(ACL_FILTERS_PER_REQUEST) {
        target.create_acls(chunk).await?;
    }
    Ok(())
}

/// Removes the protection of `topics` (what a promotion does), in one request per thousand
/// ACLs; returns how many ACLs were removed. Only the ACLs strait adds are removed.
pub async fn unprotect(
    target: &KafkaClient,
    topics: &[String],
    principals: &[String],
) -> Result<usize> {
    let acls = protection_acls(topics, principals);
    target.delete_acls(&acls).await
}
