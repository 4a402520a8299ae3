//! The schema registry: tenant-scoped subjects with immutable versions and global ids, in Avro,
//! JSON Schema and Protobuf, with Confluent's compatibility levels checked on register. Served
//! as Confluent's REST API under [`confluent::BASE_PATH`].

pub mod api;
pub mod compat;
pub mod confluent;
pub mod error;
pub mod formats;
pub mod infer;
pub mod pipeline_refs;
pub mod store;

pub use compat::Level;
pub use error::RegistryError;
pub use formats::SchemaType;
pub use store::{Registry, SchemaInput, SchemaReference, SchemaVersion, VersionRef};
