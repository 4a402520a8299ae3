//! NATS decentralised auth (operator mode), the boundary between tenants: the nkeys and JWTs
//! of an operator, its system account, Weir's internal account and one account per tenant;
//! user credentials (`.creds` text) for each; the server configuration that trusts the
//! operator; and pushing / deleting account claims at run time through the system account.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use rand::RngCore;
use serde_json::{Value, json};

use crate::ConnectorError;

/// Subject the server's resolver takes new or updated account JWTs on (system account only).
pub const CLAIMS_UPDATE: &str = "$SYS.REQ.CLAIMS.UPDATE";
/// Subject the server's resolver takes account deletions on (operator-signed, system account).
pub const CLAIMS_DELETE: &str = "$SYS.REQ.CLAIMS.DELETE";
/// Name of Weir's internal account (fleet buckets: deployments, heartbeats, accounts).
pub const INTERNAL_ACCOUNT: &str = "WEIR";
/// Name of the system account.
pub const SYSTEM_ACCOUNT: &str = "SYS";

/// Why keys or claims could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A key file is missing or malformed.
    #[error("NATS operator key `{path}`: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The server refused or did not answer a claims request.
    #[error("NATS account claims ({what}): {reason}")]
    Claims {
        /// What was being done.
        what: String,
        /// The server's answer.
        reason: String,
    },
}

impl From<AccountError> for ConnectorError {
    fn from(err: AccountError) -> Self {
        ConnectorError::Connect {
            url: "nats".into(),
            reason: err.to_string(),
        }
    }
}

/// JetStream and connection limits of a tenant's account, enforced by nats-server
/// (`-1` is unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountLimits {
    /// Streams the account may hold.
    pub streams: i64,
    /// File storage bytes.
    pub disk_storage: i64,
    /// Memory storage bytes.
    pub mem_storage: i64,
    /// Consumers.
    pub consumers: i64,
    /// Client connections.
    pub connections: i64,
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits {
            streams: -1,
            disk_storage: -1,
            mem_storage: -1,
            consumers: -1,
            connections: -1,
        }
    }
}

/// The operator and the two accounts Weir itself needs: the system account (pushes account
/// claims) and Weir's internal account (fleet buckets tenants cannot reach).
pub struct OperatorKeys {
    operator: KeyPair,
    system: KeyPair,
    internal: KeyPair,
}

const OPERATOR_FILE: &str = "operator.nk";
const SYSTEM_FILE: &str = "system.nk";
const INTERNAL_FILE: &str = "weir.nk";

impl OperatorKeys {
    /// Fresh keys.
    pub fn generate() -> Self {
        OperatorKeys {
            operator: KeyPair::new_operator(),
            system: KeyPair::new_account(),
            internal: KeyPair::new_account(),
        }
    }

    /// Keys from seeds: the operator (`SO…`), the system account and the internal account
    /// (`SA…`).
    pub fn from_seeds(operator: &str, system: &str, internal: &str) -> Result<Self, AccountError> {
        let parse = |what: &str, seed: &str| {
            KeyPair::from_seed(seed.trim()).map_err(|e| AccountError::Key {
                path: what.to_string(),
                reason: e.to_string(),
            })
        };
        Ok(OperatorKeys {
            operator: parse("operator seed", operator)?,
            system: parse("system account seed", system)?,
            internal: parse("internal account seed", internal)?,
        })
    }

