# bench_scheduler: timing of phase 1 / phase 2 over generated clusters, and a
# cluster simulator (hardware mix, regions, arrivals, churn). Not a test.
if(TARGET px_cluster)
  add_executable(bench_scheduler ${CMAKE_CURRENT_SOURCE_DIR}/bench_scheduler.c)
  target_link_libraries(bench_scheduler PRIVATE px_cluster px_base m)
endif()
