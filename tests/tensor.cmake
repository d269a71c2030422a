# tensor module: every kernel against a scalar reference, on every
# instruction-set path of this CPU (portable C, AVX2, AVX-512).
add_executable(test_tensor_kernels test_tensor_kernels.c)
target_include_directories(test_tensor_kernels PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_tensor_kernels PRIVATE px_tensor px_base m)
add_test(NAME tensor_kernels COMMAND test_tensor_kernels)
set_tests_properties(tensor_kernels PROPERTIES LABELS "unit")
# the same with the CPU's AVX2 hidden, as on a machine without it
add_test(NAME tensor_kernels_no_avx2 COMMAND test_tensor_kernels)
set_tests_properties(tensor_kernels_no_avx2 PROPERTIES LABELS "unit" ENVIRONMENT "PX_NO_AVX2=1")
