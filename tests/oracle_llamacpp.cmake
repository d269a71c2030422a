# tests/oracle_llamacpp.cmake - our forward pass against llama.cpp on random-weight
# models (tools/make_random_model + tools/llama_oracle, driven by
# tests/oracle_llamacpp.mjs). Only in the normal build: the sanitizer build does
# not build tools/llama_oracle, and full-size shapes under ASan would take ages.
#   oracle_llamacpp_tiny  four tiny shapes (every architecture feature), seconds
#   oracle_llamacpp_full  Qwen3-0.6B and Llama-3.2-1B shapes (writes ~11 GB of
#                         models into the build folder once, then a few minutes)
if(NOT PX_SANITIZE)
  find_program(PX_NODE node)
  if(NOT PX_NODE)
    set(PX_NODE node) # the test then fails and says why
  endif()
  add_test(NAME oracle_llamacpp_tiny
           COMMAND ${PX_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/oracle_llamacpp.mjs --build-dir ${CMAKE_BINARY_DIR}
                   --shapes tiny-qwen3,tiny-llama,tiny-qwen2,tiny-mistral --keep-going)
  set_tests_properties(oracle_llamacpp_tiny PROPERTIES LABELS "oracle" TIMEOUT 300)
  add_test(NAME oracle_llamacpp_full
           COMMAND ${PX_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/oracle_llamacpp.mjs --build-dir ${CMAKE_BINARY_DIR}
                   --shapes qwen3-0.6b,llama-3.2-1b --keep-going)
  # RUN_SERIAL: it wants both cores and ~8 GB of memory to itself
  set_tests_properties(oracle_llamacpp_full PROPERTIES LABELS "oracle;slow" TIMEOUT 1200 RUN_SERIAL TRUE)
endif()
