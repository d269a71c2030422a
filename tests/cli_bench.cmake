# `parallax bench` (included by tests/CMakeLists.txt).
#   model : cli_bench - bench against `parallax serve` on aidreams-260k for a few
#           seconds; the report is checked (all completed, tokens = requests x
#           max_tokens) and compared with the server's /metrics; error exits.
# The full comparison with llama-server is scripts/bench_serving.sh (not a test).
if(TARGET parallax AND TARGET px_server)
  add_test(NAME cli_bench COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_bench.sh $<TARGET_FILE:parallax> ${PX_AIDREAMS})
  set_tests_properties(cli_bench PROPERTIES LABELS model SKIP_RETURN_CODE 77 TIMEOUT 120 RUN_SERIAL TRUE)
endif()