    /// Reads `operator.nk`, `system.nk` and `weir.nk` (one seed each) from `dir`.
    pub fn load(dir: &Path) -> Result<Self, AccountError> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).map_err(|e| AccountError::Key {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        };
        Self::from_seeds(
            &read(OPERATOR_FILE)?,
            &read(SYSTEM_FILE)?,
            &read(INTERNAL_FILE)?,
        )
    }

    /// [`load`](Self::load) when `dir` holds the keys, else generates and saves them (files
    /// readable by the owner only).
    pub fn load_or_generate(dir: &Path) -> Result<Self, AccountError> {
        if dir.join(OPERATOR_FILE).is_file() {
            return Self::load(dir);
        }
        let keys = Self::generate();
        keys.save(dir)?;
        Ok(keys)
    }

    /// Writes the three seeds under `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), AccountError> {
        let io = |path: &Path, e: std::io::Error| AccountError::Key {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        for (file, key) in [
            (OPERATOR_FILE, &self.operator),
            (SYSTEM_FILE, &self.system),
            (INTERNAL_FILE, &self.internal),
        ] {
            let path = dir.join(file);
            std::fs::write(&path, seed(key)).map_err(|e| io(&path, e))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            }
        }
        Ok(())
    }

    /// The operator's public key (`O…`).
    pub fn operator_public_key(&self) -> String {
        self.operator.public_key()
    }

    /// The system account's public key.
    pub fn system_public_key(&self) -> String {
        self.system.public_key()
    }

    /// The internal account's public key.
    pub fn internal_public_key(&self) -> String {
        self.internal.public_key()
    }

    /// The self-signed operator JWT naming the system account.
    pub fn operator_jwt(&self) -> String {
        let op = self.operator.public_key();
        encode(
            &self.operator,
            &op,
            "weir",
            json!({ "system_account": self.system.public_key(), "type": "operator", "version": 2 }),
        )
    }

    /// The system account's JWT (no JetStream: the server refuses it there).
    pub fn system_account_jwt(&self) -> String {
        account_claims(
            &self.operator,
            &self.system,
            SYSTEM_ACCOUNT,
            None,
            &BTreeMap::new(),
        )
    }

    /// The internal account's JWT (JetStream without limits).
    pub fn internal_account_jwt(&self) -> String {
        account_claims(
            &self.operator,
            &self.internal,
            INTERNAL_ACCOUNT,
            Some(AccountLimits::default()),
            &BTreeMap::new(),
        )
    }

    /// The JWT of a tenant account `account` named `name`, with JetStream `limits`.
    pub fn account_jwt(&self, account: &KeyPair, name: &str, limits: AccountLimits) -> String {
        self.account_jwt_revoking(account, name, limits, &BTreeMap::new())
    }

    /// [`account_jwt`](Self::account_jwt) that also revokes users: `revoked` maps a user's
    /// public key to a unix time; the server refuses (and disconnects) that user's credentials
    /// issued at or before it.
    pub fn account_jwt_revoking(
        &self,
        account: &KeyPair,
        name: &str,
        limits: AccountLimits,
        revoked: &BTreeMap<String, u64>,
    ) -> String {
        account_claims(&self.operator, account, name, Some(limits), revoked)
    }

    /// Credentials of a fresh user of the system account.
    pub fn system_creds(&self) -> String {
        user_creds(&self.system, "weir-system")
    }

    /// Credentials of a fresh user of the internal account.
    pub fn internal_creds(&self) -> String {
        user_creds(&self.internal, "weir-internal")
    }

    /// An operator-signed request that the resolver delete `accounts` (public keys).
    pub fn delete_claims(&self, accounts: &[String]) -> String {
        let op = self.operator.public_key();
        encode(&self.operator, &op, "", json!({ "accounts": accounts }))
    }

    /// The lines of a nats-server configuration that trust this operator, with a full
    /// (NATS-based) account resolver under `resolver_dir` that accepts pushes and deletions,
    /// and the system and internal accounts preloaded. `operator_jwt_file` is where the
    /// operator JWT is written; `resolver_dir` is created.
    pub fn server_config(
        &self,
        operator_jwt_file: &Path,
        resolver_dir: &Path,
    ) -> std::io::Result<String> {
        std::fs::write(operator_jwt_file, self.operator_jwt())?;
        std::fs::create_dir_all(resolver_dir)?;
        Ok(self.server_config_lines(operator_jwt_file, resolver_dir))
    }

    /// The configuration lines of [`server_config`](Self::server_config) for a server where
    /// the operator JWT lies at `operator_jwt_file` and the resolver keeps `resolver_dir`
    /// (nothing is written).
    pub fn server_config_lines(&self, operator_jwt_file: &Path, resolver_dir: &Path) -> String {
        format!(
            "operator: \"{op}\"\nsystem_account: {sys}\n\
             resolver: {{\n  type: full\n  dir: \"{dir}\"\n  allow_delete: true\n  interval: \"2m\"\n}}\n\
             resolver_preload: {{\n  {sys}: \"{sys_jwt}\"\n  {weir}: \"{weir_jwt}\"\n}}\n",
            op = operator_jwt_file.display(),
            sys = self.system.public_key(),
            dir = resolver_dir.display(),
            sys_jwt = self.system_account_jwt(),
            weir = self.internal.public_key(),
            weir_jwt = self.internal_account_jwt(),
        )
    }
}

/// A key's seed (keys made here always have one).
fn seed(key: &KeyPair) -> String {
    key.seed().unwrap_or_default()
}

/// A fresh account key.
pub fn new_account_key() -> KeyPair {
    KeyPair::new_account()
}

/// An account key from its seed.
pub fn account_key(seed: &str) -> Result<KeyPair, AccountError> {
    KeyPair::from_seed(seed).map_err(|e| AccountError::Key {
        path: "account seed".into(),
        reason: e.to_string(),
    })
}

/// The seed of an account key.
pub fn account_seed(key: &KeyPair) -> String {
    seed(key)
}

