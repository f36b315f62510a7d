"""grpc.health.v1 messages built at run time from a descriptor, so the tests
need no generated code and no grpcio-health-checking package."""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_file = descriptor_pb2.FileDescriptorProto(name="batchserver_test_health.proto", package="grpc.health.v1", syntax="proto3")
_request = _file.message_type.add(name="HealthCheckRequest")
_request.field.add(name="service", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                   label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
_response = _file.message_type.add(name="HealthCheckResponse")
_status = _response.enum_type.add(name="ServingStatus")
for _name, _number in (("UNKNOWN", 0), ("SERVING", 1), ("NOT_SERVING", 2), ("SERVICE_UNKNOWN", 3)):
    _status.value.add(name=_name, number=_number)
_response.field.add(name="status", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
                    type_name=".grpc.health.v1.HealthCheckResponse.ServingStatus",
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)

_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file)
HealthCheckRequest = message_factory.GetMessageClass(_pool.FindMessageTypeByName("grpc.health.v1.HealthCheckRequest"))
HealthCheckResponse = message_factory.GetMessageClass(_pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse"))
