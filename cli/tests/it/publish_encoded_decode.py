"""Decodes a pipeline's Avro outputs with Confluent's own AvroDeserializer (confluent-kafka):
the writer schema is fetched from `weir serve`'s registry by the id in each payload's Confluent
wire-format header. Reads a JSON list of hex payloads on stdin, prints the decoded records as a
JSON list. Run by cli/tests/it/publish_encoded.rs:

    python publish_encoded_decode.py BASE_URL API_KEY < payloads.json
"""
import json
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

base, key = sys.argv[1:3]
client = SchemaRegistryClient({"url": base + "/schema-registry", "basic.auth.user.info": f"weir:{key}"})
deserialize = AvroDeserializer(client)
ctx = SerializationContext("orders", MessageField.VALUE)
print(json.dumps([deserialize(bytes.fromhex(p), ctx) for p in json.load(sys.stdin)]))
