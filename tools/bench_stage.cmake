# tools/bench_stage.cmake - the pipeline-stage benchmark (bare forward loop vs
# a stepped 1-stage ring vs threaded chains of k stages). Not shipped, not a
# test; it reuses the in-process chain wiring of tests/stage_chain.h.
if(TARGET px_engine AND EXISTS ${CMAKE_CURRENT_LIST_DIR}/bench_stage.c)
  add_executable(bench_stage ${CMAKE_CURRENT_LIST_DIR}/bench_stage.c)
  target_include_directories(bench_stage PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(bench_stage PRIVATE px_engine)
endif()
