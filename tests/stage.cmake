# pipeline stages (src/engine/stage.h): in-process chains of 1-4 stages on the
# real tiny model compared with llama.cpp's references and the single-node
# engine, and the robustness tests (malformed items, out of blocks, release,
# failover re-prefill, reloading a slice, random garbage).
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_stage_chain.c)
  add_executable(test_stage_chain test_stage_chain.c)
  target_include_directories(test_stage_chain PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(test_stage_chain PRIVATE px_engine)
  add_test(NAME stage_chain COMMAND test_stage_chain ${PX_AIDREAMS})
  set_tests_properties(stage_chain PROPERTIES LABELS "model")
endif()
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_stage_errors.c)
  add_executable(test_stage_errors test_stage_errors.c)
  target_include_directories(test_stage_errors PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(test_stage_errors PRIVATE px_engine)
  add_test(NAME stage_errors COMMAND test_stage_errors ${PX_AIDREAMS})
  set_tests_properties(stage_errors PROPERTIES LABELS "model")
endif()
