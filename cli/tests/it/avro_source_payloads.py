"""Orders serialized by Confluent's own AvroSerializer (confluent-kafka) for an Avro pipeline
source: registers two versions of `orders-value` against a real `weir serve`, serializes some
orders with each (the Confluent wire format: byte 0, the schema id, Avro binary), and prints
them with their JSON equivalents as one JSON document. Run by cli/tests/it/avro_source.rs:

    python avro_source_payloads.py BASE_URL API_KEY
"""
import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

base, key = sys.argv[1:3]
client = SchemaRegistryClient({"url": base + "/schema-registry", "basic.auth.user.info": f"weir:{key}"})

CUSTOMER = {"type": "record", "name": "Customer", "fields": [{"name": "id", "type": "string"}, {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["GOLD", "SILVER"]}}]}
V1 = {"type": "record", "name": "Order", "namespace": "acme", "fields": [
    {"name": "id", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "quantity", "type": "int"},
    {"name": "note", "type": ["null", "string"], "default": None},
    {"name": "customer", "type": CUSTOMER},
]}
V2 = dict(V1, fields=V1["fields"] + [{"name": "currency", "type": "string", "default": "EUR"}])
id1 = client.register_schema("orders-value", Schema(json.dumps(V1), "AVRO"))
id2 = client.register_schema("orders-value", Schema(json.dumps(V2), "AVRO"))

ctx = SerializationContext("orders", MessageField.VALUE)
conf = {"auto.register.schemas": False}
with_v1 = AvroSerializer(client, json.dumps(V1), conf=conf)
with_v2 = AvroSerializer(client, json.dumps(V2), conf=conf)

messages = []
for i in range(1, 21):
    order = {
        "id": f"o-{i}",
        "amount": i * 7.5,
        "quantity": i,
        "note": None if i % 3 else f"note {i}",
        "customer": {"id": f"c-{i % 4}", "tier": "GOLD" if i % 2 else "SILVER"},
    }
    if i % 2:
        payload = with_v1(order, ctx)
        equivalent = dict(order, currency="EUR")  # read as V2: the default
    else:
        order["currency"] = "USD"
        payload = with_v2(order, ctx)
        equivalent = order
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == (id1 if i % 2 else id2)
    messages.append({"payload": payload.hex(), "json": equivalent})

print(json.dumps({"ids": [id1, id2], "messages": messages}))
