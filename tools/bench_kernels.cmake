# tools/bench_kernels.cmake - px_matmul speed alone (kernel tuning). Not shipped.
add_executable(bench_kernels ${CMAKE_CURRENT_LIST_DIR}/bench_kernels.c)
target_link_libraries(bench_kernels PRIVATE px_tensor px_base)
