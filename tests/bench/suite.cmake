# Benchmark tools built with the tests (nothing here is a test): the C overload client soak.py uses.
find_package(Threads REQUIRED)
add_executable(overload_client ${CMAKE_CURRENT_LIST_DIR}/overload_client.c)
target_link_libraries(overload_client PRIVATE Threads::Threads)
