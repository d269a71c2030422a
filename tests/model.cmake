# model module: forward pass against llama.cpp references, loading errors.
add_executable(test_model_aidreams test_model_aidreams.c)
target_include_directories(test_model_aidreams PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_model_aidreams PRIVATE px_model)
add_test(NAME model_aidreams_reference COMMAND test_model_aidreams ${PX_AIDREAMS})
set_tests_properties(model_aidreams_reference PROPERTIES LABELS "model")

add_executable(test_model_errors test_model_errors.c)
target_include_directories(test_model_errors PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_model_errors PRIVATE px_model)
add_test(NAME model_load_errors COMMAND test_model_errors)
set_tests_properties(model_load_errors PROPERTIES LABELS "unit")

add_test(NAME cli_generate COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_generate.sh $<TARGET_FILE:parallax> ${PX_AIDREAMS})
set_tests_properties(cli_generate PROPERTIES LABELS "model")

# Quantized weights against f32 on the random-weight Qwen3-0.6B shape (written
# once into the build folder by tools/make_random_model; ~1.2 GB). Release
# build only: the full-size shape under the sanitizers would take many minutes.
add_executable(test_quant_model test_quant_model.c)
target_include_directories(test_quant_model PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_quant_model PRIVATE px_model m)
if(NOT PX_SANITIZE)
  add_test(NAME model_quant_qwen3
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/quant_model.sh $<TARGET_FILE:make_random_model>
                   $<TARGET_FILE:test_quant_model> ${CMAKE_BINARY_DIR}/quant-models)
  set_tests_properties(model_quant_qwen3 PROPERTIES LABELS "model;slow" TIMEOUT 900 RUN_SERIAL TRUE)
endif()
