# tools/link_delay.cmake - a layer-2 wire with a delay (WAN emulation for
# tests/cluster_netns.mjs where the kernel has no tc netem). Not shipped.
add_executable(link_delay ${CMAKE_CURRENT_LIST_DIR}/link_delay.c)