fn account_claims(
    operator: &KeyPair,
    account: &KeyPair,
    name: &str,
    jetstream: Option<AccountLimits>,
    revoked: &BTreeMap<String, u64>,
) -> String {
    let mut limits = json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
    });
    if let Some(js) = jetstream {
        limits["conn"] = json!(js.connections);
        limits["mem_storage"] = json!(js.mem_storage);
        limits["disk_storage"] = json!(js.disk_storage);
        limits["streams"] = json!(js.streams);
        limits["consumer"] = json!(js.consumers);
    }
    let mut nats = json!({
        "limits": limits,
        "default_permissions": { "pub": {}, "sub": {} },
        "type": "account",
        "version": 2,
    });
    if !revoked.is_empty() {
        nats["revocations"] = json!(revoked);
    }
    encode(operator, &account.public_key(), name, nats)
}

/// The public key (`U…`) of the user whose `.creds` text this is, when readable.
pub fn creds_user(creds: &str) -> Option<String> {
    let jwt = creds
        .split("-----BEGIN NATS USER JWT-----")
        .nth(1)?
        .split("------END NATS USER JWT------")
        .next()?
        .trim();
    let body = URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1)?).ok()?;
    let claims: Value = serde_json::from_slice(&body).ok()?;
    claims.get("sub")?.as_str().map(str::to_string)
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Credentials (`.creds` text: user JWT and seed) of a fresh user of `account`, allowed
/// everything inside that account and nothing outside it (accounts share nothing).
pub fn user_creds(account: &KeyPair, name: &str) -> String {
    let user = KeyPair::new_user();
    let jwt = encode(
        account,
        &user.public_key(),
        name,
        json!({
            "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
            "type": "user", "version": 2,
        }),
    );
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n",
        seed(&user)
    )
}

/// A NATS v2 JWT: `{"typ":"JWT","alg":"ed25519-nkey"}`, claims with `jti`, `iat`, `iss`,
/// `sub`, `name` and the `nats` section, signed by `issuer`.
fn encode(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let mut jti = [0u8; 16];
    rand::rng().fill_bytes(&mut jti);
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut claims = json!({
        "jti": jti.iter().map(|b| format!("{b:02X}")).collect::<String>(),
        "iat": iat,
        "iss": issuer.public_key(),
        "sub": subject,
        "nats": nats,
    });
    if !name.is_empty() {
        claims["name"] = json!(name);
    }
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{body}");
    // Signing with a key made from a seed cannot fail.
    let signature = issuer.sign(signing_input.as_bytes()).unwrap_or_default();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Pushes an account JWT to the servers' resolver over a system-account connection.
pub async fn push_account(system: &async_nats::Client, jwt: &str) -> Result<(), AccountError> {
    claims_request(system, CLAIMS_UPDATE, jwt, "push account").await
}

/// Deletes accounts (an operator-signed [`OperatorKeys::delete_claims`]) from the resolver.
pub async fn delete_accounts(system: &async_nats::Client, jwt: &str) -> Result<(), AccountError> {
    claims_request(system, CLAIMS_DELETE, jwt, "delete account").await
}

async fn claims_request(
    system: &async_nats::Client,
    subject: &'static str,
    jwt: &str,
    what: &str,
) -> Result<(), AccountError> {
    let fail = |reason: String| AccountError::Claims {
        what: what.to_string(),
        reason,
    };
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        system.request(subject, jwt.to_string().into()),
    )
    .await
    .map_err(|_| {
        fail("no answer within 10 s (is the server in operator mode with a full resolver?)".into())
    })?
    .map_err(|e| fail(e.to_string()))?;
    let answer: Value = serde_json::from_slice(&reply.payload)
        .map_err(|e| fail(format!("unreadable answer: {e}")))?;
    match answer.get("error") {
        Some(error) => Err(fail(
            error
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("refused")
                .to_string(),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_are_signed_by_their_issuer() {
        let keys = OperatorKeys::generate();
        let account = new_account_key();
        let jwt = keys.account_jwt(&account, "acme", AccountLimits::default());
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], keys.operator_public_key());
        assert_eq!(claims["sub"], account.public_key());
        assert_eq!(claims["nats"]["type"], "account");
        assert_eq!(claims["nats"]["limits"]["disk_storage"], -1);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let op = KeyPair::from_public_key(&keys.operator_public_key()).unwrap();
        op.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("signed by the operator");
        let creds = user_creds(&account, "u");
        assert!(creds.contains("BEGIN NATS USER JWT") && creds.contains("SU"));
        let user = creds_user(&creds).expect("the user's public key");
        assert!(user.starts_with('U'), "{user}");
        let revoked = BTreeMap::from([(user.clone(), 42)]);
        let jwt = keys.account_jwt_revoking(&account, "acme", AccountLimits::default(), &revoked);
        let claims: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jwt.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["nats"]["revocations"][&user], 42);
    }
}
