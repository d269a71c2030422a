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
