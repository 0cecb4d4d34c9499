# Compiler flags shared by every tidal target, through the tidal_flags interface target.
if(TIDAL_SANITIZE AND TIDAL_TSAN)
  message(FATAL_ERROR "TIDAL_SANITIZE (ASan+UBSan) and TIDAL_TSAN cannot be combined: "
                      "the sanitizers' runtimes exclude each other. Turn one off.")
endif()
add_library(tidal_flags INTERFACE)
target_compile_options(tidal_flags INTERFACE -Wall -Wextra -Wno-unused-parameter)
if(TIDAL_DEBUG_ASSERTS)
  target_compile_definitions(tidal_flags INTERFACE TIDAL_DEBUG_ASSERTS=1)
endif()
if(TIDAL_SANITIZE)
  target_compile_options(tidal_flags INTERFACE -fsanitize=address,undefined
                         -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(tidal_flags INTERFACE -fsanitize=address,undefined)
endif()
if(TIDAL_TSAN)
  target_compile_options(tidal_flags INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(tidal_flags INTERFACE -fsanitize=thread)
endif()
if(TIDAL_COVERAGE)
  target_compile_options(tidal_flags INTERFACE --coverage -O0 -fprofile-update=atomic)
  target_link_options(tidal_flags INTERFACE --coverage)
endif()

# tidal_library(name SOURCES ... DEPS ... [PRIVATE_DEPS ...]): a layer library with its
# public include/. tidal_flags (warnings, sanitizers, coverage) applies to the library's own
# sources only and stays out of its interface: programs and tests in this tree link
# tidal_flags themselves, and an installed tidal never hands these flags to its users.
# Users get C++20, which the public headers need (coroutines).
function(tidal_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "tidal_library(${name}): unexpected arguments: ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "tidal_library(${name}): no SOURCES")
  endif()
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(${name} PUBLIC cxx_std_20)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS}
                        PRIVATE $<BUILD_INTERFACE:tidal_flags> ${ARG_PRIVATE_DEPS})
endfunction()

# tidal_test(name LABELS ... SOURCES ... DEPS ...): a gtest binary registered with ctest.
function(tidal_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT TIDAL_BUILD_TESTS OR NOT ARG_SOURCES)
    return()
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE tidal_flags ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  # With UCX built, the ucx and ucx_proc instances of a suite parameterized over the registry
  # run only under label `ucx`, once per UCX_TLS (tidal_ucx_instances in
  # backends/CMakeLists.txt). With CUDA built, the cuda_proc instances (a process per GPU)
  # run only under label `cuda` (tidal_cuda_proc_instances in backends/cuda/CMakeLists.txt).
  set(excluded "")
  if(TIDAL_HAVE_UCX)
    set(excluded "*/ucx:*ucx_proc")
  endif()
  if(TIDAL_HAVE_CUDA)
    if(excluded)
      set(excluded "${excluded}:*cuda_proc")
    else()
      set(excluded "*cuda_proc")
    endif()
  endif()
  set(filter "")
  if(excluded)
    set(filter TEST_FILTER "-${excluded}")
  endif()
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST PROPERTIES LABELS "${ARG_LABELS}"
                       DISCOVERY_TIMEOUT 60 ${filter})
endfunction()

# tidal_layer_sources(out dir): the non-test .cc files of a layer's src/ folder.
function(tidal_layer_sources out dir)
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${dir}/*.cc)
  list(FILTER srcs EXCLUDE REGEX "_(test|fuzz|bench)\\.cc$")
  set(${out} ${srcs} PARENT_SCOPE)
endfunction()
