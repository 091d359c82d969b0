# The UCX layer's tests (included by src/tests.cmake). They build in every
# configuration and skip, saying why, where the build has no UCX.
te_add_test(ucx_test ${CMAKE_CURRENT_LIST_DIR}/ucx_test.cc)

# The peer process of ucx_test's cross-process cases.
add_executable(te_ucx_test_peer ${CMAKE_CURRENT_LIST_DIR}/ucx_test_peer.cc)
target_include_directories(te_ucx_test_peer PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
target_link_libraries(te_ucx_test_peer PRIVATE transfer_engine_static)
target_link_libraries(ucx_test PRIVATE te_test_process)
target_compile_definitions(ucx_test PRIVATE TE_UCX_TEST_PEER_PATH="$<TARGET_FILE:te_ucx_test_peer>")
add_dependencies(ucx_test te_ucx_test_peer)
