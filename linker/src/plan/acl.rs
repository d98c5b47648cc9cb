//! The probe's ACL check: a CreateAcls / DescribeAcls / DeleteAcls round trip with a DENY
//! binding for a principal that does not exist, on the scratch topic.

use std::time::{Duration, Instant};

use super::probe::{Guarantee, Outcome, Probe, STEP, guarantee, missing};
use crate::client::Error;
use crate::client::admin::{Acl, AclOperation, AclPattern, AclPermission, AclResource};

impl Probe<'_> {
    /// CreateAcls / DescribeAcls / DeleteAcls round trip; returns the binding if it may
    /// still exist.
    pub(super) async fn acls(&self) -> (Guarantee, Option<Acl>) {
        let id = "acl_enforcement";
        let apis = [(30, "CreateAcls"), (29, "DescribeAcls"), (31, "DeleteAcls")];
        if let Some(gone) = missing(&self.versions, &apis) {
            let g = guarantee(
                id,
                Outcome::NotHeld,
                format!(
                    "the target does not offer {gone}: strait cannot create and remove ACLs there"
                ),
            );
            return (g, None);
        }
        let binding = Acl {
            resource: AclResource::Topic,
            name: self.topic.clone(),
            pattern: AclPattern::Literal,
            principal: format!("User:strait-probe-{}", self.id),
            host: "*".to_owned(),
            operation: AclOperation::Write,
            permission: AclPermission::Deny,
        };
        let filter = Acl {
            host: String::new(),
            operation: AclOperation::Any,
            permission: AclPermission::Any,
            ..binding.clone()
        };
        if let Err(e) = self
            .client
            .create_acls(std::slice::from_ref(&binding))
            .await
        {
            let (outcome, detail) = match (&e, e.code()) {
                (_, Some(54)) => (
                    Outcome::NotHeld,
                    "CreateAcls answered SECURITY_DISABLED (54): no authorizer is configured, \
                     so no ACL is enforced"
                        .to_owned(),
                ),
                (_, Some(31)) => (
                    Outcome::Untested,
                    format!("strait's principal may not manage ACLs: {e}"),
                ),
                (Error::Protocol { .. }, _) => (
                    Outcome::NotHeld,
                    format!("CreateAcls got a malformed answer, so the broker stores no ACLs: {e}"),
                ),
                _ => (Outcome::NotHeld, format!("CreateAcls failed: {e}")),
            };
            return (guarantee(id, outcome, detail), None);
        }
        let listed = self.wait_acls(&filter, true).await;
        let deleted = self
            .client
            .delete_acls(std::slice::from_ref(&binding))
            .await;
        let gone = deleted.is_ok() && self.wait_acls(&filter, false).await.is_ok();
        let left = (!gone).then(|| binding.clone());
        let g = match (listed, deleted) {
            (Ok(()), Ok(n)) if n >= 1 && gone => guarantee(
                id,
                Outcome::Held,
                format!(
                    "a DENY WRITE binding for {} on the scratch topic was created, listed by \
                     DescribeAcls and deleted: an authorizer is active",
                    binding.principal
                ),
            ),
            (Err(e), _) => guarantee(
                id,
                Outcome::NotHeld,
                format!("CreateAcls succeeded but {e}"),
            ),
            (_, Err(e)) => guarantee(id, Outcome::NotHeld, format!("DeleteAcls failed: {e}")),
            (_, Ok(n)) => guarantee(
                id,
                Outcome::NotHeld,
                format!(
                    "DeleteAcls reported {n} deleted binding(s), but DescribeAcls still lists it"
                ),
            ),
        };
        (g, left)
    }

    /// Waits until DescribeAcls lists (`present`) or no longer lists the probe binding.
    async fn wait_acls(&self, filter: &Acl, present: bool) -> Result<(), String> {
        let deadline = Instant::now() + STEP;
        loop {
            match self.client.describe_acls(filter).await {
                Ok(found) if found.is_empty() != present => return Ok(()),
                Ok(_) if Instant::now() > deadline => {
                    return Err(format!(
                        "DescribeAcls {} the binding after {} s",
                        if present {
                            "does not list"
                        } else {
                            "still lists"
                        },
                        STEP.as_secs()
                    ));
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => return Err(format!("DescribeAcls failed: {e}")),
            }
        }
    }
}
