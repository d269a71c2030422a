# Cluster module tests (label "unit"): every tests/test_cluster_*.c is one
# executable covering phase 1, phase 2, membership, the node model or the
# plan command, checked against brute force or stated scenarios.
if(TARGET px_cluster)
  file(GLOB PX_CLUSTER_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/test_cluster_*.c)
  foreach(src ${PX_CLUSTER_TESTS})
    get_filename_component(t ${src} NAME_WE)
    add_executable(${t} ${src})
    target_include_directories(${t} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
    target_link_libraries(${t} PRIVATE px_cluster px_base PkgConfig::CJSON m)
    add_test(NAME ${t} COMMAND ${t})
    target_compile_definitions(${t} PRIVATE PX_AIDREAMS_DIR="${PX_AIDREAMS}")
    set_tests_properties(${t} PROPERTIES LABELS unit)
  endforeach()
endif()
