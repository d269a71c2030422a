# net module tests (label "unit"): keys and tokens, message validation, two
# processes over CURVE on loopback, malformed messages, version mismatch,
# nodes without the join secret, a byte capture without plaintext, the beacon.
if(TARGET px_net)
  add_executable(test_net test_net.c)
  target_include_directories(test_net PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(test_net PRIVATE px_net px_base Threads::Threads)
  add_test(NAME net COMMAND test_net)
  set_tests_properties(net PROPERTIES LABELS unit TIMEOUT 120)
endif()
