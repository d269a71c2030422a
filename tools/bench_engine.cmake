# tools/bench_engine.cmake - the engine benchmark (direct forward loop vs the
# engine at several concurrencies). Not shipped, not a test.
if(TARGET px_engine)
  add_executable(bench_engine ${CMAKE_CURRENT_LIST_DIR}/bench_engine.c)
  target_link_libraries(bench_engine PRIVATE px_engine)
endif()
