//! Role-based access control: the permission vocabulary (`resource:action`), the built-in roles
//! of the product document's §5.2 mapped onto Weir's resources, and custom roles stored per
//! tenant as permission lists.

use std::fmt;

/// Resources a permission can name.
pub const RESOURCES: &[&str] = &[
    "pipelines",
    "deployments",
    "streams",
    "consumers",
    "messages",
    "dlq",
    "schemas",
    "tenants",
    "users",
    "roles",
    "keys",
    "audit",
    "quotas",
    "secrets",
    "kv",
    "modules",
];

/// Actions a permission can name.
pub const ACTIONS: &[&str] = &[
    "read", "create", "update", "delete", "publish", "purge", "pause", "redrive", "manage",
];

/// The built-in roles.
pub const BUILTIN_ROLES: &[&str] = &["admin", "editor", "operator", "viewer"];

/// One `resource:action` grant; either side may be `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    resource: String,
    action: String,
}

impl Permission {
    /// Parses `resource:action`, checking both words against the vocabulary.
    pub fn parse(text: &str) -> Result<Permission, String> {
        let (resource, action) = text
            .split_once(':')
            .ok_or_else(|| format!("permission `{text}` is not of the form resource:action"))?;
        if resource != "*" && !RESOURCES.contains(&resource) {
            return Err(format!(
                "permission `{text}`: unknown resource `{resource}` (known: {})",
                RESOURCES.join(", ")
            ));
        }
        if action != "*" && !ACTIONS.contains(&action) {
            return Err(format!(
                "permission `{text}`: unknown action `{action}` (known: {})",
                ACTIONS.join(", ")
            ));
        }
        Ok(Permission {
            resource: resource.into(),
            action: action.into(),
        })
    }

    fn grants(&self, resource: &str, action: &str) -> bool {
        (self.resource == "*" || self.resource == resource)
            && (self.action == "*" || self.action == action || self.action == "manage")
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource, self.action)
    }
}

/// The grants of a role.
#[derive(Clone, Debug, Default)]
pub struct PermissionSet(Vec<Permission>);

impl PermissionSet {
    /// Builds a set from `resource:action` strings.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<PermissionSet, String> {
        items
            .iter()
            .map(|s| Permission::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(PermissionSet)
    }

    /// Whether the set grants `action` on `resource`.
    pub fn allows(&self, resource: &str, action: &str) -> bool {
        self.0.iter().any(|p| p.grants(resource, action))
    }

    /// Whether the set grants everything `other` grants: every `resource:action` of the
    /// vocabulary that `other` allows, this set allows too. A caller may only hand out roles
    /// and permissions its own set covers.
    pub fn covers(&self, other: &PermissionSet) -> bool {
        RESOURCES.iter().all(|r| {
            ACTIONS
                .iter()
                .all(|a| !other.allows(r, a) || self.allows(r, a))
        })
    }

    /// Whether the set grants every permission there is (the `admin` role or its equal).
    pub fn is_everything(&self) -> bool {
        RESOURCES
            .iter()
            .all(|r| ACTIONS.iter().all(|a| self.allows(r, a)))
    }

    /// The first `resource:action` that `other` grants and this set does not.
    pub fn first_missing(&self, other: &PermissionSet) -> Option<String> {
        RESOURCES.iter().find_map(|r| {
            ACTIONS
                .iter()
                .find(|a| other.allows(r, a) && !self.allows(r, a))
                .map(|a| format!("{r}:{a}"))
        })
    }

    /// The grants as strings.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

/// The permission list of a built-in role, or `None` for another name.
pub fn builtin(role: &str) -> Option<Vec<&'static str>> {
    let list: &[&str] = match role {
        "admin" => &["*:*"],
        "editor" => &[
            "pipelines:read",
            "pipelines:create",
            "pipelines:update",
            "pipelines:delete",
            "deployments:read",
            "deployments:create",
            "deployments:update",
            "deployments:delete",
            "streams:read",
            "streams:create",
            "streams:update",
            "consumers:read",
            "consumers:create",
            "consumers:update",
            "consumers:delete",
            "messages:read",
            "messages:publish",
            "dlq:read",
            "dlq:redrive",
            "schemas:read",
            "schemas:create",
            "schemas:update",
            "secrets:read",
            "secrets:create",
            "secrets:update",
            "modules:read",
            "modules:create",
            "modules:delete",
            "quotas:read",
            "kv:read",
            "kv:create",
            "kv:update",
        ],
        "operator" => &[
            "pipelines:read",
            "deployments:read",
            "deployments:update",
            "streams:read",
            "consumers:read",
            "consumers:pause",
            "messages:read",
            "messages:publish",
            "dlq:read",
            "dlq:redrive",
            "dlq:purge",
            "schemas:read",
            "secrets:read",
            "modules:read",
            "quotas:read",
            "kv:read",
            "kv:update",
        ],
        "viewer" => &[
            "pipelines:read",
            "deployments:read",
            "streams:read",
            "consumers:read",
            "messages:read",
            "dlq:read",
            "schemas:read",
            "quotas:read",
            "kv:read",
            "modules:read",
        ],
        _ => return None,
    };
    Some(list.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_roles_follow_the_matrix() {
        let set = |r| PermissionSet::parse(&builtin(r).unwrap()).unwrap();
        assert!(set("admin").allows("tenants", "delete"));
        assert!(set("editor").allows("pipelines", "update"));
        assert!(!set("editor").allows("streams", "delete"));
        assert!(!set("editor").allows("users", "read"));
        assert!(set("operator").allows("consumers", "pause"));
        assert!(!set("operator").allows("pipelines", "update"));
        assert!(set("viewer").allows("pipelines", "read"));
        assert!(!set("viewer").allows("pipelines", "create"));
        assert!(!set("viewer").allows("secrets", "read"));
        assert!(set("viewer").allows("kv", "read"));
        assert!(!set("viewer").allows("kv", "update"));
        assert!(set("operator").allows("kv", "update"));
        assert!(!set("operator").allows("kv", "create"));
        assert!(set("editor").allows("kv", "create"));
        assert!(!set("editor").allows("kv", "delete"));
    }

    #[test]
    fn custom_permissions_are_checked() {
        assert!(Permission::parse("pipelines:read").is_ok());
        assert!(Permission::parse("pipelines:*").is_ok());
        assert!(Permission::parse("pipeline:read").is_err());
        assert!(Permission::parse("pipelines").is_err());
        let set = PermissionSet::parse(&["streams:manage"]).unwrap();
        assert!(set.allows("streams", "delete"));
        assert!(!set.allows("pipelines", "read"));
    }

    #[test]
    fn coverage_compares_what_sets_grant() {
        let set = |r| PermissionSet::parse(&builtin(r).unwrap()).unwrap();
        let custom = |l: &[&str]| PermissionSet::parse(l).unwrap();
        assert!(set("admin").covers(&set("editor")));
        assert!(set("editor").covers(&set("viewer")));
        assert!(!set("viewer").covers(&set("editor")));
        assert!(!set("operator").covers(&set("editor")));
        assert!(!set("editor").covers(&set("operator")));
        assert!(custom(&["users:manage"]).covers(&custom(&["users:update"])));
        assert!(!custom(&["users:update"]).covers(&custom(&["users:*"])));
        assert!(!custom(&["users:update"]).covers(&set("admin")));
        assert_eq!(
            custom(&["users:update"]).first_missing(&custom(&["users:read"])),
            Some("users:read".into())
        );
        assert!(set("admin").is_everything());
        assert!(custom(&["*:manage"]).is_everything());
        assert!(!set("editor").is_everything());
    }
}
