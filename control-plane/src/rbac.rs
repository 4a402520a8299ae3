//! Role-based access control: the permission vocabulary (`resource:action`), the built-in roles
//! of the product document's §5.2 mapped onto Weir's resources, and custom roles stored per
//! tenant as permission lists.

use std::fmt;

/// A closed vocabulary as an enum: its words as written in permissions, every value in order,
/// and parsing. Handlers name permissions with these types, so a mistyped one does not compile.
macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $(#[doc = $text] $variant),*
        }

        impl $name {
            /// Every value, in the vocabulary's order.
            pub const ALL: &[$name] = &[$($name::$variant),*];

            /// The word as written in permissions.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }

            /// The value a word names.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// The words, comma-separated (for error messages).
            pub fn words() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// What a permission is about (a kind of API resource).
    ApiResource {
        Pipelines = "pipelines",
        Deployments = "deployments",
        Streams = "streams",
        Consumers = "consumers",
        Messages = "messages",
        Dlq = "dlq",
        Schemas = "schemas",
        Tenants = "tenants",
        Users = "users",
        Roles = "roles",
        Keys = "keys",
        Audit = "audit",
        Quotas = "quotas",
        Secrets = "secrets",
        Kv = "kv",
        Modules = "modules",
    }
}

vocabulary! {
    /// What a permission allows on its resource (`manage` = every action).
    Action {
        Read = "read",
        Create = "create",
        Update = "update",
        Delete = "delete",
        Publish = "publish",
        Purge = "purge",
        Pause = "pause",
        Redrive = "redrive",
        Manage = "manage",
    }
}

/// The built-in roles.
pub const BUILTIN_ROLES: &[&str] = &["admin", "editor", "operator", "viewer"];

/// One `resource:action` grant; either side may be `*` (`None` here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    resource: Option<ApiResource>,
    action: Option<Action>,
}

impl Permission {
    /// Parses `resource:action`, checking both words against the vocabulary.
    pub fn parse(text: &str) -> Result<Permission, String> {
        let (resource, action) = text
            .split_once(':')
            .ok_or_else(|| format!("permission `{text}` is not of the form resource:action"))?;
        let resource = match resource {
            "*" => None,
            r => Some(ApiResource::parse(r).ok_or_else(|| {
                format!(
                    "permission `{text}`: unknown resource `{r}` (known: {})",
                    ApiResource::words()
                )
            })?),
        };
        let action = match action {
            "*" => None,
            a => Some(Action::parse(a).ok_or_else(|| {
                format!(
                    "permission `{text}`: unknown action `{a}` (known: {})",
                    Action::words()
                )
            })?),
        };
        Ok(Permission { resource, action })
    }

    fn grants(&self, resource: ApiResource, action: Action) -> bool {
        self.resource.is_none_or(|r| r == resource)
            && self
                .action
                .is_none_or(|a| a == action || a == Action::Manage)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.resource.map_or("*", ApiResource::as_str);
        let a = self.action.map_or("*", Action::as_str);
        write!(f, "{r}:{a}")
    }
}

/// Every `resource:action` pair of the vocabulary.
fn every_pair() -> impl Iterator<Item = (ApiResource, Action)> {
    ApiResource::ALL
        .iter()
        .flat_map(|&r| Action::ALL.iter().map(move |&a| (r, a)))
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
    pub fn allows(&self, resource: ApiResource, action: Action) -> bool {
        self.0.iter().any(|p| p.grants(resource, action))
    }

    /// Whether the set grants everything `other` grants: every `resource:action` of the
    /// vocabulary that `other` allows, this set allows too. A caller may only hand out roles
    /// and permissions its own set covers.
    pub fn covers(&self, other: &PermissionSet) -> bool {
        every_pair().all(|(r, a)| !other.allows(r, a) || self.allows(r, a))
    }

    /// Whether the set grants every permission there is (the `admin` role or its equal).
    pub fn is_everything(&self) -> bool {
        every_pair().all(|(r, a)| self.allows(r, a))
    }

    /// The first `resource:action` that `other` grants and this set does not.
    pub fn first_missing(&self, other: &PermissionSet) -> Option<String> {
        every_pair()
            .find(|&(r, a)| other.allows(r, a) && !self.allows(r, a))
            .map(|(r, a)| format!("{r}:{a}"))
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
        assert!(set("admin").allows(ApiResource::Tenants, Action::Delete));
        assert!(set("editor").allows(ApiResource::Pipelines, Action::Update));
        assert!(!set("editor").allows(ApiResource::Streams, Action::Delete));
        assert!(!set("editor").allows(ApiResource::Users, Action::Read));
        assert!(set("operator").allows(ApiResource::Consumers, Action::Pause));
        assert!(!set("operator").allows(ApiResource::Pipelines, Action::Update));
        assert!(set("viewer").allows(ApiResource::Pipelines, Action::Read));
        assert!(!set("viewer").allows(ApiResource::Pipelines, Action::Create));
        assert!(!set("viewer").allows(ApiResource::Secrets, Action::Read));
        assert!(set("viewer").allows(ApiResource::Kv, Action::Read));
        assert!(!set("viewer").allows(ApiResource::Kv, Action::Update));
        assert!(set("operator").allows(ApiResource::Kv, Action::Update));
        assert!(!set("operator").allows(ApiResource::Kv, Action::Create));
        assert!(set("editor").allows(ApiResource::Kv, Action::Create));
        assert!(!set("editor").allows(ApiResource::Kv, Action::Delete));
        assert!(set("viewer").allows(ApiResource::Modules, Action::Read));
        assert!(!set("viewer").allows(ApiResource::Modules, Action::Create));
        assert!(!set("operator").allows(ApiResource::Modules, Action::Delete));
        assert!(set("editor").allows(ApiResource::Modules, Action::Create));
        assert!(set("editor").allows(ApiResource::Modules, Action::Delete));
    }

    #[test]
    fn custom_permissions_are_checked() {
        assert!(Permission::parse("pipelines:read").is_ok());
        assert!(Permission::parse("pipelines:*").is_ok());
        assert!(Permission::parse("pipeline:read").is_err());
        assert!(Permission::parse("pipelines").is_err());
        let set = PermissionSet::parse(&["streams:manage"]).unwrap();
        assert!(set.allows(ApiResource::Streams, Action::Delete));
        assert!(!set.allows(ApiResource::Pipelines, Action::Read));
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
