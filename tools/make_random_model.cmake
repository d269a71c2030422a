# tools/make_random_model.cmake - builds the random-weight model writer used by
# the llama.cpp oracle tests (tests/oracle_llamacpp.cmake). Not shipped.
add_executable(make_random_model ${CMAKE_CURRENT_LIST_DIR}/make_random_model.c)
target_link_libraries(make_random_model PRIVATE px_tensor px_base PkgConfig::CJSON m)
