# Unit tests, each beside the source it covers. te_add_test (top-level CMakeLists)
# links transfer_engine_static and gtest_main and puts src/ on the include path.

te_add_test(status_test src/common/status_test.cc)
te_add_test(strings_test src/common/strings_test.cc)
te_add_test(config_test src/common/config_test.cc)
te_add_test(wire_test src/rpc/wire_test.cc)
te_add_test(handshake_test src/rpc/handshake_test.cc)
te_add_test(segment_descriptor_test src/metadata/segment_descriptor_test.cc)
te_add_test(buffer_registry_test src/memory/buffer_registry_test.cc)
te_add_test(memory_test src/memory/memory_test.cc)
te_add_test(pin_table_test src/memory/pin_table_test.cc)
te_add_test(batch_test src/engine/batch_test.cc)
te_add_test(engine_test src/engine/engine_test.cc tests/tsan_network_order.cc)
