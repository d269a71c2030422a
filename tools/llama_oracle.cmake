# tools/llama_oracle.cmake - builds tools/llama_oracle, our runner around the
# prebuilt libllama of npm @node-llama-cpp/linux-x64 (a numeric oracle for the
# tests, not shipped). The library comes without headers; llama.h and ggml*.h
# are taken from the llama.cpp source bundle inside npm node-llama-cpp of the
# same version (fetched by scripts/setup.sh into
# oracles/node_modules/.parallax-vendor/) and extracted into the build folder
# at configure time; no llama.cpp code enters the repository.
# Sets PX_LLAMA_ORACLE (ON when the runner is built) for tests/oracle_llamacpp.cmake.
set(PX_LLAMA_ORACLE OFF)
if(PX_SANITIZE)
  return() # a prebuilt C++ library under ASan only adds noise; the oracle runs in the normal build
endif()

set(_px_nlc_bins "${CMAKE_SOURCE_DIR}/oracles/node_modules/@node-llama-cpp/linux-x64")
file(GLOB _px_llama_lib "${_px_nlc_bins}/bins/linux-x64/libllama.v*.so")
file(GLOB _px_ggml_lib "${_px_nlc_bins}/bins/linux-x64/libggml.v*.so")
set(_px_ggml_base_lib "${_px_nlc_bins}/bins/linux-x64/libggml-base.so")
if(NOT _px_llama_lib OR NOT _px_ggml_lib OR NOT EXISTS "${_px_ggml_base_lib}")
  message(STATUS "llama_oracle: not built (no prebuilt libllama in ${_px_nlc_bins}; run scripts/setup.sh)")
  return()
endif()
file(READ "${_px_nlc_bins}/package.json" _px_json)
string(JSON _px_nlc_version GET "${_px_json}" version)
set(_px_nlc_tgz "${CMAKE_SOURCE_DIR}/oracles/node_modules/.parallax-vendor/node-llama-cpp-${_px_nlc_version}.tgz")
if(NOT EXISTS "${_px_nlc_tgz}")
  message(STATUS "llama_oracle: not built (no ${_px_nlc_tgz}; run scripts/setup.sh)")
  return()
endif()

# Extract include/ and ggml/include/ of the bundled llama.cpp commit (once per version).
set(_px_hdr_dir "${CMAKE_BINARY_DIR}/llama.cpp-${_px_nlc_version}")
if(NOT EXISTS "${_px_hdr_dir}/stamp")
  find_package(Git REQUIRED)
  file(REMOVE_RECURSE "${_px_hdr_dir}")
  file(MAKE_DIRECTORY "${_px_hdr_dir}")
  execute_process(COMMAND ${CMAKE_COMMAND} -E tar xzf "${_px_nlc_tgz}" package/llama/gitRelease.bundle package/llama/binariesGithubRelease.json
                  WORKING_DIRECTORY "${_px_hdr_dir}" RESULT_VARIABLE _rc)
  if(_rc EQUAL 0)
    execute_process(COMMAND "${GIT_EXECUTABLE}" clone --quiet --bare package/llama/gitRelease.bundle src.git
                    WORKING_DIRECTORY "${_px_hdr_dir}" RESULT_VARIABLE _rc)
  endif()
  if(_rc EQUAL 0)
    execute_process(COMMAND "${GIT_EXECUTABLE}" --git-dir=src.git archive --format=tar -o headers.tar HEAD include ggml/include
                    WORKING_DIRECTORY "${_px_hdr_dir}" RESULT_VARIABLE _rc)
  endif()
  if(_rc EQUAL 0)
    execute_process(COMMAND "${GIT_EXECUTABLE}" --git-dir=src.git rev-parse --short HEAD
                    WORKING_DIRECTORY "${_px_hdr_dir}" OUTPUT_VARIABLE _px_commit OUTPUT_STRIP_TRAILING_WHITESPACE)
    execute_process(COMMAND ${CMAKE_COMMAND} -E tar xf headers.tar WORKING_DIRECTORY "${_px_hdr_dir}" RESULT_VARIABLE _rc)
  endif()
  if(_rc EQUAL 0)
    file(READ "${_px_hdr_dir}/package/llama/binariesGithubRelease.json" _px_json)
    string(JSON _px_src_release GET "${_px_json}" release)
  endif()
  file(REMOVE_RECURSE "${_px_hdr_dir}/package" "${_px_hdr_dir}/src.git" "${_px_hdr_dir}/headers.tar")
  if(NOT _rc EQUAL 0 OR NOT EXISTS "${_px_hdr_dir}/include/llama.h")
    message(FATAL_ERROR "llama_oracle: could not extract llama.h from ${_px_nlc_tgz}")
  endif()
  file(WRITE "${_px_hdr_dir}/stamp" "${_px_commit};${_px_src_release}")
endif()
file(READ "${_px_hdr_dir}/stamp" _px_stamp)
list(GET _px_stamp 0 _px_commit)
list(GET _px_stamp 1 _px_src_release)
# The prebuilt binaries record the llama.cpp release they were built from; the
# headers must come from the same one (struct layouts of the C API change).
file(READ "${_px_nlc_bins}/bins/linux-x64/_nlcBuildMetadata.json" _px_json)
string(JSON _px_bin_release GET "${_px_json}" buildOptions llamaCpp release)
if(NOT _px_bin_release STREQUAL _px_src_release)
  message(FATAL_ERROR "llama_oracle: prebuilt libllama is llama.cpp release ${_px_bin_release}, "
                      "the headers in ${_px_nlc_tgz} are release ${_px_src_release}")
endif()
message(STATUS "llama_oracle: libllama of @node-llama-cpp/linux-x64 ${_px_nlc_version}, headers of llama.cpp ${_px_commit} (release ${_px_src_release} for both)")

add_executable(llama_oracle ${CMAKE_CURRENT_LIST_DIR}/llama_oracle.c)
target_include_directories(llama_oracle SYSTEM PRIVATE "${_px_hdr_dir}/include" "${_px_hdr_dir}/ggml/include")
get_filename_component(_px_llama_bin_dir "${_px_llama_lib}" DIRECTORY)
target_compile_definitions(llama_oracle PRIVATE PX_LLAMA_BIN_DIR="${_px_llama_bin_dir}")
target_link_libraries(llama_oracle PRIVATE "${_px_llama_lib}" "${_px_ggml_lib}" "${_px_ggml_base_lib}" m)
set_target_properties(llama_oracle PROPERTIES BUILD_RPATH "${_px_llama_bin_dir}")
set(PX_LLAMA_ORACLE ON)

# tools/llama_bench: llama.cpp's speed (llama-bench's method) and llama_model_quantize,
# for scripts/compare_llamacpp.mjs.
add_executable(llama_bench ${CMAKE_CURRENT_LIST_DIR}/llama_bench.c)
target_include_directories(llama_bench SYSTEM PRIVATE "${_px_hdr_dir}/include" "${_px_hdr_dir}/ggml/include")
target_compile_definitions(llama_bench PRIVATE PX_LLAMA_BIN_DIR="${_px_llama_bin_dir}")
target_link_libraries(llama_bench PRIVATE "${_px_llama_lib}" "${_px_ggml_lib}" "${_px_ggml_base_lib}" m)
set_target_properties(llama_bench PROPERTIES BUILD_RPATH "${_px_llama_bin_dir}")
