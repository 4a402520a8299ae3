//! The encoding of operator state in checkpoints: CBOR (self-describing, so group key values
//! keep their JSON types; byte fields as byte strings) after a 4-byte tag naming the format.
//! Snapshots written before the tag (JSON) are still read, so a checkpoint taken by an older
//! worker restores after an upgrade.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The tag of the current format.
const TAG: &[u8; 4] = b"WCB1";

/// `value` as snapshot bytes.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(TAG);
    ciborium::into_writer(value, &mut out).map_err(|e| format!("encoding the state: {e}"))?;
    Ok(out)
}

/// Reads [`encode`]'s bytes, or the JSON of snapshots before it.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.strip_prefix(TAG) {
        Some(cbor) => ciborium::from_reader(cbor).map_err(|e| format!("reading the state: {e}")),
        None if bytes.first() == Some(&b'{') => {
            serde_json::from_slice(bytes).map_err(|e| format!("reading the state (JSON): {e}"))
        }
        None => Err(format!(
            "the state is in a format this version of Weir does not know (it starts with {:?})",
            String::from_utf8_lossy(&bytes[..bytes.len().min(4)])
        )),
    }
}

/// A pipeline's snapshot as node id → that node's snapshot, from [`encode`]'s bytes of such
/// a map, or from the JSON of older snapshots (node id → base64).
pub(crate) fn decode_nodes(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    use base64::Engine as _;
    if bytes.first() == Some(&b'{') {
        let old: BTreeMap<String, String> =
            serde_json::from_slice(bytes).map_err(|e| format!("not a snapshot: {e}"))?;
        return old
            .into_iter()
            .map(|(id, text)| {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map(|b| (id.clone(), b))
                    .map_err(|e| format!("node `{id}`: {e}"))
            })
            .collect();
    }
    let nodes: BTreeMap<String, serde_bytes::ByteBuf> = decode(bytes)?;
    Ok(nodes
        .into_iter()
        .map(|(id, b)| (id, b.into_vec()))
        .collect())
}

/// A list of byte strings (serde `with`): CBOR byte strings rather than arrays of numbers.
pub(crate) mod byte_strings {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| serde_bytes::Bytes::new(b)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let v: Vec<serde_bytes::ByteBuf> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(serde_bytes::ByteBuf::into_vec).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct State {
        keys: Vec<(String, Vec<serde_json::Value>)>,
        #[serde(with = "byte_strings")]
        states: Vec<Vec<u8>>,
    }

    #[test]
    fn a_state_reads_back_from_cbor_and_from_older_json() {
        let state = State {
            keys: vec![(
                "eu".into(),
                vec![serde_json::json!("eu"), serde_json::json!(3.5)],
            )],
            states: vec![vec![0, 1, 255], Vec::new()],
        };
        let bytes = encode(&state).expect("encodes");
        assert!(bytes.starts_with(b"WCB1"));
        assert_eq!(decode::<State>(&bytes), Ok(state));
        let json = br#"{"keys":[["us",[null]]],"states":[[7,8]]}"#;
        let old: State = decode(json).expect("reads JSON");
        assert_eq!(old.states, vec![vec![7, 8]]);
        let err = decode::<BTreeMap<String, u8>>(b"XYZ!...").expect_err("unknown");
        assert!(err.contains("does not know"), "{err}");
    }
}
