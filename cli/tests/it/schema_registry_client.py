"""Confluent's own Python client (confluent-kafka's SchemaRegistryClient, AvroSerializer and
ProtobufDeserializer) against a real `weir serve`: register, fetch, check compatibility, get
latest, serialize and deserialize (Protobuf registered as `.proto` text with a reference, read
back as serialized descriptors); tenant B and a viewer are refused. Run by cli/tests/it/schema_registry_client.rs:

    python schema_registry_client.py BASE_URL KEY_A KEY_B VIEWER_KEY_A
"""
import base64
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

base, key_a, key_b, viewer_a = sys.argv[1:5]
url = base + "/schema-registry"


def client(user, key):
    # As Kafka clients are configured: basic.auth.user.info = <user>:<Weir API key>.
    return SchemaRegistryClient({"url": url, "basic.auth.user.info": f"{user}:{key}"})


def refused(call, status, code):
    try:
        call()
    except SchemaRegistryError as e:
        assert (e.http_status_code, e.error_code) == (status, code), (e.http_status_code, e.error_code, e.error_message)
        return e.error_message
    raise AssertionError(f"expected HTTP {status} / {code}, the call succeeded")


V1 = '{"type":"record","name":"Order","namespace":"acme","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"}]}'
V2 = '{"type":"record","name":"Order","namespace":"acme","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"currency","type":"string","default":"EUR"}]}'
BAD = '{"type":"record","name":"Order","namespace":"acme","fields":[{"name":"id","type":"long"}]}'
subject = "orders-value"

a = client("tenant-a", key_a)
id1 = a.register_schema(subject, Schema(V1, "AVRO"))
assert a.get_schema(id1).schema_str == V1
latest = a.get_latest_version(subject)
assert (latest.version, latest.schema_id) == (1, id1), latest
assert a.test_compatibility(subject, Schema(V2, "AVRO")) is True
assert a.test_compatibility(subject, Schema(BAD, "AVRO")) is False
message = refused(lambda: a.register_schema(subject, Schema(BAD, "AVRO")), 409, 409)
assert "id" in message, message
id2 = a.register_schema(subject, Schema(V2, "AVRO"))
assert id2 != id1
latest = client("tenant-a", key_a).get_latest_version(subject)  # a fresh client: no cache
assert (latest.version, latest.schema_id) == (2, id2), latest
assert a.lookup_schema(subject, Schema(V1, "AVRO")).version == 1
assert a.get_versions(subject) == [1, 2]
assert a.get_subjects() == [subject]
assert a.set_compatibility(subject, "FULL") == {"compatibility": "FULL"}
assert a.get_compatibility(subject) == "FULL"

json_id = a.register_schema("orders-json", Schema('{"type":"object","properties":{"id":{"type":"string"}}}', "JSON"))
assert a.get_schema(json_id).schema_type == "JSON"
proto = 'syntax = "proto3"; package acme; message Order { string id = 1; double amount = 2; }'
proto_id = a.register_schema("orders-proto", Schema(proto, "PROTOBUF"))
assert a.get_schema(proto_id).schema_type == "PROTOBUF"

# The Avro serializer finds the registered schema (auto-registration off) and writes
# Confluent's wire format: magic byte 0, the schema id, the Avro body.
fresh = client("tenant-a", key_a)  # the first client caches `latest` as version 1
ser = AvroSerializer(fresh, V2, conf={"auto.register.schemas": False, "use.latest.version": True})
ctx = SerializationContext("orders", MessageField.VALUE)
order = {"id": "o-1", "amount": 12.5, "currency": "USD"}
payload = ser(order, ctx)
assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == id2, payload[:5]
assert AvroDeserializer(client("tenant-a", key_a))(payload, ctx) == order

# Protobuf registered as `.proto` text, one file importing another: Confluent's
# ProtobufDeserializer asks for both as serialized descriptors (`format=serialized`) and reads a
# message written with them.
a = client("tenant-a", key_a)
customer_id = a.register_schema("acme-customer", Schema(
    'syntax = "proto3"; package acme; message Customer { string id = 1; }', "PROTOBUF"))
order_id = a.register_schema("orders-with-customer", Schema(
    'syntax = "proto3"; package acme; import "acme/customer.proto";\n'
    'message Order { string id = 1; acme.Customer customer = 2; }',
    "PROTOBUF", [SchemaReference("acme/customer.proto", "acme-customer", 1)]))
files = descriptor_pool.DescriptorPool()
for name, text in [("acme/customer.proto", a.get_version("acme-customer", 1, fmt="serialized").schema.schema_str),
                   ("acme/order.proto", a.get_schema(order_id, fmt="serialized").schema_str)]:
    proto = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(text))
    proto.name = name
    files.Add(proto)
Order = message_factory.GetMessageClass(files.FindMessageTypeByName("acme.Order"))
sent = Order(id="o-1")
sent.customer.id = "c-1"
payload = b"\x00" + order_id.to_bytes(4, "big") + b"\x00" + sent.SerializeToString()
got = ProtobufDeserializer(Order, {"use.deprecated.format": False}, a)(payload, SerializationContext("orders-proto-topic", MessageField.VALUE))
assert (got.id, got.customer.id) == ("o-1", "c-1"), got

# Tenant B sees nothing of A's, and its ids are its own.
b = client("tenant-b", key_b)
assert b.get_subjects() == []
refused(lambda: b.get_schema(id2), 404, 40403)
refused(lambda: b.get_latest_version(subject), 404, 40401)
b_id = b.register_schema(subject, Schema(V1, "AVRO"))
assert b_id not in (id1, id2)
assert b.get_latest_version(subject).version == 1
try:
    AvroDeserializer(b)(payload, ctx)
    raise AssertionError("tenant B decoded tenant A's payload")
except Exception as e:  # the deserializer may wrap the registry's 404
    assert "40403" in str(e) or "not found" in str(e).lower(), repr(e)

# A viewer of tenant A reads but cannot register.
v = client("viewer", viewer_a)
assert v.get_latest_version(subject).schema_id == id2
refused(lambda: v.register_schema(subject, Schema(V1.replace("amount", "total"), "AVRO")), 403, 40301)

# A wrong key is refused.
refused(lambda: client("x", "weir_wrong").get_subjects(), 401, 40101)
print("schema registry client: ok")
