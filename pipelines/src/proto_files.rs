//! Protobuf schema files as the registry stores them: `.proto` source, or a base64-encoded
//! `FileDescriptorProto` (what Confluent's `ProtobufSerializer` registers), compiled with
//! `protox` together with the files they import (other registered schemas, by import path, and
//! Google's well-known types). The registry and the engine compile a schema the same way here.

use std::collections::HashMap;

use base64::Engine as _;
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use protox::prost::Message as _;
use protox::prost_reflect::prost_types::FileDescriptorProto;
use protox::prost_reflect::{DynamicMessage, ReflectMessage as _};

pub use protox::prost_reflect::DescriptorPool;

/// Compiles the schema `main` under the file name `main_name`; its imports are looked up among
/// `imports` (import path → schema text), then among Google's well-known types.
pub fn compile<'a>(
    main_name: &str,
    main: &str,
    imports: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<DescriptorPool, protox::Error> {
    let mut files: HashMap<String, String> = imports
        .into_iter()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect();
    files.insert(main_name.to_string(), main.to_string());
    let mut resolver = ChainFileResolver::new();
    resolver.add(Files(files));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.open_file(main_name)?;
    Ok(compiler.descriptor_pool())
}

/// Serves the schema texts to the compiler by import path.
struct Files(HashMap<String, String>);

impl FileResolver for Files {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        let Some(text) = self.0.get(name) else {
            return Err(protox::Error::file_not_found(name));
        };
        match descriptor(text) {
            Some(mut file) => {
                // The file is known by the name it is imported under, whatever it was called
                // where it was serialized.
                file.name = Some(name.to_string());
                Ok(File::from_file_descriptor_proto(file))
            }
            None => File::from_source(name, text),
        }
    }
}

/// The `FileDescriptorProto` that `text` encodes in base64, if it is one. `.proto` source is
/// never mistaken for one: it has spaces, braces or semicolons, which base64 has not.
fn descriptor(text: &str) -> Option<FileDescriptorProto> {
    FileDescriptorProto::decode(base64_bytes(text)?.as_slice()).ok()
}

/// Like [`descriptor`], but only when `prost` dropped nothing it does not know (custom
/// options, newer fields) decoding it: the descriptor encodes back to the same bytes, or to
/// bytes that say the same, field by field (other encoders may order or pack fields otherwise).
pub(crate) fn lossless_descriptor(text: &str) -> Option<FileDescriptorProto> {
    let bytes = base64_bytes(text)?;
    let file = FileDescriptorProto::decode(bytes.as_slice()).ok()?;
    let again = file.encode_to_vec();
    if again != bytes {
        let read = |b: &[u8]| DynamicMessage::decode(file.descriptor(), b).ok();
        if read(&bytes)? != read(&again)? {
            return None;
        }
    }
    Some(file)
}

/// The bytes that `text` encodes in base64, when it is nothing but base64.
fn base64_bytes(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let base64_only = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if text.is_empty() || !base64_only {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUSTOMER: &str = "syntax = \"proto3\"; package acme; message Customer { string id = 1; }";
    const ORDER: &str = "syntax = \"proto3\"; package acme; import \"acme/customer.proto\";\n\
                         message Order { string id = 1; acme.Customer customer = 2; }";

    fn encoded(pool: &DescriptorPool, name: &str) -> String {
        let file = pool.get_file_by_name(name).unwrap();
        base64::engine::general_purpose::STANDARD
            .encode(file.file_descriptor_proto().encode_to_vec())
    }

    #[test]
    fn source_and_serialized_descriptors_compile_alike() {
        let from_source =
            compile("main.proto", ORDER, [("acme/customer.proto", CUSTOMER)]).unwrap();
        let order = from_source.get_message_by_name("acme.Order").unwrap();
        assert_eq!(order.fields().count(), 2);

        // Both files as base64 descriptors, as Confluent's Python serializer registers them
        // (the main one serialized under another name).
        let main = encoded(&from_source, "main.proto");
        let customer = encoded(&from_source, "acme/customer.proto");
        let pool = compile(
            "other.proto",
            &main,
            [("acme/customer.proto", customer.as_str())],
        )
        .unwrap();
        let order = pool.get_message_by_name("acme.Order").unwrap();
        assert_eq!(order.parent_file().name(), "other.proto");
        let customer = order.get_field_by_name("customer").unwrap();
        assert_eq!(
            customer.kind().as_message().unwrap().full_name(),
            "acme.Customer"
        );

        // A well-known type import resolves without a reference.
        let wkt = "syntax = \"proto3\"; import \"google/protobuf/timestamp.proto\";\n\
                   message At { google.protobuf.Timestamp at = 1; }";
        assert!(compile("t.proto", wkt, []).is_ok());
    }

    #[test]
    fn garbage_is_refused_either_way() {
        assert!(compile("m.proto", "message { strin id = 1; }", []).is_err());
        // Base64 that is not a descriptor is read as source, and fails as source.
        assert!(compile("m.proto", "AAAA////", []).is_err());
        let err = compile("m.proto", ORDER, []).unwrap_err().to_string();
        assert!(err.contains("acme/customer.proto"), "{err}");
    }
}
