"""Orders serialized by Confluent's own ProtobufSerializer (confluent-kafka) for a Protobuf
pipeline source. The message types are built from descriptors at run time (no protoc): Order
in `acme/order.proto`, which imports Customer from `acme/customer.proto`. The serializer
registers both against a real `weir serve` as Confluent's clients do (base64-encoded
descriptors; the import as its own subject, named by its path, and a reference to it), then
frames each order in the Confluent wire format. Prints the subject's schema id and the orders
with their JSON equivalents as one JSON document. Run by cli/tests/it/avro_source.rs:

    python protobuf_source_payloads.py BASE_URL API_KEY JSON_ORDERS
"""
import json
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

F = descriptor_pb2.FieldDescriptorProto
base, key, orders = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = SchemaRegistryClient({"url": base + "/schema-registry", "basic.auth.user.info": f"weir:{key}"})

customer_file = descriptor_pb2.FileDescriptorProto(name="acme/customer.proto", package="acme", syntax="proto3")
customer = customer_file.message_type.add(name="Customer")
tier = customer.enum_type.add(name="Tier")
tier.value.add(name="GOLD", number=0)
tier.value.add(name="SILVER", number=1)
customer.field.add(name="id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
customer.field.add(name="tier", number=2, type=F.TYPE_ENUM, type_name=".acme.Customer.Tier", label=F.LABEL_OPTIONAL)

order_file = descriptor_pb2.FileDescriptorProto(
    name="acme/order.proto", package="acme", syntax="proto3", dependency=["acme/customer.proto"]
)
order = order_file.message_type.add(name="Order")
order.field.add(name="id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
order.field.add(name="amount", number=2, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
order.field.add(name="quantity", number=3, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
order.field.add(name="customer", number=5, type=F.TYPE_MESSAGE, type_name=".acme.Customer", label=F.LABEL_OPTIONAL)
order.field.add(name="currency", number=6, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)

pool = descriptor_pool.DescriptorPool()
pool.Add(customer_file)
pool.Add(order_file)
Order = message_factory.GetMessageClass(pool.FindMessageTypeByName("acme.Order"))

serialize = ProtobufSerializer(Order, client, conf={"auto.register.schemas": True})
ctx = SerializationContext("orders-proto", MessageField.VALUE)
messages = []
for j in orders:
    o = Order(id=j["id"], amount=j["amount"], quantity=j["quantity"], currency=j["currency"])
    o.customer.id = j["customer"]["id"]
    o.customer.tier = 1 if j["customer"]["tier"] == "SILVER" else 0
    payload = serialize(o, ctx)
    assert payload[0] == 0 and payload[5] == 0, payload[:6]  # magic byte; indexes [0]: Order
    messages.append({"payload": payload.hex(), "json": j})

latest = client.get_latest_version("orders-proto-value")
refs = [(r.name, r.subject) for r in latest.schema.references]
assert refs == [("acme/customer.proto", "acme/customer.proto")], refs
print(json.dumps({"id": latest.schema_id, "messages": messages}))
