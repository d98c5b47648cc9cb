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

use crate::client::admin::{Acl, AclOperation, AclPattern, AclPermission, AclResource};
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
/// CreateAcls request per thousand ACLs, and returns each topic's outcome in order: the first
/// of its ACLs the broker refused, if any. `Err` when a request failed as a whole (then no
/// topic's outcome is known). A target without an authorizer refuses every ACL, and used to
/// be asked again topic by topic, a round trip each, at every renewal.
pub async fn protect(
    target: &KafkaClient,
    topics: &[String],
    principals: &[String],
) -> Result<Vec<Result<()>>> {
    let acls = protection_acls(topics, principals);
    let each = target.create_acls_each(&acls).await?;
    Ok(per_topic(each, topics.len(), principals.len()))
}

/// Folds the outcomes of [`protection_acls`]`(topics, principals)` (each topic's ACLs are
/// consecutive, one per principal) into one per topic: its first error, if any.
fn per_topic(each: Vec<Result<()>>, topics: usize, principals: usize) -> Vec<Result<()>> {
    let mut each = each.into_iter();
    (0..topics)
        .map(|_| {
            let mut outcome = Ok(());
            for r in each.by_ref().take(principals) {
                if outcome.is_ok() {
                    outcome = r;
                }
            }
            outcome
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Error;

    fn refused(topic: &str) -> Result<()> {
        Err(Error::broker(
            "CreateAcls",
            54,
            crate::client::Context::topic(topic),
            None::<String>,
        ))
    }

    #[test]
    fn each_topic_gets_the_first_refusal_of_its_own_acls() {
        let topics: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let principals: Vec<String> = ["User:x", "User:y"].map(String::from).to_vec();
        let acls = protection_acls(&topics, &principals);
        assert_eq!(acls.len(), 6);
        assert!(
            acls[..2].iter().all(|a| a.name == "a"),
            "a topic's ACLs are consecutive"
        );
        // a: both granted; b: its second refused; c: both refused (the first one counts).
        let each = vec![Ok(()), Ok(()), Ok(()), refused("b"), refused("c"), Ok(())];
        let out = per_topic(each, topics.len(), principals.len());
        assert_eq!(out.len(), 3);
        assert!(out[0].is_ok());
        assert!(out[1].as_ref().unwrap_err().to_string().contains("b"));
        assert!(out[2].as_ref().unwrap_err().to_string().contains("c"));
        let one = per_topic(vec![Ok(()), refused("c")], 2, 1);
        assert!(one[0].is_ok() && one[1].is_err());
    }
}
