# engine module: sampler and KV pool unit tests, the engine on the real tiny
# model (reference outputs, batching invariance, prefix cache, preemption,
# abort), and a multi-threaded submit/abort stress test.
add_executable(test_engine_sampler test_engine_sampler.c)
target_include_directories(test_engine_sampler PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_engine_sampler PRIVATE px_engine)
add_test(NAME engine_sampler COMMAND test_engine_sampler)
set_tests_properties(engine_sampler PROPERTIES LABELS "unit")

add_executable(test_engine_kvpool test_engine_kvpool.c)
target_include_directories(test_engine_kvpool PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_engine_kvpool PRIVATE px_engine)
add_test(NAME engine_kvpool COMMAND test_engine_kvpool)
set_tests_properties(engine_kvpool PROPERTIES LABELS "unit")

add_executable(test_engine_aidreams test_engine_aidreams.c)
target_include_directories(test_engine_aidreams PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_engine_aidreams PRIVATE px_engine)
add_test(NAME engine_aidreams COMMAND test_engine_aidreams ${PX_AIDREAMS})
set_tests_properties(engine_aidreams PROPERTIES LABELS "model")

add_executable(test_engine_stress test_engine_stress.c)
target_include_directories(test_engine_stress PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_engine_stress PRIVATE px_engine)
add_test(NAME engine_stress COMMAND test_engine_stress ${PX_AIDREAMS})
set_tests_properties(engine_stress PROPERTIES LABELS "model")
