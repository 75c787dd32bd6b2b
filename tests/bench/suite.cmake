# Benchmark tools built with the tests (nothing here is a test): the C overload client soak.py uses.
# camd_core is linked only for the allocation wrappers of a fault-injection build (the link
# options wrap malloc & co. in every executable); the client uses nothing else from camd.
find_package(Threads REQUIRED)
add_executable(overload_client ${CMAKE_CURRENT_LIST_DIR}/overload_client.c)
target_link_libraries(overload_client PRIVATE camd_core Threads::Threads)
