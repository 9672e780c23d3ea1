# llhttp from Debian's node-llhttp: C sources under /usr/share/llhttp and the
# header under /usr/share/include/llhttp, no pkg-config file. Built as a static
# library with -w (third-party code) and strict mode, which rejects "Host : x".
find_path(LLHTTP_INCLUDE_DIR llhttp.h
    PATHS /usr/share/include/llhttp /usr/include/llhttp
    REQUIRED NO_DEFAULT_PATH)
find_file(LLHTTP_SRC_API api.c PATHS /usr/share/llhttp REQUIRED NO_DEFAULT_PATH)
find_file(LLHTTP_SRC_HTTP http.c PATHS /usr/share/llhttp REQUIRED NO_DEFAULT_PATH)
find_file(LLHTTP_SRC_LLHTTP llhttp.c PATHS /usr/share/llhttp REQUIRED NO_DEFAULT_PATH)

add_library(llhttp STATIC ${LLHTTP_SRC_API} ${LLHTTP_SRC_HTTP} ${LLHTTP_SRC_LLHTTP})
target_include_directories(llhttp SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
target_compile_definitions(llhttp PUBLIC LLHTTP_STRICT_MODE=1)
target_compile_options(llhttp PRIVATE -w)
set_target_properties(llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON)
