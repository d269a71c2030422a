# engine module: sampler and KV pool unit tests, the engine on the real tiny
# model (reference outputs, batching invariance, prefix cache, preemption,
# abort), and a multi-threaded submit/abort stress test.
add_executable(test_engine_aidreams test_engine_aidreams.c)
target_include_directories(test_engine_aidreams PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_engine_aidreams PRIVATE px_engine)
add_test(NAME engine_aidreams COMMAND test_engine_aidreams ${PX_AIDREAMS})
set_tests_properties(engine_aidreams PROPERTIES LABELS "model")
